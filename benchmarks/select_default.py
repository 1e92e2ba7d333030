"""Which model should be the default? The rule of docs/quality.md, on PublicTest only (never PrivateTest).

    python benchmarks/select_default.py OLD NEW [--data ../shared/data/fer2013]

OLD and NEW: shipped names or .onnx paths with the same labels. NEW replaces OLD when its clean PublicTest
accuracy is at least OLD's plus `--clean-margin` and its mean accuracy over the 30 corrupted copies of
`ferkit evaluate --robustness` is above OLD's plus `--robust-margin`. The defaults are round 2's rule (at most
0.3 points lower clean, higher corrupted); round 3 ran `--clean-margin 0.001 --robust-margin -0.005`. Prints both
models' figures, the verdict and, for information, a paired McNemar test on the clean faces (how many faces only
one of the two gets right, and how likely a split that uneven is if the two models were equally good).
"""
from __future__ import annotations

import argparse
import sys
import numpy as np

from ferkit import load_recognizer
from ferkit.data import fer2013_file
from ferkit.evaluate import mcnemar, mean_corrupted, robustness, selection_set


def public_report(rec, public) -> dict:
    rob = robustness(rec, public)
    rob["mean_corrupted"] = mean_corrupted(rob)
    rob["model"] = rec.name
    return rob


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--data", default=None, help="the FER-2013 folder (default: $FERKIT_DATA or ../shared/data/fer2013)")
    ap.add_argument("--clean-margin", type=float, default=-0.003, help="NEW clean >= OLD clean + this")
    ap.add_argument("--robust-margin", type=float, default=0.0, help="NEW corrupted mean > OLD's + this")
    args = ap.parse_args()
    recs = {"old": load_recognizer(args.old, detector="none"), "new": load_recognizer(args.new, detector="none")}
    if recs["old"].labels != recs["new"].labels:
        sys.exit(f"{args.old} and {args.new} have different labels: {recs['old'].labels} vs {recs['new'].labels}")
    public = selection_set(fer2013_file(args.data), recs["old"].labels)  # read once, used for both models
    reports = {}
    for role, rec in recs.items():
        r = reports[role] = public_report(rec, public)
        print(f"{role} {r['model']:<24} PublicTest clean {r['clean']:.4f}  mean of 30 corrupted {r['mean_corrupted']:.4f}  "
              + "  ".join(f"{k} {np.mean(v['accuracy']):.3f}" for k, v in r["corruptions"].items()))
    correct = {role: rec.classify(public.pixels).argmax(1) == public.labels for role, rec in recs.items()}
    gained, lost, p = mcnemar(correct["old"], correct["new"])
    print(f"paired on clean PublicTest: {gained} faces only NEW gets right, {lost} only OLD; McNemar p = {p:.3f}")
    old, new = reports["old"], reports["new"]
    ok_clean = new["clean"] >= old["clean"] + args.clean_margin
    ok_robust = new["mean_corrupted"] > old["mean_corrupted"] + args.robust_margin
    verdict = "NEW becomes the default" if ok_clean and ok_robust else "OLD stays the default"
    print(f"clean: {new['clean'] - old['clean']:+.4f} (needs >= {args.clean_margin:+}) {'ok' if ok_clean else 'fails'}; "
          f"corrupted mean: {new['mean_corrupted'] - old['mean_corrupted']:+.4f} (needs > {args.robust_margin:+}) {'ok' if ok_robust else 'fails'} -> {verdict}")


if __name__ == "__main__":
    main()
