"""GET /api/v1/recommendations and POST /api/v1/feedback on a real ferkit server (uvicorn on loopback).

The app's Recommender is swapped through `app.dependency_overrides[get_recommender]`, so each test controls the
feedback file and the provider; one test runs the default dependency, configured from FERKIT_MUSIC_* variables.
"""
from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from ferkit import EMOTIONS
from ferkit.music import FeedbackStore, Recommender, SpotifyProvider, SpotifySettings, load_catalog
from ferkit.server.routes.recommendations import get_recommender

VALID = "valid: angry, disgust, fear, happy, sad, surprise, neutral, contempt"


def _serve(app):
    """Run ``app`` under uvicorn on 127.0.0.1:<free port> in a thread; -> (base url, stop())."""
    import uvicorn

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)

    def stop():
        server.should_exit = True
        thread.join(10)
        sock.close()

    return f"http://127.0.0.1:{sock.getsockname()[1]}", stop


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture(scope="module")
def music_server():
    """A real server whose Recommender a test sets in ``holder["rec"]``."""
    from ferkit.server.main import create_app

    app = create_app()
    holder = {}
    app.dependency_overrides[get_recommender] = lambda: holder["rec"]
    url, stop = _serve(app)
    yield url, holder
    stop()


@pytest.fixture
def api(music_server, catalog, tmp_path):
    url, holder = music_server
    holder["rec"] = Recommender(catalog, FeedbackStore(tmp_path / "music.sqlite"))
    with httpx.Client(base_url=url, timeout=30) as client:
        client.holder = holder
        client.db = tmp_path / "music.sqlite"
        yield client


@pytest.mark.parametrize("emotion", EMOTIONS)
def test_recommendations_for_each_emotion(api, emotion):
    r = api.get("/api/v1/recommendations", params={"emotion": emotion})
    assert r.status_code == 200
    d = r.json()
    assert (d["emotion"], d["strategy"], d["source"], d["notice"]) == (emotion, "match", "local", None)
    assert len(d["tracks"]) == 10
    for t in d["tracks"]:
        assert {"id", "title", "artist", "genre", "year", "valence", "energy", "reason", "url"} <= set(t)
        assert emotion in t["reason"]
    assert len({t["artist"] for t in d["tracks"]}) == 10


def test_lift_and_n(api):
    d = api.get("/api/v1/recommendations", params={"emotion": "SAD", "strategy": "lift", "n": 5}).json()
    assert d["emotion"] == "sad" and d["strategy"] == "lift" and len(d["tracks"]) == 5
    assert d["tracks"][-1]["valence"] > d["tracks"][0]["valence"] + 0.4


@pytest.mark.parametrize("params, detail", [
    ({"emotion": "bored"}, f"unknown emotion 'bored'; {VALID}"),
    ({"emotion": "sad", "strategy": "cheer"}, "unknown strategy 'cheer'; valid: match, lift"),
])
def test_unknown_emotion_or_strategy(api, params, detail):
    r = api.get("/api/v1/recommendations", params=params)
    assert r.status_code == 422 and r.json() == {"detail": detail}


@pytest.mark.parametrize("params", [{}, {"emotion": "sad", "n": 0}, {"emotion": "sad", "n": 51},
                                    {"emotion": "sad", "n": "ten"}])
def test_bad_parameters(api, params):
    assert api.get("/api/v1/recommendations", params=params).status_code == 422


def test_feedback_is_stored_and_reranks(api, catalog):
    before = api.get("/api/v1/recommendations", params={"emotion": "happy"}).json()["tracks"]
    liked, skipped = before[6], before[0]
    for tid, action in ((liked["id"], "like"), (skipped["id"], "skip")):
        r = api.post("/api/v1/feedback", json={"track_id": tid, "action": action, "emotion": "happy"})
        assert r.status_code == 200 and r.json() == {"ok": True}
    after = api.get("/api/v1/recommendations", params={"emotion": "happy"}).json()["tracks"]
    ids = [t["id"] for t in after]
    assert ids[0] == liked["id"] and "you liked this track" in after[0]["reason"]
    assert skipped["id"] not in ids[:2]
    # on disk: a new store on the same file (a restarted server) sees both
    events = FeedbackStore(api.db).events()
    assert [(e["track_id"], e["action"], e["emotion"]) for e in events] == [
        (liked["id"], "like", "happy"), (skipped["id"], "skip", "happy")]


