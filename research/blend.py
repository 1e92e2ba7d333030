"""Does the FER+ model help the FER-2013 task? Blend its 7 shared classes into the FER-2013 model.

    python -m research.blend [--data DIR]

Prints accuracy on FER-2013 PublicTest (the selection split: a blend weight would be chosen here, never on
PrivateTest) for weights 0 (FER-2013 model alone) to 1 (FER+ model alone, contempt dropped and renormalised).
"""
from __future__ import annotations

import argparse

import numpy as np

from ferkit import EMOTIONS, load_recognizer
from ferkit.config import data_path
from ferkit.data import load_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="the FER-2013 folder (default: $FERKIT_DATA)")
    args = ap.parse_args()
    ds = load_dataset(data_path(args.data))
    val = ds.split("PublicTest")
    a = load_recognizer("fer2013", detector="none").classify(val.pixels)
    fp = load_recognizer("ferplus", detector="none")
    b8 = fp.classify(val.pixels)
    b = np.stack([b8[:, fp.labels.index(e)] for e in EMOTIONS], 1)
    b /= b.sum(1, keepdims=True)
    print(f"FER-2013 PublicTest ({len(val)} faces): accuracy of (1 - w) * fer2013 + w * ferplus")
    for w in (0.0, 0.1, 0.2, 0.3, 0.5, 1.0):
        p = (1 - w) * a + w * b
        print(f"  w = {w:.1f}: {(p.argmax(1) == val.labels).mean():.4f}")


if __name__ == "__main__":
    main()
