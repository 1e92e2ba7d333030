"""`ferkit adapt`'s figures (docs/adapt.md): what a head fitted on shifted faces gains, what one fitted on clean faces
costs, how long adapting 1,000 photos takes on this CPU, and how big the head file is.

    python -m benchmarks.adapt [--data DIR] > docs/benchmarks/adapt.txt     # from the repository root, ~2 minutes

Protocol (the project's): heads are fitted on Training (the shifted set) or PublicTest (clean), and scored by
cross-validation on those same faces and on PrivateTest faces they never saw; nothing is chosen on PrivateTest. The
shift (tests/_shift.py: blur, a colour cast, JPEG quality 20, a class mix with more neutral and sad faces) was
picked among four strengths by cross-validation on Training faces alone.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

import ferkit
from benchmarks._data import fer2013
from ferkit.adapt import AdaptConfig, LabelledSet, adapt, fit_head_arrays, format_report
from ferkit.data import load_dataset
from ferkit.scenes import scene
from tests._shift import shift_faces, shifted_sample  # the shift the tests use


def cpu_name() -> str:
    try:
        return next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def accuracy(rec, images, labels) -> float:
    return float(np.mean([faces[0].emotion == t for faces, t in zip(rec.analyze_many(images), labels)]))


def held_out(result, rec, images, labels, folder: Path) -> tuple[float, float]:
    """(base, adapted) accuracy on faces the head never saw, the head loaded from its file as users load it."""
    path = folder / f"{result.head.name}.json"
    result.head.save(path)
    adapted = ferkit.load_recognizer(detector="none", adapter=path)
    return accuracy(rec, images, labels), accuracy(adapted, images, labels)


def names(split, idx) -> list[str]:
    return list(np.array(split.classes)[split.labels[idx]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="FER-2013 folder or file (default: $FERKIT_DATA, else ../shared/data/fer2013)")
    args = ap.parse_args()
    print(f"# python -m benchmarks.adapt  ({datetime.date.today()}; {cpu_name()}, {os.cpu_count()} cores, "
          f"shared with other work: timings are noisy; load average before {os.getloadavg()[0]:.1f})")
    ds = load_dataset(fer2013(args.data))
    train, public, private = ds.split("Training"), ds.split("PublicTest"), ds.split("PrivateTest")
    rec = ferkit.load_recognizer(detector="none")
    folder = Path(tempfile.mkdtemp())

    print("\n## 1. A domain shift: adapted on 1,000 shifted Training faces, scored on 1,000 shifted PrivateTest faces")
    idx, labels = shifted_sample(train, 1000, seed=0)
    result = adapt(rec, LabelledSet(shift_faces(train.pixels[idx]), list(labels), list(map(str, idx))), name="shifted")
    print(f"adapt set: {len(idx)} faces; " + ", ".join(f"{c} {n}" for c, n in result.head.info["counts"].items()))
    print(format_report(result.report))
    t_idx, t_labels = shifted_sample(private, 1000, seed=1)
    base, ours = held_out(result, rec, shift_faces(private.pixels[t_idx]), t_labels, folder)
    print(f"held out, {len(t_idx)} shifted PrivateTest faces: base {base:.1%}, adapted {ours:.1%} ({ours - base:+.1%})")

    print("\n## 2. No shift: adapted on all 3,589 clean PublicTest faces, scored on all 3,589 clean PrivateTest faces")
    idx = np.arange(len(public))
    result = adapt(rec, LabelledSet(list(public.pixels), names(public, idx), list(map(str, idx))), name="clean")
    print(format_report(result.report))
    base, ours = held_out(result, rec, list(private.pixels), names(private, np.arange(len(private))), folder)
    print(f"held out, PrivateTest: base {base:.1%}, adapted {ours:.1%} ({ours - base:+.1%})")

    print("\n## 3. Time to adapt 1,000 photos on this CPU (one run each; the machine is shared)")
    idx = np.sort(np.random.default_rng(0).choice(len(public), 1000, replace=False))
    crops = LabelledSet(list(public.pixels[idx]), names(public, idx), list(map(str, idx)))
    t0 = time.perf_counter()
    adapt(rec, crops, AdaptConfig(min_per_class=10))
    print(f"1,000 face crops (48x48, detector none): {time.perf_counter() - t0:.1f} s for the recognizer pass, "
          f"5-fold cross-validation and the final fit")
    photos_rec = ferkit.load_recognizer()  # yunet, the default detector
    photos = [scene(f, 640, 480, face_size=200) for f in public.pixels[idx]]
    t0 = time.perf_counter()
    result = adapt(photos_rec, LabelledSet(photos, names(public, idx), list(map(str, idx))), AdaptConfig(min_per_class=10))
    seconds = time.perf_counter() - t0
    print(f"1,000 frames (640x480, a FER-2013 face of 200 px placed in each, yunet detector): {seconds:.1f} s "
          f"({len(result.skipped)} skipped: no face or several)")
    x = np.random.default_rng(0).normal(size=(1000, 7))
    y = np.random.default_rng(1).integers(0, 7, 1000)
    t0 = time.perf_counter()
    for _ in range(6):  # 5 folds and the final fit
        fit_head_arrays(x, y, 7, 1.0)
    print(f"fitting alone (6 Newton fits, 5 folds and the final one, on 1,000 x 7 features): {time.perf_counter() - t0:.2f} s")

    print("\n## 4. The head file")
    for name in ("shifted", "clean"):
        path = folder / f"{name}.json"
        print(f"{name}.json: {path.stat().st_size / 1000:.1f} kB (7 classes x 7 features, with its CV figures)")
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
