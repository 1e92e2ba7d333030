"""The Spotify provider against a local fake of the Spotify Web API, over real HTTP on 127.0.0.1.

spotipy is pointed at the fake through SpotifySettings(api_url=..., token_url=...): the token request, the searches
and the playlist reads are real HTTP exchanges; nothing in spotipy or ferkit is patched.
"""
from __future__ import annotations

import base64
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from ferkit.music import (FeedbackStore, Recommender, SpotifyProvider, SpotifySettings, SpotifyUnavailable,
                          load_catalog)

pytest.importorskip("spotipy")

CLIENT_ID, CLIENT_SECRET = "fake-client-id", "fake-client-secret"
TOKEN = "fake-access-token"


def _b62(text: str) -> str:
    """A Spotify-style base62 id (22 characters) made from ``text``."""
    return re.sub(r"[^0-9A-Za-z]", "", text).ljust(22, "x")[:22]


def _track(i: int, q: str, artist: str | None = None, title: str | None = None) -> dict:
    slug = q.replace(" ", "-")
    return {"type": "track", "id": _b62(f"{slug[:12]}{i:02d}{len(q)}"),
            "name": title or f"{q.title()} Song {i}", "is_local": False,
            "artists": [{"name": artist or f"{q.title()} Artist {i}"}],
            "album": {"release_date": f"{2000 + i}-05-01"},
            "external_urls": {"spotify": f"https://open.spotify.com/track/{slug}{i}"}}


