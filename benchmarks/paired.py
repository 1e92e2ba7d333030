"""Two models of one label set, face by face: a report after the choices, never a way to make them.

    python benchmarks/paired.py OLD NEW [--split PrivateTest] [--data ../shared/data/fer2013]

Prints each model's accuracy on the split (INT8 files as shipped, no test-time augmentation) and the paired
McNemar test on its faces: how many only NEW gets right, how many only OLD, and how likely a split that uneven
is if the two were equally good. select_default.py runs the same test on PublicTest as part of a round's rule;
this one tells whether a gain seen on PrivateTest afterwards is beyond that split's noise.
"""
from __future__ import annotations

import argparse
import sys

from ferkit import load_recognizer
from ferkit.data import fer2013_file
from ferkit.evaluate import paired, split_set


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--split", default="PrivateTest", choices=("PublicTest", "PrivateTest"))
    ap.add_argument("--data", default=None, help="the FER-2013 folder (default: $FERKIT_DATA or ../shared/data/fer2013)")
    args = ap.parse_args()
    old, new = load_recognizer(args.old, detector="none"), load_recognizer(args.new, detector="none")
    s = split_set(fer2013_file(args.data), old.labels, args.split)
    try:
        r = paired(old, new, s)
    except ValueError as e:  # different labels: say which, without a traceback
        sys.exit(str(e))
    for role, rec in (("old", old), ("new", new)):
        # the stored name alone can be ambiguous (every candidate ensemble is named SET-accurate): the file says which
        print(f"{role} {rec.name:<24} {s.name} ({len(s.labels)} faces) accuracy {r[role]:.4f}  [{rec.model_path}]")
    print(f"paired: {r['gained']} faces only NEW gets right, {r['lost']} only OLD; McNemar p = {r['p']:.4f}")


if __name__ == "__main__":
    main()
