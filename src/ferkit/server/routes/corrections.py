"""POST /api/v1/corrections: the page's "Wrong?" on a face, kept for whoever improves the model.

What is kept, per correction: the label the model gave, the label the person chose, the model's name and the time.
Nothing of the photo (no pixels, no box, no file name, no address). Bounded like the music feedback store: the newest
MAX_CORRECTIONS rows stay (the oldest go), and the server accepts at most MAX_PER_MINUTE corrections a minute from
all clients together (429 with Retry-After past it), so clicking without end can neither fill the disk nor keep the
database busy.

Where: $FERKIT_CORRECTIONS_DB, else $XDG_DATA_HOME/ferkit/corrections.sqlite (~/.local/share/ferkit/...), created on
the first correction. Read it with `sqlite3 <file> "SELECT * FROM corrections"`; delete the file to forget them all.
"""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections import deque
from contextlib import closing
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection

from ...labels import EMOTIONS, FERPLUS_EMOTIONS
from .schemas import error_responses

router = APIRouter(prefix="/api/v1", tags=["corrections"])

MAX_CORRECTIONS = 10_000   # rows kept; past it the oldest go
MAX_PER_MINUTE = 60        # corrections accepted a minute, from all clients together
LABELS = tuple(dict.fromkeys(EMOTIONS + FERPLUS_EMOTIONS))   # every label a shipped model gives

_SCHEMA = """CREATE TABLE IF NOT EXISTS corrections (
    id INTEGER PRIMARY KEY,
    predicted TEXT NOT NULL,   -- the model's label for the face
    correct TEXT NOT NULL,     -- the person's
    model TEXT,                -- the model's name, as GET /api/v1/info gives it
    created REAL NOT NULL      -- seconds since 1970
)"""


def default_db_path() -> Path:
    if os.environ.get("FERKIT_CORRECTIONS_DB"):
        return Path(os.environ["FERKIT_CORRECTIONS_DB"])
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "ferkit" / "corrections.sqlite"


class TooManyCorrections(Exception):
    """Over MAX_PER_MINUTE; `retry_after` seconds until one more is accepted."""

    def __init__(self, retry_after: float):
        super().__init__(f"more than {MAX_PER_MINUTE} corrections in a minute")
        self.retry_after = retry_after


class CorrectionStore:
    """Corrections in SQLite at `path`; `record` raises TooManyCorrections past the rate, sqlite3.Error or OSError
    when the file cannot be written."""

    def __init__(self, path: Path, max_rows: int = MAX_CORRECTIONS, per_minute: int = MAX_PER_MINUTE):
        self.path, self.max_rows, self.per_minute = Path(path), max_rows, per_minute
        self._recent: deque[float] = deque()   # monotonic times of the last minute's corrections
        self._lock = threading.Lock()           # one writer at a time; the routes run in a thread pool

    def record(self, predicted: str, correct: str, model: str | None) -> None:
        with self._lock:
            now = time.monotonic()
            while self._recent and now - self._recent[0] >= 60:
                self._recent.popleft()
            if len(self._recent) >= self.per_minute:
                raise TooManyCorrections(60 - (now - self._recent[0]))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(self.path, timeout=10)) as con, con:
                con.execute(_SCHEMA)
                con.execute("INSERT INTO corrections (predicted, correct, model, created) VALUES (?, ?, ?, ?)",
                            (predicted, correct, model, time.time()))
                # keep the newest max_rows: one look-up in the primary key's index, whatever the table's size
                con.execute("DELETE FROM corrections WHERE id <= (SELECT id FROM corrections ORDER BY id DESC "
                            "LIMIT 1 OFFSET ?)", (self.max_rows,))
            self._recent.append(now)


def get_corrections(conn: HTTPConnection) -> Any:
    """The app's one CorrectionStore, made on first use (tests set FERKIT_CORRECTIONS_DB before the server starts)."""
    store = getattr(conn.app.state, "ferkit_corrections", None)
    if store is None:
        store = conn.app.state.ferkit_corrections = CorrectionStore(default_db_path())
    return store


class CorrectionIn(BaseModel):
    predicted: str = Field(max_length=40, description="the label the model gave the face",
                           json_schema_extra={"enum": list(LABELS)})
    correct: str = Field(max_length=40, description="the label the person says is right",
                         json_schema_extra={"enum": list(LABELS)})
    model: str | None = Field(None, max_length=100, pattern=r"^[\w.+-]+$", description="the model's name")


def _label(field: str, value: str) -> str:
    key = value.strip().lower()
    if key not in LABELS:
        raise HTTPException(422, f'{field}: unknown label "{value[:40]}"; valid: {", ".join(LABELS)}')
    return key


@router.post("/corrections", status_code=201, responses=error_responses(
    s413="body over max_json_bytes", s422="an unknown label, or the same label twice",
    s429="over the corrections a minute the server accepts", s503="the corrections file cannot be written"))
def corrections(body: CorrectionIn, store: Annotated[Any, Depends(get_corrections)]) -> dict:
    """Say that a face's emotion was wrong: keeps the two labels and the model's name, nothing of the photo."""
    predicted, correct = _label("predicted", body.predicted), _label("correct", body.correct)
    if predicted == correct:
        raise HTTPException(422, f'correct: the same label as predicted ("{correct}"); a correction names another')
    try:
        store.record(predicted, correct, body.model)
    except TooManyCorrections as e:
        raise HTTPException(429, f"{e}: try again in {e.retry_after:.0f} s",
                            headers={"Retry-After": str(max(1, round(e.retry_after)))}) from None
    except (sqlite3.Error, OSError):
        raise HTTPException(503, "the correction was not saved: the server cannot write its corrections file") from None
    return {"ok": True}