class FakeSpotify:
    """The endpoints ferkit uses: POST /api/token, GET /v1/search, GET /v1/playlists/{id}/items (and /tracks).

    ``mode``: "ok", "token401" (bad client credentials), "401" (API refuses the token), "429" (rate limit with
    Retry-After), "slow" (answers after ``delay`` seconds).
    """

    def __init__(self):
        self.mode = "ok"
        self.delay = 2.0
        self.retry_after = 7
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, query or form)
        self.playlists: dict[str, str] = {}  # playlist id -> the search words that found it
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _send(self, status: int, body: dict | None, headers: dict | None = None):
                data = json.dumps(body).encode() if body is not None else b""
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(n).decode())
                fake.requests.append(("POST", self.path, {"auth": self.headers.get("Authorization"), **form}))
                if self.path != "/api/token":
                    return self._send(404, {"error": "not found"})
                expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
                if fake.mode == "token401" or self.headers.get("Authorization") != expected:
                    return self._send(401, {"error": "invalid_client", "error_description": "Invalid client"})
                if form.get("grant_type") != ["client_credentials"]:
                    return self._send(400, {"error": "unsupported_grant_type"})
                self._send(200, {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600})

            def do_GET(self):
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                fake.requests.append(("GET", url.path, query))
                if fake.mode == "slow":
                    time.sleep(fake.delay)
                if fake.mode == "401" or self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._send(401, {"error": {"status": 401, "message": "Invalid access token"}})
                if fake.mode == "429":
                    return self._send(429, {"error": {"status": 429, "message": "API rate limit exceeded"}},
                                      {"Retry-After": str(fake.retry_after)})
                if url.path == "/v1/search":
                    return self._send(200, fake.search(query))
                parts = url.path.strip("/").split("/")
                if len(parts) == 4 and parts[:2] == ["v1", "playlists"] and parts[3] in ("items", "tracks"):
                    return self._send(*fake.playlist(parts[2], query))
                self._send(404, {"error": {"status": 404, "message": "Service not found"}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        host, port = self.server.server_address
        self.base = f"http://{host}:{port}"

    def search(self, query: dict) -> dict:
        q, types = query["q"], query["type"].split(",")
        out = {}
        if "playlist" in types:
            # Spotify's search returns nulls among playlists. For "chill" the first playlist is an editorial one,
            # which answers 404 to new apps: the provider must skip it and still use the track results.
            pid = _b62("editorial" if q == "chill" else "pl" + q)
            self.playlists[pid] = q
            out["playlists"] = {"items": [None, {"id": pid, "name": f"{q} mix"}], "total": 2}
        if "track" in types:
            items = [_track(i, q) for i in range(1, 6)]
            items.insert(2, None)
            if q == "sad songs":  # a recording the shipped catalog also has: its values should win
                items.append(_track(9, q, artist="Adele", title="Someone Like You"))
            out["tracks"] = {"items": items, "total": len(items)}
        return out

    def playlist(self, pid: str, query: dict) -> tuple[int, dict]:
        if pid == _b62("editorial") or pid not in self.playlists:
            return 404, {"error": {"status": 404, "message": "Resource not found"}}
        q = self.playlists[pid]
        items = [{"track": _track(i, q + " list")} for i in range(1, 4)]
        items.append({"track": {"type": "episode", "id": "ep1", "name": "A podcast"}})  # not a track: ignored
        items.append({"track": None})
        return 200, {"items": items[: int(query.get("limit", 50))], "total": len(items)}

    def count(self, method: str = "GET") -> int:
        return sum(1 for m, _, _ in self.requests if m == method)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    f = FakeSpotify()
    yield f
    f.close()


def _settings(fake: FakeSpotify, **kw) -> SpotifySettings:
    base = dict(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, api_url=fake.base + "/v1/",
                token_url=fake.base + "/api/token", timeout=2.0)
    base.update(kw)
    return SpotifySettings(**base)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def _recommender(fake, catalog, tmp_path, **kw) -> Recommender:
    return Recommender(catalog, FeedbackStore(tmp_path / "fb.sqlite"), "spotify",
                       SpotifyProvider(_settings(fake, **kw)))


def test_success_returns_spotify_tracks_with_reasons(fake, catalog, tmp_path):
    rec = _recommender(fake, catalog, tmp_path)
    res = rec.recommend("sad", "match", 10)
    assert res.source == "spotify" and res.notice is None
    assert len(res.tracks) == 10
    ids = [r.track.id for r in res.tracks]
    assert len(set(ids)) == 10 and all(i.startswith("spotify:track:") for i in ids)
    assert all(r.track.url.startswith("https://open.spotify.com/") for r in res.tracks)
    assert all("Spotify" in r.reason and "sad" in r.reason for r in res.tracks)
    artists = [r.track.artists[0] for r in res.tracks]
    assert len(set(artists)) == len(artists)
    # one token request with the client's credentials, then searches with mood words near "sad"
    posts = [r for r in fake.requests if r[0] == "POST"]
    assert len(posts) == 1 and posts[0][2]["grant_type"] == ["client_credentials"]
    queries = [q["q"] for m, p, q in fake.requests if p == "/v1/search"]
    assert queries and queries[0] == "sad songs"
    # the recording that is also in the catalog carries the catalog's mood, and says so
    adele = next(r for r in res.tracks if r.track.artist == "Adele")
    known = catalog.find("Adele", "Someone Like You")
    assert (adele.track.valence, adele.track.energy, adele.track.genre) == (known.valence, known.energy, known.genre)
    assert "from the local catalog" in adele.reason
    others = [r for r in res.tracks if r.track.artist != "Adele"]
    assert all("estimated" in r.reason for r in others)
    d = res.to_dict()
    assert set(d) == {"emotion", "strategy", "source", "notice", "tracks"}
    assert {"id", "title", "artist", "genre", "year", "valence", "energy", "reason", "url"} <= set(d["tracks"][0])


def test_token_is_reused_and_lift_searches_along_the_path(fake, catalog, tmp_path):
    rec = _recommender(fake, catalog, tmp_path)
    res = rec.recommend("sad", "lift", 10)
    assert res.source == "spotify"
    queries = [q["q"] for m, p, q in fake.requests if p == "/v1/search"]
    assert queries[0] == "sad songs" and "uplifting" in queries  # from the mood toward the lift goal
    vals = [r.track.valence for r in res.tracks]
    assert vals[-1] > vals[0] + 0.3
    rec.recommend("happy", "match", 5)
    assert fake.count("POST") == 1  # the access token is cached in memory between calls


def test_feedback_on_a_spotify_track_survives_a_restart(fake, catalog, tmp_path):
    rec = _recommender(fake, catalog, tmp_path)
    res = rec.recommend("sad", "match", 10)
    liked = next(r.track for r in res.tracks if r.track.artist != "Adele")
    rec.feedback(liked.id, "like", "sad")
    again = Recommender(catalog, FeedbackStore(tmp_path / "fb.sqlite"), "spotify",
                        SpotifyProvider(_settings(fake)))
    assert again.find_track(liked.id).title == liked.title
    res2 = again.recommend("sad", "match", 10)
    top = res2.tracks[0]
    assert top.track.id == liked.id and "you liked this track" in top.reason


def test_editorial_playlist_404_is_skipped_not_fatal(fake, catalog, tmp_path):
    rec = _recommender(fake, catalog, tmp_path)
    res = rec.recommend("neutral", "match", 5)  # "chill" finds the editorial playlist first
    assert res.source == "spotify" and res.notice is None
    assert ("GET", f"/v1/playlists/{_b62('editorial')}/items") in [(m, p) for m, p, _ in fake.requests]


def test_bad_client_credentials_fall_back_with_notice(fake, catalog, tmp_path):
    fake.mode = "token401"
    res = _recommender(fake, catalog, tmp_path).recommend("sad")
    assert res.source == "local" and len(res.tracks) == 10
    assert "refused the credentials" in res.notice and "invalid_client" in res.notice
    assert "local catalog" in res.notice


def test_api_401_falls_back_with_notice(fake, catalog, tmp_path):
    fake.mode = "401"
    res = _recommender(fake, catalog, tmp_path).recommend("angry", "lift")
    assert res.source == "local" and "401" in res.notice
    assert res.tracks and res.strategy == "lift"
    assert any(p == "/v1/search" for _, p, _ in fake.requests)  # it really asked, and was refused


def test_429_honours_retry_after(fake, catalog, tmp_path):
    fake.mode = "429"
    fake.retry_after = 7
    rec = _recommender(fake, catalog, tmp_path)
    res = rec.recommend("happy")
    assert res.source == "local" and "429" in res.notice and "retry after 7 s" in res.notice
    n = fake.count("GET")
    assert n == 1  # no retry loop inside spotipy: the 429 came back at once
    fake.mode = "ok"
    res2 = rec.recommend("happy")  # within Retry-After: Spotify is not asked again
    assert fake.count("GET") == n
    assert res2.source == "local" and "asked us to wait (rate limit); trying again in" in res2.notice


def test_429_without_retry_after_waits_a_default(fake, catalog, tmp_path):
    provider = SpotifyProvider(_settings(fake))
    fake.mode = "429"
    fake.retry_after = "soon"  # not a number: the provider still backs off
    with pytest.raises(SpotifyUnavailable, match="retry after 30 s"):
        provider.candidates("sad", "match", 10, catalog)


def test_timeout_falls_back_quickly(fake, catalog, tmp_path):
    fake.mode, fake.delay = "slow", 3.0
    rec = _recommender(fake, catalog, tmp_path, timeout=0.3)
    t0 = time.monotonic()
    res = rec.recommend("fear")
    elapsed = time.monotonic() - t0
    assert res.source == "local" and "did not answer within 0.3 s" in res.notice
    assert elapsed < 2.5, "the client must give up after its timeout, not wait for the slow server"
    # for a while after, the catalog answers at once instead of waiting on Spotify again
    n = fake.count("GET")
    t0 = time.monotonic()
    res2 = rec.recommend("fear")
    assert time.monotonic() - t0 < 1.0 and fake.count("GET") == n  # no new request: the count says so; the time, that nothing waited 3 s
    assert "did not answer a moment ago; trying again in" in res2.notice


def test_unreachable_server_falls_back(catalog, tmp_path):
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = SpotifySettings(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, timeout=1.0,
                               api_url=f"http://127.0.0.1:{port}/v1/", token_url=f"http://127.0.0.1:{port}/api/token")
    res = Recommender(catalog, None, "spotify", SpotifyProvider(settings)).recommend("surprise")
    assert res.source == "local" and "could not be reached" in res.notice


def test_missing_credentials_fall_back_without_any_request(fake, catalog):
    settings = SpotifySettings.from_env({"FERKIT_SPOTIFY_API_URL": fake.base + "/v1/",
                                         "FERKIT_SPOTIFY_TOKEN_URL": fake.base + "/api/token"})
    res = Recommender(catalog, None, "spotify", SpotifyProvider(settings)).recommend("sad")
    assert res.source == "local" and "SPOTIPY_CLIENT_ID" in res.notice
    assert fake.requests == []


def test_settings_from_env():
    s = SpotifySettings.from_env({"SPOTIPY_CLIENT_ID": "a", "SPOTIPY_CLIENT_SECRET": "b",
                                  "FERKIT_SPOTIFY_API_URL": "http://127.0.0.1:9/v1/", "FERKIT_SPOTIFY_TIMEOUT": "1.5",
                                  "FERKIT_SPOTIFY_MARKET": "GB"})
    assert (s.client_id, s.client_secret, s.api_url, s.timeout, s.market) == ("a", "b", "http://127.0.0.1:9/v1/",
                                                                             1.5, "GB")
    assert s.token_url == "https://accounts.spotify.com/api/token"
    with pytest.raises(ValueError, match="FERKIT_SPOTIFY_TIMEOUT"):
        SpotifySettings.from_env({"FERKIT_SPOTIFY_TIMEOUT": "soon"})
    with pytest.raises(ValueError, match="positive number of seconds"):
        SpotifySettings.from_env({"FERKIT_SPOTIFY_TIMEOUT": "0"})


def test_recommender_from_env_uses_spotify_settings(fake, tmp_path):
    rec = Recommender.from_env({"FERKIT_MUSIC_DB": str(tmp_path / "m.sqlite"), "FERKIT_MUSIC_PROVIDER": "spotify",
                                "SPOTIPY_CLIENT_ID": CLIENT_ID, "SPOTIPY_CLIENT_SECRET": CLIENT_SECRET,
                                "FERKIT_SPOTIFY_API_URL": fake.base + "/v1/",
                                "FERKIT_SPOTIFY_TOKEN_URL": fake.base + "/api/token"})
    res = rec.recommend("happy", "match", 5)
    assert res.source == "spotify" and len(res.tracks) == 5
    assert (tmp_path / "m.sqlite").is_file()
