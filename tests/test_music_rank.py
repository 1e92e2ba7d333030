"""Ranking properties: closeness to the mood, artist diversity, the two strategies, reasons, feedback re-ranking."""
from __future__ import annotations

import math

import pytest

from ferkit import EMOTIONS
from ferkit.music import (LIFT_GOAL, MOODS, STRATEGIES, Catalog, Preferences, Track, check_strategy, load_catalog,
                          mood_path, rank)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def _dist(t: Track, target) -> float:
    return math.hypot(t.valence - target[0], t.energy - target[1])


def _t(i, artist, v, e, genre="pop") -> Track:
    return Track(id=f"t{i}", title=f"Song {i}", artists=(artist,), valence=v, energy=e, genre=genre)


def test_moods_cover_every_emotion_on_the_circumplex():
    assert tuple(MOODS) == EMOTIONS + ("contempt",)  # FER-2013's seven, then FER+'s eighth
    m = MOODS
    assert all(0 <= x.valence <= 1 and 0 <= x.energy <= 1 for x in m.values())
    # pleasant vs unpleasant
    assert m["happy"].valence > m["surprise"].valence > m["neutral"].valence
    assert max(m[e].valence for e in ("angry", "disgust", "fear", "sad")) < m["neutral"].valence
    # aroused vs calm
    assert m["sad"].energy < m["neutral"].energy < min(m[e].energy for e in ("angry", "fear", "surprise", "happy"))
    assert m["angry"].energy > m["fear"].energy
    assert len({(x.valence, x.energy) for x in m.values()}) == len(m)  # a distinct target each


