"""Emotion -> target mood on Russell's circumplex model of affect, and the ranking strategies.

A mood is a point in the unit square: valence (0 = negative, 1 = positive) x energy (0 = calm, 1 = intense), the
two axes of the circumplex (valence x arousal) and the two audio features Spotify's catalogue popularised.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..labels import check_choice

__all__ = ["Mood", "MOODS", "LIFT_GOAL", "STRATEGIES", "check_emotion", "check_strategy", "mood_path"]


@dataclass(frozen=True)
class Mood:
    valence: float   # 0..1
    energy: float    # 0..1 (arousal)
    words: str       # how the mood reads to a listener; used in reasons and as Spotify search terms


# Placement follows the circumplex (Russell 1980; Posner et al. 2005): anger and fear are unpleasant and aroused
# (anger more so), disgust unpleasant and moderately aroused, sadness unpleasant and deactivated, happiness
# pleasant and aroused, surprise aroused and mildly pleasant, neutral the centre, slightly calm; contempt (FER+'s
# eighth class) unpleasant and fairly calm, cooler than disgust.
MOODS: dict[str, Mood] = {
    "angry":    Mood(0.15, 0.90, "angry, intense"),
    "disgust":  Mood(0.25, 0.60, "dark, brooding"),
    "fear":     Mood(0.25, 0.70, "tense, anxious"),
    "happy":    Mood(0.85, 0.75, "happy, upbeat"),
    "sad":      Mood(0.15, 0.25, "sad, melancholy"),
    "surprise": Mood(0.70, 0.85, "euphoric, energetic"),
    "neutral":  Mood(0.50, 0.45, "easygoing, relaxed"),
    "contempt": Mood(0.30, 0.45, "cool, detached"),
}


def check_emotion(name: str) -> str:
    """Return ``name`` normalised to lower case if a mood is known for it (FER-2013's seven emotions and FER+'s
    contempt), else raise ValueError listing them."""
    return check_choice("emotion", name, tuple(MOODS))

# Where "lift" heads: clearly positive, moderately energetic (calmer than anger, livelier than sadness).
LIFT_GOAL = Mood(0.85, 0.60, "uplifting, feel-good")

# "match": music that fits the mood. "lift": start near the mood, then move step by step toward LIFT_GOAL.
STRATEGIES: tuple[str, ...] = ("match", "lift")


def check_strategy(name: str) -> str:
    """Return ``name`` normalised to lower case, or raise ValueError listing the valid strategies."""
    return check_choice("strategy", name, STRATEGIES)


def mood_path(emotion: str, strategy: str, n: int) -> list[tuple[float, float]]:
    """The target (valence, energy) for each of ``n`` positions of a list.

    "match": the emotion's mood at every position. "lift": a straight walk from the mood to a goal with at least
    LIFT_GOAL's valence; moods that are already positive keep their energy and only gain valence where they can.
    """
    mood = MOODS[check_emotion(emotion)]
    if check_strategy(strategy) == "match" or n <= 1:
        return [(mood.valence, mood.energy)] * max(n, 0)
    gv = min(0.95, max(LIFT_GOAL.valence, mood.valence + 0.1))  # positive moods still gain a little
    ge = LIFT_GOAL.energy if mood.valence < LIFT_GOAL.valence - 0.2 else mood.energy
    return [(mood.valence + (gv - mood.valence) * k / (n - 1), mood.energy + (ge - mood.energy) * k / (n - 1))
            for k in range(n)]
