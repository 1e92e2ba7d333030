"""Rank tracks for an emotion: closeness to a target mood, feedback, and no artist twice while others are left.

Each list position k has a target (valence, energy) from `moods.mood_path`: the same point for "match", a walk
toward higher valence for "lift". Position by position, the best remaining track by

    score = fit + feedback bonus,   fit = 1 - distance(track, target) / sqrt(2)   (1 = on target, 0 = far corner)

is taken, skipping tracks whose artist is already in the list until every artist has been used once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .catalog import Catalog, Track, TrackIndex
from .feedback import Preferences
from .moods import LIFT_GOAL, MOODS, check_emotion, check_strategy, mood_path

__all__ = ["Recommendation", "rank", "ARTIST_WEIGHT", "GENRE_WEIGHT", "TRACK_WEIGHT"]

# Feedback bonus = weight x affinity (affinity in (-1, 1), see Preferences.affinity). For scale: moving 0.1 in
# valence costs about 0.07 of fit, so a liked artist (+0.046 after one like) beats a slightly closer stranger,
# and a skipped track (-0.115 after one skip) drops well down its list.
ARTIST_WEIGHT = 0.10
GENRE_WEIGHT = 0.06
TRACK_WEIGHT = 0.25
MAX_N = 500


@dataclass(frozen=True)
class Recommendation:
    track: Track
    score: float           # fit + feedback bonus
    target: tuple[float, float]
    reason: str

    def to_dict(self) -> dict:
        d = self.track.to_dict()
        d["reason"] = self.reason
        d["score"] = round(self.score, 4)
        return d


def _feedback_bonus(index: "TrackIndex", prefs: Preferences | None) -> np.ndarray:
    """Per-track bonus (N,): TRACK_WEIGHT x the track's affinity + ARTIST_WEIGHT x its artists' summed affinity
    (clipped to [-1, 1]) + GENRE_WEIGHT x its genre's affinity. Only tracks with feedback are touched."""
    bonus = np.zeros(len(index.valence))
    if not prefs:
        return bonus
    aff = Preferences.affinity
    for tid, w in prefs.tracks.items():
        i = index.by_id.get(tid)
        if i is not None:
            bonus[i] += TRACK_WEIGHT * aff(w)
    artist = np.zeros_like(bonus)
    for name, w in prefs.artists.items():
        idx = index.by_artist.get(name)
        if idx is not None:
            artist[idx] += aff(w)
    bonus += ARTIST_WEIGHT * np.clip(artist, -1.0, 1.0)
    for genre, w in prefs.genres.items():
        idx = index.by_genre.get(genre)
        if idx is not None:
            bonus[idx] += GENRE_WEIGHT * aff(w)
    return bonus


def _feedback_note(t: Track, prefs: Preferences | None, bonus: float) -> str:
    """'; you liked Adele and you liked soul (ranked higher)', or '' when no feedback touched the track."""
    if not prefs:
        return ""
    parts = []
    w = prefs.tracks.get(t.id, 0.0)
    if w:
        parts.append("you liked this track" if w > 0 else "you skipped this track")
    a = sum(prefs.artists.get(x.lower(), 0.0) for x in t.artists)
    if a and not w:
        parts.append(f"you {'liked' if a > 0 else 'skipped'} {t.artist}")
    g = prefs.genres.get(t.genre.lower(), 0.0) if t.genre else 0.0
    if g:
        parts.append(f"you {'liked' if g > 0 else 'skipped'} {t.genre}")
    if not parts:
        return ""
    return "; " + " and ".join(parts) + (" (ranked higher)" if bonus > 0 else " (ranked lower)")


def _words(v: float, e: float) -> str:
    vw = "dark" if v < 0.3 else "bittersweet" if v < 0.45 else "balanced" if v < 0.6 else "bright" if v < 0.75 \
        else "joyful"
    ew = "calm" if e < 0.3 else "gentle" if e < 0.45 else "steady" if e < 0.6 else "lively" if e < 0.8 else "intense"
    return f"{vw} and {ew}"


def _closeness(d: float) -> str:
    return "very close to" if d < 0.1 else "close to" if d < 0.2 else "near" if d < 0.35 else "the closest left to"


def rank(tracks, emotion: str, strategy: str = "match", n: int = 10, preferences: Preferences | None = None,
         origins: dict[str, str] | None = None) -> list[Recommendation]:
    """The ``n`` best tracks for ``emotion`` under ``strategy``, each with its reason.

    ``preferences`` (from a FeedbackStore) moves liked artists, genres and tracks up and skipped ones down;
    ``origins`` maps a track id to where it came from (prefixed to its reason, e.g. a Spotify search).
    Raises ValueError for an unknown emotion or strategy, or n < 1.
    """
    emotion, strategy = check_emotion(emotion), check_strategy(strategy)
    if not 1 <= n <= MAX_N:
        raise ValueError(f"n must be between 1 and {MAX_N}, got {n}")
    index = tracks.index if isinstance(tracks, Catalog) else TrackIndex.build(tracks)
    tracks = index.tracks
    if not tracks:
        return []
    origins = origins or {}
    v, e = index.valence, index.energy
    bonus = _feedback_bonus(index, preferences)
    by_artist = index.by_artist

    available = np.ones(len(tracks), bool)
    fresh = np.ones(len(tracks), bool)  # no artist of the track is in the list yet
    targets = mood_path(emotion, strategy, min(n, len(tracks)))
    mood = MOODS[emotion]
    out: list[Recommendation] = []
    dist = score = None
    for k, (tv, te) in enumerate(targets):
        if k == 0 or targets[k] != targets[k - 1]:  # "match" computes the distances once
            dist = np.hypot(v - tv, e - te)
            score = 1.0 - dist / math.sqrt(2) + bonus
        pool = available & fresh
        if not pool.any():  # every artist is in the list: repeats may fill it
            pool = available
        i = int(np.argmax(np.where(pool, score, -np.inf)))
        t = tracks[i]
        available[i] = False
        for a in t.artists:
            fresh[by_artist[a.lower()]] = False
        d = float(dist[i])
        if strategy == "match":
            why = (f"{_words(t.valence, t.energy)} (valence {t.valence:.2f}, energy {t.energy:.2f}), "
                   f"{_closeness(d)} the {emotion} mood ({mood.words}: {tv:.2f}, {te:.2f})")
        else:
            goal = "uplifting" if mood.valence < LIFT_GOAL.valence - 0.2 else "brighter"
            why = (f"step {k + 1} of {len(targets)} from {emotion} toward {goal}: {_words(t.valence, t.energy)} "
                   f"(valence {t.valence:.2f}, energy {t.energy:.2f}), {_closeness(d)} this step's target "
                   f"({tv:.2f}, {te:.2f})")
        origin = origins.get(t.id)
        reason = (f"{origin}: {why}" if origin else why[0].upper() + why[1:]) + _feedback_note(t, preferences,
                                                                                              float(bonus[i]))
        out.append(Recommendation(track=t, score=float(score[i]), target=(tv, te), reason=reason))
    return out
