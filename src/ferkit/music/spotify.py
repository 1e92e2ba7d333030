"""Spotify as a source of tracks, through spotipy with the client-credentials flow (no user login).

Spotify's recommendations and audio-features endpoints are closed to new apps, so this provider *searches*:
for each point of the mood path it searches playlists and tracks with mood words ("sad songs", "uplifting" ...),
reads the first playlist's items, and gives every track found the valence and energy of the words that found it
(an estimate, said so in the reason) unless the same recording is in the local catalog, whose values win.

Any failure (no credentials, 401, 429, a timeout, no network, an odd answer) raises `SpotifyUnavailable` with a
sentence for the user; the Recommender then answers from the local catalog with that sentence as its notice.
After a 429 the provider does not call Spotify again until the Retry-After time has passed, and after a timeout
or a network failure not for NETWORK_BACKOFF_S seconds, so that a page does not wait on a dead service each time.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

from .catalog import Catalog, Track, search_url
from .moods import mood_path

__all__ = ["SpotifyProvider", "SpotifySettings", "SpotifyUnavailable", "SEARCH_MOODS"]

NETWORK_BACKOFF_S = 30  # after a timeout or a network failure, answer from the catalog at once for this long
API_URL = "https://api.spotify.com/v1/"
TOKEN_URL = "https://accounts.spotify.com/api/token"

# (valence, energy, search words): points of the circumplex with words that find music there.
SEARCH_MOODS: tuple[tuple[float, float, str], ...] = (
    (0.15, 0.25, "sad songs"),
    (0.30, 0.30, "melancholy acoustic"),
    (0.15, 0.90, "angry rock"),
    (0.25, 0.70, "dark tense"),
    (0.25, 0.55, "dark moody"),
    (0.45, 0.40, "hopeful"),
    (0.50, 0.45, "chill"),
    (0.70, 0.55, "feel good acoustic"),
    (0.85, 0.60, "uplifting"),
    (0.85, 0.75, "happy hits"),
    (0.70, 0.85, "euphoric dance"),
)


class SpotifyUnavailable(RuntimeError):
    """Spotify cannot answer now; ``str(e)`` is a sentence for the user."""


@dataclass(frozen=True)
class SpotifySettings:
    client_id: str | None = None
    client_secret: str | None = None
    api_url: str = API_URL        # spotipy's `prefix`; tests point it at a local fake
    token_url: str = TOKEN_URL    # SpotifyClientCredentials.OAUTH_TOKEN_URL
    timeout: float = 5.0          # seconds per HTTP request
    market: str | None = None     # ISO 3166-1 alpha-2, e.g. "GB"; None = Spotify's default
    playlist_tracks: int = 30     # items read from each mood playlist
    search_tracks: int = 20       # tracks from each track search

    def __post_init__(self):
        if not self.timeout > 0:
            raise ValueError(f"the Spotify timeout must be a positive number of seconds, got {self.timeout!r}")

    @classmethod
    def from_env(cls, environ=None) -> "SpotifySettings":
        """SPOTIPY_CLIENT_ID, SPOTIPY_CLIENT_SECRET (spotipy's names), FERKIT_SPOTIFY_API_URL, _TOKEN_URL,
        _TIMEOUT and _MARKET."""
        env = os.environ if environ is None else environ
        timeout = env.get("FERKIT_SPOTIFY_TIMEOUT", "5")
        try:
            timeout_s = float(timeout)
        except ValueError:
            raise ValueError(f"FERKIT_SPOTIFY_TIMEOUT {timeout!r} is not a number of seconds") from None
        return cls(client_id=env.get("SPOTIPY_CLIENT_ID") or None,
                   client_secret=env.get("SPOTIPY_CLIENT_SECRET") or None,
                   api_url=env.get("FERKIT_SPOTIFY_API_URL") or API_URL,
                   token_url=env.get("FERKIT_SPOTIFY_TOKEN_URL") or TOKEN_URL,
                   timeout=timeout_s, market=env.get("FERKIT_SPOTIFY_MARKET") or None)


@dataclass
class SpotifyProvider:
    settings: SpotifySettings = field(default_factory=SpotifySettings.from_env)
    _client: object = field(default=None, init=False, repr=False)
    _retry_at: float = field(default=0.0, init=False, repr=False)  # time.monotonic() before which we do not call
    _wait_reason: str = field(default="", init=False, repr=False)

    def _spotify(self):
        if self._client is not None:
            return self._client
        s = self.settings
        if not (s.client_id and s.client_secret):
            raise SpotifyUnavailable("Spotify credentials are not set (SPOTIPY_CLIENT_ID and SPOTIPY_CLIENT_SECRET)")
        try:
            import requests
            import spotipy
            from spotipy.cache_handler import MemoryCacheHandler
        except ImportError:
            raise SpotifyUnavailable("spotipy is not installed (pip install 'ferkit[music]')") from None
        auth = spotipy.SpotifyClientCredentials(
            s.client_id, s.client_secret, requests_session=requests.Session(), requests_timeout=s.timeout,
            cache_handler=MemoryCacheHandler())  # never a .cache file in the working directory
        auth.OAUTH_TOKEN_URL = s.token_url
        # A plain session: no urllib3 retries, so a 429 comes back at once with its Retry-After header.
        sp = spotipy.Spotify(auth_manager=auth, requests_session=requests.Session(), requests_timeout=s.timeout)
        sp.prefix = s.api_url if s.api_url.endswith("/") else s.api_url + "/"
        self._client = sp
        return sp

    def candidates(self, emotion: str, strategy: str, n: int, catalog: Catalog | None = None
                   ) -> tuple[list[Track], dict[str, str]]:
        """Tracks found on Spotify for the mood path, and for each track id where it was found.

        Raises SpotifyUnavailable with a user-facing sentence on any failure.
        """
        wait = self._retry_at - time.monotonic()
        if wait > 0:
            raise SpotifyUnavailable(f"{self._wait_reason}; trying again in {math.ceil(wait)} s")
        sp = self._spotify()
        try:
            return self._search(sp, emotion, strategy, n, catalog)
        except SpotifyUnavailable:
            raise
        except Exception as e:  # noqa: BLE001 - classified below; unknown kinds are re-raised
            raise self._explain(e) from e

    def _explain(self, e: Exception) -> Exception:
        import requests
        from spotipy.exceptions import SpotifyException, SpotifyOauthError

        if isinstance(e, SpotifyOauthError):
            return SpotifyUnavailable(f"Spotify refused the credentials ({e.error or 'token request failed'})")
        if isinstance(e, SpotifyException):
            if e.http_status == 401:
                return SpotifyUnavailable("Spotify refused the access token (HTTP 401)")
            if e.http_status == 429:
                retry = _retry_after(getattr(e, "headers", None))
                self._back_off(retry, "Spotify asked us to wait (rate limit)")
                return SpotifyUnavailable(f"Spotify is rate-limiting requests (HTTP 429); retry after {retry} s")
            return SpotifyUnavailable(f"Spotify answered HTTP {e.http_status}")
        if isinstance(e, requests.Timeout):
            self._back_off(NETWORK_BACKOFF_S, "Spotify did not answer a moment ago")
            return SpotifyUnavailable(f"Spotify did not answer within {self.settings.timeout:g} s")
        if isinstance(e, (requests.RequestException, OSError)):
            self._back_off(NETWORK_BACKOFF_S, "Spotify could not be reached a moment ago")
            return SpotifyUnavailable("Spotify could not be reached (no connection)")
        if isinstance(e, (KeyError, TypeError, ValueError, AttributeError)):
            return SpotifyUnavailable(f"Spotify sent an answer ferkit does not understand ({e})")
        return e

    def _back_off(self, seconds: float, reason: str) -> None:
        self._retry_at = time.monotonic() + seconds
        self._wait_reason = reason

    def _search(self, sp, emotion, strategy, n, catalog):
        from spotipy.exceptions import SpotifyException

        tracks: list[Track] = []
        origins: dict[str, str] = {}
        for valence, energy, words in _queries(emotion, strategy, n):
            found = sp.search(q=words, type="playlist,track", limit=10, market=self.settings.market) or {}
            items: list[tuple[dict, str]] = []
            playlists = [p for p in ((found.get("playlists") or {}).get("items") or []) if p and p.get("id")]
            if playlists:
                pl = playlists[0]
                try:
                    page = sp.playlist_items(pl["id"], limit=self.settings.playlist_tracks,
                                             market=self.settings.market, additional_types=("track",)) or {}
                except SpotifyException as e:
                    # Spotify-owned playlists are closed to new apps (403/404); 400: an id spotipy rejects. Skip.
                    if e.http_status not in (400, 403, 404):
                        raise
                    page = {}
                for it in page.get("items") or []:
                    t = (it or {}).get("track") or (it or {}).get("item")
                    items.append((t, f"Spotify playlist '{pl.get('name', '?')}' (search '{words}')"))
            for t in ((found.get("tracks") or {}).get("items") or [])[: self.settings.search_tracks]:
                items.append((t, f"Spotify search '{words}'"))
            for t, where in items:
                track, in_catalog = _to_track(t, valence, energy, catalog)
                if track is None or track.id in origins:
                    continue
                origins[track.id] = f"Found via {where}" + (", mood from the local catalog" if in_catalog
                                                            else ", mood estimated from the search words")
                tracks.append(track)
        if not tracks:
            raise SpotifyUnavailable("Spotify found no tracks for this mood")
        return tracks, origins


def _queries(emotion: str, strategy: str, n: int) -> list[tuple[float, float, str]]:
    """The search words nearest to the mood path: two for "match", one per quarter of the path for "lift"."""
    path = mood_path(emotion, strategy, max(n, 4))
    points = [path[0]] if strategy == "match" else [path[round(i * (len(path) - 1) / 3)] for i in range(4)]
    chosen: list[tuple[float, float, str]] = []
    for tv, te in points:
        ordered = sorted(SEARCH_MOODS, key=lambda m: math.hypot(m[0] - tv, m[1] - te))
        for m in ordered[: 2 if strategy == "match" else 1]:
            if m not in chosen:
                chosen.append(m)
    return chosen


def _retry_after(headers) -> int:
    try:
        return max(1, int(float((headers or {}).get("Retry-After", 30))))
    except (TypeError, ValueError):
        return 30


def _to_track(t: dict | None, valence: float, energy: float,
              catalog: Catalog | None) -> tuple[Track | None, bool]:
    """A Spotify track object -> (Track, whether its mood came from the catalog); (None, False) for episodes,
    local files and unplayable entries."""
    if not t or t.get("type", "track") != "track" or not t.get("id") or t.get("is_local"):
        return None, False
    artists = tuple(a["name"] for a in t.get("artists") or [] if a and a.get("name"))
    if not artists or not t.get("name"):
        return None, False
    known = catalog.find(artists[0], t["name"]) if catalog is not None else None
    date = ((t.get("album") or {}).get("release_date") or "")[:4]
    track = Track(id=f"spotify:track:{t['id']}", title=t["name"], artists=artists,
                  valence=known.valence if known else valence, energy=known.energy if known else energy,
                  genre=known.genre if known else "", year=int(date) if date.isdigit() else None,
                  url=(t.get("external_urls") or {}).get("spotify") or search_url(artists[0], t["name"]))
    return track, known is not None
