"""POST /api/v1/corrections (the page's "Wrong?"): two labels and the model's name kept, nothing of the photo;
bounded in rows and in rate; bad input gets a 4xx naming the field."""
from __future__ import annotations

import sqlite3

import httpx
import pytest

from ferkit.server.routes import corrections

from .conftest import start_server


@pytest.fixture()
def corrections_server(tmp_path, monkeypatch):
    db = tmp_path / "corrections.sqlite"
    monkeypatch.setenv("FERKIT_CORRECTIONS_DB", str(db))
    running, stop = start_server()
    yield running, db
    stop()


def rows(db):
    with sqlite3.connect(db) as con:
        return con.execute("SELECT predicted, correct, model FROM corrections ORDER BY id").fetchall()


def test_a_correction_keeps_two_labels_and_nothing_else(corrections_server):
    server, db = corrections_server
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert not db.exists()      # nothing is written before the first correction
        r = http.post("/api/v1/corrections", json={"predicted": "happy", "correct": "Surprise", "model": "fer2013"})
        assert r.status_code == 201 and r.json() == {"ok": True}
        assert rows(db) == [("happy", "surprise", "fer2013")]
        with sqlite3.connect(db) as con:
            columns = [c[1] for c in con.execute("PRAGMA table_info(corrections)")]
        assert columns == ["id", "predicted", "correct", "model", "created"]
        for body, field in (({"predicted": "happy", "correct": "joyful"}, "correct"),
                            ({"predicted": "bored", "correct": "sad"}, "predicted"),
                            ({"predicted": "sad", "correct": "sad"}, "correct"),
                            ({"predicted": "sad", "correct": "happy", "model": "../../etc"}, "model"),
                            ({"predicted": "sad"}, "correct")):
            r = http.post("/api/v1/corrections", json=body)
            assert r.status_code == 422, (body, r.text)
            detail = r.json()["detail"]
            assert detail.startswith(field) or f"{field}:" in detail, (body, detail)
        r = http.post("/api/v1/corrections", content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and isinstance(r.json()["detail"], str)
        r = http.post("/api/v1/corrections", json={"predicted": "sad", "correct": "happy", "model": "x" * 20_000})
        assert r.status_code == 413                     # the server's JSON body limit
        assert rows(db) == [("happy", "surprise", "fer2013")]
    assert server.error_messages() == []


def test_the_store_is_bounded_in_rows_and_rate(tmp_path):
    store = corrections.CorrectionStore(tmp_path / "c.sqlite", max_rows=5, per_minute=8)
    for i in range(8):
        store.record("sad", "happy" if i % 2 else "angry", f"m{i}")
    assert [r[2] for r in rows(tmp_path / "c.sqlite")] == [f"m{i}" for i in range(3, 8)]   # the newest 5
    with pytest.raises(corrections.TooManyCorrections) as refused:
        store.record("sad", "happy", None)
    assert 0 < refused.value.retry_after <= 60


def test_the_rate_cap_answers_429_with_retry_after(corrections_server, monkeypatch):
    server, db = corrections_server
    with httpx.Client(base_url=server.url, timeout=30) as http:
        store = corrections.CorrectionStore(db, per_minute=3)
        server.server.config.app.state.ferkit_corrections = store
        answers = [http.post("/api/v1/corrections", json={"predicted": "sad", "correct": "happy"}) for _ in range(4)]
        assert [a.status_code for a in answers] == [201, 201, 201, 429]
        assert 1 <= int(answers[-1].headers["retry-after"]) <= 60
        assert "try again in" in answers[-1].json()["detail"]
    assert len(rows(db)) == 3
