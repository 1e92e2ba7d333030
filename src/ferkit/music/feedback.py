"""Likes and skips, kept in a local SQLite file, turned into per-artist and per-genre preferences for ranking.

Each call opens its own short connection, so one store can be shared by a threaded server; the file survives
restarts and `wipe()` (the `ferkit music wipe` command) empties it. It keeps the newest MAX_EVENTS likes and
skips and MAX_SEEN_TRACKS remembered tracks, so its size is bounded whoever clicks.
"""
from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
from collections import defaultdict
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..labels import check_choice
from .catalog import Track

__all__ = ["FeedbackStore", "FeedbackStoreError", "Preferences", "ACTIONS", "check_action", "default_db_path"]

ACTIONS = ("like", "skip")
OTHER_EMOTION_WEIGHT = 0.5  # feedback given under another emotion counts half
MAX_EVENTS = 10_000  # likes and skips kept; past it the oldest go (a client clicking without end cannot fill the disk,
                     # and rankings follow recent taste anyway)
MAX_SEEN_TRACKS = 10_000  # remembered tracks from outside the catalog; the least recently recommended go first


def check_action(name: str) -> str:
    """Return ``name`` normalised to lower case, or raise ValueError listing the valid feedback actions."""
    return check_choice("feedback action", name, ACTIONS)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY,
    track_id TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('like', 'skip')),
    emotion TEXT,
    title TEXT NOT NULL,
    artist TEXT NOT NULL,          -- every credited artist, '; '-separated
    genre TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS seen_tracks (  -- tracks recommended from outside the catalog (Spotify), for feedback
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    artist TEXT NOT NULL,
    genre TEXT NOT NULL DEFAULT '',
    year INTEGER,
    valence REAL NOT NULL,
    energy REAL NOT NULL,
    url TEXT,
    seen REAL NOT NULL
);
"""


def default_db_path() -> Path:
    """$FERKIT_MUSIC_DB, else $XDG_DATA_HOME/ferkit/music.sqlite (~/.local/share/ferkit/music.sqlite)."""
    if os.environ.get("FERKIT_MUSIC_DB"):
        return Path(os.environ["FERKIT_MUSIC_DB"])
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "ferkit" / "music.sqlite"


@dataclass
class Preferences:
    """Net like-minus-skip weights per artist, genre and track (keys lower-cased)."""
    artists: dict[str, float] = field(default_factory=dict)
    genres: dict[str, float] = field(default_factory=dict)
    tracks: dict[str, float] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.artists or self.genres or self.tracks)

    @staticmethod
    def affinity(weight: float) -> float:
        """A net count squashed into (-1, 1): one like is 0.46, three likes 0.91."""
        return math.tanh(weight / 2.0)


class FeedbackStoreError(RuntimeError):
    """The feedback file cannot be read or written (not a database, no permission, disk full ...)."""


class FeedbackStore:
    """Likes and skips in SQLite at ``path`` (created with its folder on the first write).

    Every method raises FeedbackStoreError, naming the file, when the database cannot be used.
    """

    def __init__(self, path: str | Path | None = None, max_events: int = MAX_EVENTS,
                 max_seen_tracks: int = MAX_SEEN_TRACKS):
        if max_events < 1 or max_seen_tracks < 1:
            raise ValueError(f"max_events and max_seen_tracks must be at least 1, got {max_events}, {max_seen_tracks}")
        self.path = Path(path) if path is not None else default_db_path()
        self.max_events, self.max_seen_tracks = max_events, max_seen_tracks
        self._ready = False  # schema created in this process
        self._schema_lock = threading.Lock()

    @contextmanager
    def _guard(self, doing: str):
        try:
            yield
        except (sqlite3.Error, OSError) as e:
            raise FeedbackStoreError(f"{self.path}: cannot {doing} the feedback database ({e})") from e

    def _connect(self, write: bool = True):
        """A connection that commits and closes on exit; None for a read when the file does not exist yet
        (reading never creates the file, so a server that only recommends leaves no trace on disk).
        Writes take the write lock when their transaction begins (BEGIN IMMEDIATE), waiting up to 10 s for it: a
        deferred transaction reads first, and in WAL mode a reader whose snapshot another writer has since moved
        past fails at once with "database is locked", without waiting."""
        if not write and not self.path.exists():
            return None
        with self._schema_lock:
            if not self._ready:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with closing(sqlite3.connect(self.path, timeout=10)) as con:
                    con.execute("PRAGMA journal_mode=WAL")  # readers and the writer do not block each other
                    con.executescript(_SCHEMA)
                self._ready = True
        return _Closing(sqlite3.connect(self.path, timeout=10, isolation_level="IMMEDIATE" if write else "DEFERRED"))

    def record(self, track: Track, action: str, emotion: str | None = None) -> None:
        """Store one like or skip of ``track``."""
        action = check_action(action)
        with self._guard("write to"):
            with self._connect() as con:
                con.execute("INSERT INTO feedback (track_id, action, emotion, title, artist, genre, created) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (track.id, action, emotion, track.title, "; ".join(track.artists), track.genre,
                             time.time()))
                # keep the newest max_events: one look-up in the primary key's index, whatever the table's size
                con.execute("DELETE FROM feedback WHERE id <= (SELECT id FROM feedback ORDER BY id DESC "
                            "LIMIT 1 OFFSET ?)", (self.max_events,))

    def remember(self, tracks) -> None:
        """Keep the metadata of recommended tracks that are not in the catalog, so that feedback can name them."""
        with self._guard("write to"):
            rows = [(t.id, t.title, "; ".join(t.artists), t.genre, t.year, t.valence, t.energy, t.url, time.time())
                    for t in tracks]
            if rows:
                with self._connect() as con:
                    con.executemany("INSERT OR REPLACE INTO seen_tracks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
                    con.execute("DELETE FROM seen_tracks WHERE rowid IN (SELECT rowid FROM seen_tracks ORDER BY seen "
                                "DESC LIMIT -1 OFFSET ?)", (self.max_seen_tracks,))

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        """The rows of one SELECT; none while the file does not exist (reading never creates it)."""
        with self._guard("read"):
            conn = self._connect(write=False)
            if conn is None:
                return []
            with conn as con:
                return con.execute(sql, params).fetchall()

    def seen_track(self, track_id: str) -> Track | None:
        rows = self._read("SELECT id, title, artist, genre, year, valence, energy, url FROM seen_tracks WHERE id = ?",
                          (track_id,))
        if not rows:
            return None
        row = rows[0]
        return Track(id=row[0], title=row[1], artists=tuple(row[2].split("; ")), genre=row[3], year=row[4],
                     valence=row[5], energy=row[6], url=row[7])

    def events(self) -> list[dict]:
        """Every like and skip, oldest first."""
        keys = ("track_id", "action", "emotion", "title", "artist", "genre", "created")
        return [dict(zip(keys, r)) for r in self._read(f"SELECT {', '.join(keys)} FROM feedback ORDER BY id")]

    def preferences(self, emotion: str | None = None) -> Preferences:
        """Net weights (like +1, skip -1); events recorded under another emotion than ``emotion`` count half.

        SQLite sums the events per track (one row per track liked or skipped, however many events), so the
        cost of a recommendation grows with the tracks rated, not with the clicks."""
        prefs = Preferences(defaultdict(float), defaultdict(float), defaultdict(float))
        rows = self._read(
            "SELECT track_id, artist, genre, SUM(CASE action WHEN 'like' THEN 1.0 ELSE -1.0 END * "
            "CASE WHEN ? IS NOT NULL AND emotion IS NOT NULL AND emotion != ? THEN ? ELSE 1.0 END) "
            "FROM feedback GROUP BY track_id, artist, genre", (emotion, emotion, OTHER_EMOTION_WEIGHT))
        for track_id, artists, genre, w in rows:
            prefs.tracks[track_id] += w
            for artist in artists.split("; "):
                prefs.artists[artist.lower()] += w
            if genre:
                prefs.genres[genre.lower()] += w
        return Preferences(dict(prefs.artists), dict(prefs.genres), dict(prefs.tracks))

    def wipe(self) -> int:
        """Delete every like, skip and remembered track; return how many likes and skips there were."""
        with self._guard("wipe"):
            if not self.path.exists():
                return 0
            with self._connect() as con:
                n = con.execute("SELECT COUNT(*) FROM feedback").fetchone()[0]
                con.execute("DELETE FROM feedback")
                con.execute("DELETE FROM seen_tracks")
            with closing(sqlite3.connect(self.path, timeout=10)) as con:
                con.execute("VACUUM")  # so that deleted rows do not linger in the file
            return n

    def __repr__(self) -> str:
        return f"FeedbackStore({str(self.path)!r})"


class _Closing:
    """`with` a connection: commit (or roll back) and then close, which sqlite3's own context manager does not."""

    def __init__(self, con: sqlite3.Connection):
        self.con = con

    def __enter__(self) -> sqlite3.Connection:
        return self.con

    def __exit__(self, exc_type, *_):
        try:
            if exc_type is None:
                self.con.commit()
            else:
                self.con.rollback()
        finally:
            self.con.close()
