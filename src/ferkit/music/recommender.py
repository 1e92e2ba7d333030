"""The front door: a Recommender holds a catalog, a feedback store and a provider, and answers emotion -> tracks."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..labels import check_choice
from .catalog import Catalog, Track, load_catalog
from .feedback import FeedbackStore, FeedbackStoreError, check_action, default_db_path
from .moods import check_emotion, check_strategy
from .rank import Recommendation, rank
from .spotify import SpotifyProvider, SpotifySettings, SpotifyUnavailable

__all__ = ["Recommender", "Recommendations", "UnknownTrackError", "PROVIDERS", "check_provider"]

PROVIDERS: tuple[str, ...] = ("local", "spotify")


def check_provider(name: str) -> str:
    return check_choice("provider", name, PROVIDERS)


class UnknownTrackError(LookupError):
    """Feedback for a track id that is neither in the catalog nor among the tracks recommended before."""


@dataclass
class Recommendations:
    emotion: str
    strategy: str
    source: str              # "local" or "spotify": where the tracks came from
    notice: str | None       # why the source differs from the one asked for, else None
    tracks: list[Recommendation] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"emotion": self.emotion, "strategy": self.strategy, "source": self.source, "notice": self.notice,
                "tracks": [r.to_dict() for r in self.tracks]}


class Recommender:
    """Emotion -> ranked tracks, with feedback.

        rec = Recommender(store=FeedbackStore("music.sqlite"))
        for r in rec.recommend("sad", "lift", n=10).tracks:
            print(r.track.title, r.track.artist, r.reason)

    ``catalog``: a Catalog (default: the shipped one). ``store``: a FeedbackStore, or None for no feedback.
    ``provider``: "local" or "spotify"; a Spotify failure falls back to the catalog with a notice.
    """

    def __init__(self, catalog: Catalog | None = None, store: FeedbackStore | None = None,
                 provider: str = "local", spotify: SpotifyProvider | None = None):
        self.catalog = catalog if catalog is not None else load_catalog()
        self.store = store
        self.provider = check_provider(provider)
        self.spotify = spotify if spotify is not None or self.provider == "local" else SpotifyProvider()

    @classmethod
    def from_env(cls, environ=None) -> "Recommender":
        """Settings from FERKIT_MUSIC_CATALOG (a CSV path; default the shipped one), FERKIT_MUSIC_DB (the feedback
        file; default ~/.local/share/ferkit/music.sqlite), FERKIT_MUSIC_PROVIDER (local or spotify) and the
        Spotify variables of SpotifySettings.from_env."""
        env = os.environ if environ is None else environ
        catalog = load_catalog(env.get("FERKIT_MUSIC_CATALOG") or None)
        db = env.get("FERKIT_MUSIC_DB") or default_db_path()
        provider = check_provider(env.get("FERKIT_MUSIC_PROVIDER") or "local")
        spotify = SpotifyProvider(SpotifySettings.from_env(env)) if provider == "spotify" else None
        return cls(catalog, FeedbackStore(db), provider, spotify)

    def recommend(self, emotion: str, strategy: str = "match", n: int = 10,
                  use_feedback: bool = True) -> Recommendations:
        """The ``n`` best tracks for ``emotion``. ``use_feedback=False`` ranks without likes and skips (tracks
        recommended from Spotify are still remembered, so that they can be liked or skipped later).
        Raises ValueError for an unknown emotion or strategy; never raises for a Spotify failure (the answer then
        comes from the catalog, with ``notice`` saying why) nor for an unusable feedback file (the ranking then
        ignores feedback, and ``notice`` says so)."""
        emotion, strategy = check_emotion(emotion), check_strategy(strategy)
        notices: list[str] = []
        prefs = None
        if self.store is not None and use_feedback:
            try:
                prefs = self.store.preferences(emotion)
            except FeedbackStoreError as e:  # rank without feedback rather than fail
                notices.append(f"likes and skips not used: {e}")
        if self.provider == "spotify":
            try:
                found, origins = self.spotify.candidates(emotion, strategy, n, self.catalog)
            except SpotifyUnavailable as e:
                notices.insert(0, f"{e}; showing the local catalog instead")
            else:
                tracks = rank(found, emotion, strategy, n, prefs, origins)
                if self.store is not None:
                    try:
                        self.store.remember(r.track for r in tracks)
                    except FeedbackStoreError as e:
                        notices.append(f"these tracks cannot be liked or skipped later: {e}")
                return Recommendations(emotion, strategy, "spotify", "; ".join(notices) or None, tracks)
        tracks = rank(self.catalog, emotion, strategy, n, prefs)
        return Recommendations(emotion, strategy, "local", "; ".join(notices) or None, tracks)

    def find_track(self, track_id: str) -> Track | None:
        """A track of the catalog, or one recommended from Spotify before (kept by the store)."""
        track = self.catalog.get(track_id)
        if track is None and self.store is not None:
            track = self.store.seen_track(track_id)
        return track

    def feedback(self, track_id: str, action: str, emotion: str | None = None) -> Track:
        """Record a like or skip; returns the track. Raises UnknownTrackError, ValueError (bad action/emotion),
        FeedbackStoreError (the file cannot be written)."""
        action = check_action(action)
        emotion = check_emotion(emotion) if emotion is not None else None
        if self.store is None:
            raise ValueError("this recommender has no feedback store")
        track = self.find_track(track_id)
        if track is None:
            raise UnknownTrackError(f"unknown track id {track_id!r}: not in {self.catalog.source} "
                                    "nor among the tracks recommended from Spotify")
        self.store.record(track, action, emotion)
        return track
