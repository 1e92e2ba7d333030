"""Music for an emotion: a mood on the circumplex model, ranked tracks with reasons, Spotify or a local catalog,
and likes / skips that re-rank.

    from ferkit.music import Recommender, FeedbackStore
    rec = Recommender(store=FeedbackStore("music.sqlite"))
    for r in rec.recommend("sad", strategy="lift").tracks:
        print(r.track.artist, "-", r.track.title, ":", r.reason)
"""
from .catalog import COLUMN_ALIASES, Catalog, CatalogError, Track, load_catalog
from .feedback import ACTIONS, FeedbackStore, FeedbackStoreError, Preferences, default_db_path
from .moods import LIFT_GOAL, MOODS, STRATEGIES, Mood, check_emotion, check_strategy, mood_path
from .rank import Recommendation, rank
from .recommender import PROVIDERS, Recommendations, Recommender, UnknownTrackError, check_provider
from .spotify import SpotifyProvider, SpotifySettings, SpotifyUnavailable

__all__ = ["Track", "Catalog", "CatalogError", "load_catalog", "COLUMN_ALIASES", "FeedbackStore", "FeedbackStoreError",
           "Preferences", "ACTIONS", "default_db_path", "Mood", "MOODS", "LIFT_GOAL", "STRATEGIES", "check_emotion",
           "check_strategy", "mood_path", "Recommendation", "rank", "Recommender", "Recommendations",
           "UnknownTrackError", "PROVIDERS", "check_provider", "SpotifyProvider", "SpotifySettings",
           "SpotifyUnavailable"]
