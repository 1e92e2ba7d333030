"""Music recommendations: catalog loading and ranking speed on a large user catalog. Prints figures, asserts nothing.

    python benchmarks/music.py                 # the figures (a 114,000-track catalog, like the Spotify tracks dataset)
    python benchmarks/music.py --tracks 2000 --repeats 2      # a quick check that the script works

The catalog is generated (random valence/energy, 20,000 artists, 114 genres) in the Spotify tracks dataset's CSV
layout in a temporary folder; nothing is downloaded. Figures: load time; `rank` (n=10) for "match" and "lift",
without feedback and with 200 likes/skips; the shipped catalog for comparison; the feedback store's write and
read times.
"""
from __future__ import annotations

import argparse
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

from ferkit.music import FeedbackStore, Recommender, load_catalog, rank

HEADER = ("track_id,artists,album_name,track_name,popularity,duration_ms,explicit,danceability,energy,key,loudness,"
          "mode,speechiness,acousticness,instrumentalness,liveness,valence,tempo,time_signature,track_genre")
B62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def write_catalog(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        f.write(HEADER + "\n")
        for i in range(n):
            tid = "".join(rng.choice(B62) for _ in range(22))
            artists = ";".join(f"Artist {rng.randrange(20000)}" for _ in range(rng.choice((1, 1, 1, 2))))
            f.write(f"{tid},{artists},Album {i},Track {i},{rng.randrange(100)},200000,False,0.5,"
                    f"{rng.random():.3f},5,-7.0,1,0.05,0.2,0.0,0.1,{rng.random():.3f},{60 + rng.random() * 120:.1f},"
                    f"4,genre-{rng.randrange(114)}\n")


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=114_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {args.tracks:,} tracks, "
          f"median of {args.repeats}")
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "tracks.csv"
        write_catalog(csv, args.tracks)
        t, cat = timed(lambda: load_catalog(csv), max(1, args.repeats // 2))
        print(f"load_catalog: {t:.2f} s for {csv.stat().st_size / 1e6:.1f} MB -> {len(cat):,} tracks")

        store = FeedbackStore(Path(tmp) / "fb.sqlite")
        rec = Recommender(cat, store)
        ids = [t.id for t in cat.tracks[:200]]
        t0 = time.perf_counter()
        for i, tid in enumerate(ids):
            rec.feedback(tid, "like" if i % 2 else "skip", "sad")
        print(f"feedback write: {(time.perf_counter() - t0) / len(ids) * 1e3:.2f} ms per like/skip")
        t, prefs = timed(lambda: store.preferences("sad"), args.repeats)
        print(f"feedback read (200 entries -> preferences): {t * 1e3:.1f} ms")

        for strategy in ("match", "lift"):
            t, _ = timed(lambda: rank(cat, "sad", strategy, 10), args.repeats)
            tf, _ = timed(lambda: rank(cat, "sad", strategy, 10, prefs), args.repeats)
            print(f"rank {strategy:<5} n=10: {t * 1e3:7.1f} ms   with feedback: {tf * 1e3:7.1f} ms")
        t, _ = timed(lambda: rec.recommend("sad", "lift", 10), args.repeats)
        print(f"Recommender.recommend (lift, with feedback, end to end): {t * 1e3:.1f} ms")

    shipped = load_catalog()
    t, _ = timed(lambda: rank(shipped, "sad", "lift", 10), args.repeats)
    print(f"shipped catalog ({len(shipped)} tracks): rank lift n=10 {t * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