@pytest.mark.parametrize("body, status, detail", [
    ({"track_id": "nope", "action": "like"}, 404, "unknown track id 'nope'"),
    ({"track_id": "x", "action": "love"}, 422, None),
    ({"track_id": "", "action": "like"}, 422, None),
    ({"action": "like"}, 422, None),
    ({"track_id": "x", "action": "like", "emotion": "meh"}, 422, f"unknown emotion 'meh'; {VALID}"),
])
def test_bad_feedback(api, body, status, detail):
    r = api.post("/api/v1/feedback", json=body)
    assert r.status_code == status
    if detail:
        assert detail in r.json()["detail"]
    assert FeedbackStore(api.db).events() == []


def test_unusable_feedback_file(api, catalog, tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_text("not a database " * 50)
    api.holder["rec"] = Recommender(catalog, FeedbackStore(bad))
    r = api.get("/api/v1/recommendations", params={"emotion": "sad"})
    assert r.status_code == 200 and "likes and skips not used" in r.json()["notice"]
    r = api.post("/api/v1/feedback", json={"track_id": catalog.tracks[0].id, "action": "like"})
    assert r.status_code == 503 and r.json()["detail"].startswith(f"feedback not saved: {bad}: cannot write")


def test_spotify_failure_is_a_notice_not_an_error(api, catalog):
    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = SpotifySettings(client_id="id", client_secret="secret", timeout=1.0,
                               api_url=f"http://127.0.0.1:{port}/v1/", token_url=f"http://127.0.0.1:{port}/api/token")
    api.holder["rec"] = Recommender(catalog, FeedbackStore(api.db), "spotify", SpotifyProvider(settings))
    r = api.get("/api/v1/recommendations", params={"emotion": "fear", "strategy": "lift"})
    assert r.status_code == 200
    d = r.json()
    assert d["source"] == "local" and "could not be reached" in d["notice"] and len(d["tracks"]) == 10


def test_spotify_success_through_the_api(api, catalog):
    from tests.test_music_spotify import CLIENT_ID, CLIENT_SECRET, FakeSpotify

    fake = FakeSpotify()
    try:
        settings = SpotifySettings(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, api_url=fake.base + "/v1/",
                                   token_url=fake.base + "/api/token", timeout=2.0)
        api.holder["rec"] = Recommender(catalog, FeedbackStore(api.db), "spotify", SpotifyProvider(settings))
        d = api.get("/api/v1/recommendations", params={"emotion": "sad", "n": 5}).json()
        assert d["source"] == "spotify" and d["notice"] is None and len(d["tracks"]) == 5
        tid = d["tracks"][1]["id"]
        assert tid.startswith("spotify:track:")
        r = api.post("/api/v1/feedback", json={"track_id": tid, "action": "like", "emotion": "sad"})
        assert r.json() == {"ok": True}
        fake.mode = "429"
        d2 = api.get("/api/v1/recommendations", params={"emotion": "sad"}).json()
        assert d2["source"] == "local" and "429" in d2["notice"]
    finally:
        fake.close()


def test_default_dependency_reads_the_environment(monkeypatch, tmp_path):
    from ferkit.server.main import create_app

    db = tmp_path / "env" / "music.sqlite"
    monkeypatch.setenv("FERKIT_MUSIC_DB", str(db))
    monkeypatch.setenv("FERKIT_MUSIC_PROVIDER", "local")
    custom = tmp_path / "mine.csv"
    custom.write_text("title,artist,valence,energy\nQuiet,A,0.1,0.2\nLoud,B,0.2,0.9\nBright,C,0.9,0.8\n",
                      encoding="utf-8")
    monkeypatch.setenv("FERKIT_MUSIC_CATALOG", str(custom))
    url, stop = _serve(create_app())
    try:
        with httpx.Client(base_url=url, timeout=30) as c:
            d = c.get("/api/v1/recommendations", params={"emotion": "angry", "n": 2}).json()
            assert [t["title"] for t in d["tracks"]] == ["Loud", "Quiet"]
            assert not db.exists()  # recommending writes nothing
            assert c.post("/api/v1/feedback", json={"track_id": d["tracks"][0]["id"], "action": "skip"}).json() == \
                {"ok": True}
            assert db.is_file() and len(FeedbackStore(db).events()) == 1
    finally:
        stop()


def test_the_schema_lists_the_allowed_emotions(api):
    """Issue 26, item 7: the schema named no allowed values for `emotion`."""
    from ferkit.music.moods import MOODS

    schema = api.get("/openapi.json").json()
    param = next(p for p in schema["paths"]["/api/v1/recommendations"]["get"]["parameters"] if p["name"] == "emotion")
    assert param["schema"]["enum"] == list(MOODS)
    feedback = schema["components"]["schemas"]["FeedbackIn"]["properties"]["emotion"]
    assert feedback["enum"] == [*MOODS, None]
