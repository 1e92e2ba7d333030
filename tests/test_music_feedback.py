"""The SQLite feedback store: persistence across restarts, re-ranking, wiping, concurrency, configuration."""
from __future__ import annotations

import threading

import pytest

from ferkit.music import (FeedbackStore, FeedbackStoreError, Recommender, UnknownTrackError, default_db_path,
                          load_catalog)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def _ids(res):
    return [r.track.id for r in res.tracks]


def test_feedback_survives_a_restart_and_reranks(catalog, tmp_path):
    db = tmp_path / "sub" / "music.sqlite"  # the folder is created on first use
    rec = Recommender(catalog, FeedbackStore(db))
    before = rec.recommend("sad", "match", 10)
    # like a track just outside the top 10 by an artist not in it; skip the first track
    outside = next(r.track for r in Recommender(catalog, None).recommend("sad", "match", 30).tracks[10:]
                   if r.track.genre != before.tracks[0].track.genre)
    first = before.tracks[0].track
    rec.feedback(outside.id, "like", "sad")
    rec.feedback(first.id, "skip", "sad")
    del rec

    restarted = Recommender(catalog, FeedbackStore(db))  # a new store object on the same file
    events = restarted.store.events()
    assert [(e["track_id"], e["action"], e["emotion"]) for e in events] == [(outside.id, "like", "sad"),
                                                                           (first.id, "skip", "sad")]
    after = restarted.recommend("sad", "match", 10)
    assert outside.id in _ids(after) and _ids(after).index(outside.id) < 10
    assert _ids(after)[0] != first.id
    liked = after.tracks[_ids(after).index(outside.id)]
    assert "you liked this track" in liked.reason and "ranked higher" in liked.reason
    if first.id in _ids(after):
        assert "you skipped this track" in after.tracks[_ids(after).index(first.id)].reason


def test_liked_artist_and_genre_rise_in_other_moods(catalog, tmp_path):
    store = FeedbackStore(tmp_path / "m.sqlite")
    rec = Recommender(catalog, store)
    # like three metal tracks while angry: under "disgust" metal rises too (half weight for another emotion)
    metal = [t for t in catalog if t.genre == "thrash metal"][:3]
    base = rec.recommend("disgust", "match", 20)
    for t in metal:
        rec.feedback(t.id, "like", "angry")
    prefs = store.preferences("disgust")
    assert prefs.genres["thrash metal"] == pytest.approx(1.5)  # 3 likes x 0.5
    assert store.preferences("angry").genres["thrash metal"] == pytest.approx(3.0)
    after = rec.recommend("disgust", "match", 20)

    def metal_count(res):
        return sum(r.track.genre == "thrash metal" for r in res.tracks)

    assert metal_count(after) > metal_count(base)


def test_wipe_forgets_everything(catalog, tmp_path):
    db = tmp_path / "w.sqlite"
    rec = Recommender(catalog, FeedbackStore(db))
    plain = _ids(rec.recommend("happy"))
    for tid in plain[:3]:
        rec.feedback(tid, "skip", "happy")
    assert _ids(rec.recommend("happy")) != plain
    assert FeedbackStore(db).wipe() == 3
    assert FeedbackStore(db).events() == [] and not FeedbackStore(db).preferences()
    assert _ids(rec.recommend("happy")) == plain
    assert FeedbackStore(db).wipe() == 0


def test_unknown_track_and_bad_action(catalog, tmp_path):
    rec = Recommender(catalog, FeedbackStore(tmp_path / "u.sqlite"))
    with pytest.raises(UnknownTrackError, match="unknown track id 'nope'"):
        rec.feedback("nope", "like")
    tid = catalog.tracks[0].id
    with pytest.raises(ValueError, match="unknown feedback action 'love'; valid: like, skip"):
        rec.feedback(tid, "love")
    with pytest.raises(ValueError, match="unknown emotion 'meh'"):
        rec.feedback(tid, "like", "meh")
    with pytest.raises(ValueError, match="no feedback store"):
        Recommender(catalog, None).feedback(tid, "like")
    assert rec.store.events() == []


