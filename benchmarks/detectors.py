"""Face detectors side by side on FER-2013 PrivateTest faces placed in 640x480 frames.

    python benchmarks/detectors.py [--data ../shared/data/fer2013] [--faces 300]

For each detector: the share of faces found (exactly one box), how its box frames the face compared with the
FER-2013 crop (size ratio and centre offset: the classifier was trained on those crops), the time per frame, and
the emotion accuracy end to end (detect, crop, classify) on the faces it found and on all faces.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from ferkit import load_recognizer
from ferkit.data import load_dataset
from _data import fer2013  # --data, $FERKIT_DATA or ../shared/data/fer2013 (benchmarks/_data.py)
from ferkit.scenes import pad_face


def frame_with_face(face48: np.ndarray, size: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """A 640x480 BGR frame with the face enlarged to `size` px, border-replicated around it (context the
    detectors need), at a random place; returns the frame and the face's true box (x, y, w, h)."""
    f = pad_face(face48, size, pad=1 / 3)
    p = size // 3
    frame = np.full((480, 640, 3), 110, np.uint8)
    y, x = rng.integers(0, 480 - f.shape[0] + 1), rng.integers(0, 640 - f.shape[1] + 1)
    frame[y:y + f.shape[0], x:x + f.shape[1]] = f[:, :, None]
    return frame, np.array([x + p, y + p, size, size])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="the FER-2013 folder (default: $FERKIT_DATA or ../shared/data/fer2013)")
    ap.add_argument("--faces", type=int, default=300)
    ap.add_argument("--sizes", type=int, nargs="+", default=[80, 160])
    args = ap.parse_args()
    ds = load_dataset(fer2013(args.data))
    test = ds.split("PrivateTest")
    n = min(args.faces, len(test))
    crop_acc = float((load_recognizer(detector="none").classify(test.pixels[:n]).argmax(1) == test.labels[:n]).mean())
    print(f"{n} PrivateTest faces; accuracy on the original crops (no detector): {crop_acc:.3f}")
    print(f"{'detector':<10} {'face px':>7} {'found':>6} {'size ratio':>10} {'dx':>6} {'dy':>6} {'ms/frame':>8} {'acc found':>9} {'acc all':>8}")
    for name in ("haar", "blazeface"):
        rec = load_recognizer(detector=name, threads=2)
        for size in args.sizes:
            rng = np.random.default_rng(0)
            found, ratios, ms, correct = 0, [], [], 0
            for i in range(n):
                frame, truth = frame_with_face(test.pixels[i], size, rng)
                t = time.perf_counter()
                boxes, scores = rec.detector.detect(frame)
                ms.append((time.perf_counter() - t) * 1000)
                if len(boxes) != 1:
                    continue
                found += 1
                b = boxes[0]
                ratios.append([b[2] / truth[2], (b[0] + b[2] / 2 - truth[0] - truth[2] / 2) / truth[2],
                               (b[1] + b[3] / 2 - truth[1] - truth[3] / 2) / truth[3]])
                face = rec.analyze_boxes(frame, boxes, scores)[0]
                correct += rec.labels.index(face.emotion) == test.labels[i]
            r = np.median(ratios, 0) if ratios else [float("nan")] * 3
            print(f"{name:<10} {size:>7} {found / n:>6.1%} {r[0]:>10.2f} {r[1]:>+6.2f} {r[2]:>+6.2f} {statistics.median(ms):>8.2f} "
                  f"{correct / max(found, 1):>9.3f} {correct / n:>8.3f}")


if __name__ == "__main__":
    main()
