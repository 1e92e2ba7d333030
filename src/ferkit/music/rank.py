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

from .catalog import Track
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


def _feedback_bonus(tracks: list[Track], prefs: Preferences | None) -> tuple[np.ndarray, list[str]]:
    bonus = np.zeros(len(tracks))
    notes = [""] * len(tracks)
    if not prefs:
        return bonus, notes
    aff = Preferences.affinity
    for i, t in enumerate(tracks):
        parts, b = [], 0.0
        w = prefs.tracks.get(t.id, 0.0)
        if w:
            b += TRACK_WEIGHT * aff(w)
            parts.append("you liked this track" if w > 0 else "you skipped this track")
        a = max(-1.0, min(1.0, sum(aff(prefs.artists.get(x.lower(), 0.0)) for x in t.artists)))
        if a:
            b += ARTIST_WEIGHT * a
            if not w:
                parts.append(f"you {'liked' if a > 0 else 'skipped'} {t.artist}")
        if t.genre and prefs.genres.get(t.genre.lower()):
            g = aff(prefs.genres[t.genre.lower()])
            b += GENRE_WEIGHT * g
            parts.append(f"you {'liked' if g > 0 else 'skipped'} {t.genre}")
        bonus[i] = b
        if parts:
            notes[i] = "; " + " and ".join(parts) + (" (ranked higher)" if b > 0 else " (ranked lower)")
    return bonus, notes


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
    tracks = list(tracks)
    if not tracks:
        return []
    origins = origins or {}
    v = np.array([t.valence for t in tracks])
    e = np.array([t.energy for t in tracks])
    bonus, notes = _feedback_bonus(tracks, preferences)
    by_artist: dict[str, list[int]] = {}
    for i, t in enumerate(tracks):
        for a in t.artists:
            by_artist.setdefault(a.lower(), []).append(i)

    available = np.ones(len(tracks), bool)
    fresh = np.ones(len(tracks), bool)  # no artist of the track is in the list yet
    targets = mood_path(emotion, strategy, min(n, len(tracks)))
    mood = MOODS[emotion]
    out: list[Recommendation] = []
    for k, (tv, te) in enumerate(targets):
        dist = np.hypot(v - tv, e - te)
        score = 1.0 - dist / math.sqrt(2) + bonus
        pool = available & fresh if (available & fresh).any() else available
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
        reason = (f"{origin}: {why}" if origin else why[0].upper() + why[1:]) + notes[i]
        out.append(Recommendation(track=t, score=float(score[i]), target=(tv, te), reason=reason))
    return out