@pytest.mark.parametrize("emotion", EMOTIONS)
def test_match_takes_the_closest_tracks(catalog, emotion):
    recs = rank(catalog, emotion, "match", 10)
    target = (MOODS[emotion].valence, MOODS[emotion].energy)
    assert len(recs) == 10
    d = [_dist(r.track, target) for r in recs]
    assert all(b >= a - 1e-9 for a, b in zip(d, d[1:])), "without feedback, a match list runs closest first"
    used = {a for r in recs for a in r.track.artists}
    chosen = {r.track.id for r in recs}
    # any track left out whose artists are not in the list is no closer than the farthest track taken
    for t in catalog:
        if t.id not in chosen and not used & set(t.artists):
            assert _dist(t, target) >= max(d) - 1e-9
    # and the list is much closer than the catalog as a whole
    all_d = sorted(_dist(t, target) for t in catalog)
    assert max(d) <= all_d[len(all_d) // 10]
    assert all(r.target == target for r in recs)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("emotion", EMOTIONS)
def test_no_artist_twice_in_a_top_10(catalog, emotion, strategy):
    recs = rank(catalog, emotion, strategy, 10)
    artists = [a for r in recs for a in r.track.artists]
    assert len(artists) == len(set(artists))


def test_diversity_beats_a_closer_repeat():
    # ten songs by one artist right on the sad target, ten other artists farther away
    tracks = [_t(i, "Same", 0.15, 0.25) for i in range(10)]
    tracks += [_t(100 + i, f"Other {i}", 0.15 + 0.03 * i, 0.30) for i in range(10)]
    recs = rank(tracks, "sad", "match", 10)
    names = [r.track.artist for r in recs]
    assert names.count("Same") == 1 and names[0] == "Same"
    # once every artist has been used, repeats fill the list rather than leaving it short
    recs = rank(tracks, "sad", "match", 15)
    assert len(recs) == 15 and [r.track.artist for r in recs].count("Same") == 5


def test_collaborations_count_for_every_artist():
    tracks = [_t(1, "A", 0.15, 0.25), Track("t2", "Duet", ("B", "A"), 0.15, 0.26), _t(3, "C", 0.5, 0.5)]
    names = [r.track.id for r in rank(tracks, "sad", "match", 2)]
    assert names == ["t1", "t3"]  # the duet shares artist A with the first pick


@pytest.mark.parametrize("emotion", ["sad", "angry", "fear", "disgust"])
def test_lift_starts_at_the_mood_and_climbs_in_valence(catalog, emotion):
    recs = rank(catalog, emotion, "lift", 10)
    mood = MOODS[emotion]
    v = [r.track.valence for r in recs]
    assert _dist(recs[0].track, (mood.valence, mood.energy)) < 0.1, "the first track meets the listener's mood"
    assert v[-1] >= LIFT_GOAL.valence - 0.1, "the last track is clearly positive"
    assert v[-1] - v[0] > 0.4
    rises = sum(b >= a for a, b in zip(v, v[1:]))
    assert rises >= 8, f"valence should climb step by step: {v}"
    assert [r.track.id for r in recs] != [r.track.id for r in rank(catalog, emotion, "match", 10)]
    for k, r in enumerate(recs):
        assert f"step {k + 1} of 10" in r.reason.lower() and emotion in r.reason


def test_lift_targets():
    path = mood_path("sad", "lift", 5)
    assert path[0] == (MOODS["sad"].valence, MOODS["sad"].energy)
    assert path[-1] == pytest.approx((LIFT_GOAL.valence, LIFT_GOAL.energy))
    assert all(b[0] > a[0] for a, b in zip(path, path[1:]))
    happy = mood_path("happy", "lift", 5)  # already positive: brighter, same energy
    assert happy[-1][0] > MOODS["happy"].valence and happy[-1][1] == MOODS["happy"].energy
    assert mood_path("sad", "match", 3) == [(MOODS["sad"].valence, MOODS["sad"].energy)] * 3


def test_every_track_says_why(catalog):
    for emotion in EMOTIONS:
        for r in rank(catalog, emotion, "match", 10):
            assert emotion in r.reason and f"{r.track.valence:.2f}" in r.reason and r.reason[0].isupper()


def test_feedback_moves_artists_and_genres():
    tracks = [_t(i, f"Artist {i}", 0.15 + 0.02 * i, 0.25, genre="folk" if i % 2 else "pop") for i in range(20)]
    base = [r.track.id for r in rank(tracks, "sad", "match", 10)]
    assert base == [f"t{i}" for i in range(10)]
    # a liked artist rises from 8th place, past closer strangers
    liked = rank(tracks, "sad", "match", 10, Preferences(artists={"artist 7": 2.0}))
    ids = [r.track.id for r in liked]
    assert ids.index("t7") < base.index("t7")
    assert "you liked Artist 7" in liked[ids.index("t7")].reason
    # a skipped track falls out of the top 10 (there are 10 more candidates)
    skipped = [r.track.id for r in rank(tracks, "sad", "match", 10, Preferences(tracks={"t0": -1.0}))]
    assert "t0" not in skipped[:5]
    # a skipped genre sinks every track of it; a liked one lifts them
    pop_down = [r.track.id for r in rank(tracks, "sad", "match", 10, Preferences(genres={"pop": -3.0}))]
    def folk_rank(ids):  # mean position of the folk tracks (odd numbers) in a list
        pos = [k for k, i in enumerate(ids) if int(i[1:]) % 2 == 1]
        return sum(pos) / len(pos)

    assert pop_down[0] == "t1" and folk_rank(pop_down) < folk_rank(base) - 0.5
    folk_up = [r.track.id for r in rank(tracks, "sad", "match", 10, Preferences(genres={"folk": 3.0}))]
    assert folk_rank(folk_up) < folk_rank(base) - 0.5
    reasons = " ".join(r.reason for r in rank(tracks, "sad", "match", 10, Preferences(genres={"pop": -3.0})))
    assert "you skipped pop (ranked lower)" in reasons


def test_bad_arguments_list_the_valid_values(catalog):
    with pytest.raises(ValueError, match=r"unknown emotion 'bored'; valid: angry, disgust, fear, happy, sad, "
                                         r"surprise, neutral"):
        rank(catalog, "bored")
    with pytest.raises(ValueError, match=r"unknown strategy 'cheer'; valid: match, lift"):
        rank(catalog, "sad", "cheer")
    with pytest.raises(ValueError, match="n must be between"):
        rank(catalog, "sad", "match", 0)
    assert check_strategy(" LIFT ") == "lift"
    assert rank(Catalog([]), "sad") == []


def test_small_catalog_returns_what_it_has():
    tracks = [_t(1, "A", 0.2, 0.2), _t(2, "B", 0.9, 0.9)]
    assert len(rank(tracks, "happy", "lift", 10)) == 2


def test_every_label_of_every_shipped_model_has_a_mood():
    """`recommend --model ferplus` and the page's music panel must not fail on a contempt face."""
    import ferkit
    from ferkit.music import MOODS, Recommender, load_catalog, mood_path

    for row in ferkit.describe_models():
        assert set(row["labels"]) <= set(MOODS), row["name"]
    assert len(mood_path("contempt", "lift", 5)) == 5
    found = Recommender(load_catalog()).recommend("contempt", n=3)
    assert found.emotion == "contempt" and len(found.tracks) == 3