def test_concurrent_writers(catalog, tmp_path):
    """Threads writing at once to a new store lose nothing: twenty fresh stores, 16 threads each (the first writes
    race to create the file and switch it to WAL; a deferred write transaction could fail at once with "database
    is locked" where it should wait; before BEGIN IMMEDIATE and the schema lock, about one store in ten did)."""
    tracks = (catalog.tracks * 2)[:16]
    for trial in range(20):
        store = FeedbackStore(tmp_path / f"c{trial}.sqlite")
        errors = []

        def work(t):
            for _ in range(5):
                try:
                    store.record(t, "like", None)
                except FeedbackStoreError as e:
                    errors.append(str(e))

        threads = [threading.Thread(target=work, args=(t,)) for t in tracks]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert errors == [] and len(store.events()) == 80, errors[:3]
    assert sorted(store.preferences().tracks.values()) == sorted(5.0 * tracks.count(t) for t in dict.fromkeys(tracks))


def test_db_path_configuration(monkeypatch, tmp_path):
    monkeypatch.setenv("FERKIT_MUSIC_DB", str(tmp_path / "env.sqlite"))
    assert default_db_path() == tmp_path / "env.sqlite"
    monkeypatch.delenv("FERKIT_MUSIC_DB")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_db_path() == tmp_path / "xdg" / "ferkit" / "music.sqlite"
    rec = Recommender.from_env({"FERKIT_MUSIC_DB": str(tmp_path / "from_env.sqlite")})
    assert rec.store.path == tmp_path / "from_env.sqlite" and rec.provider == "local"
    with pytest.raises(ValueError, match="unknown provider 'deezer'; valid: local, spotify"):
        Recommender.from_env({"FERKIT_MUSIC_DB": str(tmp_path / "x.sqlite"), "FERKIT_MUSIC_PROVIDER": "deezer"})


def test_recommending_alone_leaves_no_file(catalog, tmp_path):
    db = tmp_path / "deep" / "music.sqlite"
    rec = Recommender(catalog, FeedbackStore(db))
    rec.recommend("sad")
    assert rec.store.events() == [] and rec.store.wipe() == 0 and rec.find_track("nope") is None
    assert not db.exists() and not db.parent.exists()
    rec.feedback(catalog.tracks[0].id, "like")
    assert db.is_file()


def test_unusable_feedback_file(catalog, tmp_path):
    bad = tmp_path / "notes.sqlite"
    bad.write_text("this is not a database, " * 100)
    rec = Recommender(catalog, FeedbackStore(bad))
    res = rec.recommend("sad")  # still answers, without feedback, and says why
    assert len(res.tracks) == 10 and res.source == "local"
    assert res.notice.startswith(f"likes and skips not used: {bad}: cannot read the feedback database")
    with pytest.raises(FeedbackStoreError, match=f"{bad}: cannot write to the feedback database"):
        rec.feedback(catalog.tracks[0].id, "like")
    with pytest.raises(FeedbackStoreError, match="cannot wipe"):
        FeedbackStore(bad).wipe()
    assert bad.read_text().startswith("this is not a database")  # left as it was
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(FeedbackStoreError, match="a-folder: cannot write to"):
        FeedbackStore(folder).record(catalog.tracks[0], "skip")


def test_the_store_keeps_the_newest_events_only(catalog, tmp_path):
    """Issue 26: 100,000 likes went in without limit. The oldest go past max_events; the newest stay, in order."""
    store = FeedbackStore(tmp_path / "music.sqlite", max_events=50, max_seen_tracks=5)
    tracks = catalog.tracks if hasattr(catalog, "tracks") else list(catalog)
    for i in range(120):
        store.record(tracks[i % len(tracks)], "like" if i % 3 else "skip", "happy")
    events = store.events()
    assert len(events) == 50
    assert [e["track_id"] for e in events] == [tracks[i % len(tracks)].id for i in range(70, 120)]
    store.remember(tracks[:12])
    assert sum(store.seen_track(t.id) is not None for t in tracks[:12]) == 5
    with pytest.raises(ValueError, match="at least 1"):
        FeedbackStore(tmp_path / "x.sqlite", max_events=0)
