"""Which model should be the default? The rule of docs/quality.md, on PublicTest only (never PrivateTest).

    python benchmarks/select_default.py OLD NEW [--data ../shared/data/fer2013]

OLD and NEW: shipped names or .onnx paths with the same labels. NEW replaces OLD when its clean PublicTest
accuracy is at least OLD's plus `--clean-margin` and its mean accuracy over the 30 corrupted copies of
`ferkit evaluate --robustness` is above OLD's plus `--robust-margin`. The defaults are round 2's rule (at most
0.3 points lower clean, higher corrupted); round 3 ran `--clean-margin 0.001 --robust-margin -0.005`. Prints both
models' figures, a paired McNemar test on the clean faces (how many faces only one of the two gets right, and how
likely a split that uneven is if the two models were equally good) and the verdict. With `--max-p P` (round 6 on)
the paired test is part of the rule: NEW must also win that split with p < P; without it the line is information.
`--role` names what is at stake in the verdict line (round 9 judged a candidate for `fer2013-accurate`).
"""
from __future__ import annotations

import argparse
import sys
import numpy as np

from ferkit import load_recognizer
from ferkit.data import fer2013_file
from ferkit.evaluate import mean_corrupted, paired, robustness, selection_set


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
    ap.add_argument("--max-p", type=float, default=None,
                    help="also require NEW to win the paired test on the clean faces with p below this")
    ap.add_argument("--role", default="the default", help="what NEW would become, for the verdict line")
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
    pair = paired(recs["old"], recs["new"], public)
    print(f"paired on clean PublicTest: {pair['gained']} faces only NEW gets right, {pair['lost']} only OLD; "
          f"McNemar p = {pair['p']:.3f}")
    print(judge(reports["old"], reports["new"], pair["gained"], pair["lost"], pair["p"], args.clean_margin,
                args.robust_margin, args.max_p, args.role))


def judge(old: dict, new: dict, gained: int, lost: int, p: float, clean_margin: float, robust_margin: float,
          max_p: float | None = None, role: str = "the default") -> str:
    """The verdict line: each condition's figure, its threshold, ok or fails, then which model takes `role`."""
    checks = [
        ("clean", new["clean"] - old["clean"] >= clean_margin,
         f"{new['clean'] - old['clean']:+.4f} (needs >= {clean_margin:+})"),
        ("corrupted mean", new["mean_corrupted"] - old["mean_corrupted"] > robust_margin,
         f"{new['mean_corrupted'] - old['mean_corrupted']:+.4f} (needs > {robust_margin:+})"),
    ]
    if max_p is not None:  # NEW must win the split, not merely make it uneven
        checks.append(("paired", gained > lost and p < max_p, f"{gained}/{lost}, p = {p:.3f} (needs more won, p < {max_p})"))
    verdict = f"NEW becomes {role}" if all(ok for _, ok, _ in checks) else f"OLD stays {role}"
    return "; ".join(f"{name}: {text} {'ok' if ok else 'fails'}" for name, ok, text in checks) + f" -> {verdict}"


if __name__ == "__main__":
    main()
