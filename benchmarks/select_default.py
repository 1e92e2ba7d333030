"""Which model should be the default? The rule of docs/quality.md, on PublicTest only (never PrivateTest).

    python benchmarks/select_default.py OLD NEW [--data ../shared/data/fer2013] [--out docs/eval/selection]

OLD and NEW: shipped names or .onnx paths with the same labels. NEW replaces OLD when its clean PublicTest
accuracy is at most `--max-drop` (0.003) below OLD's and its mean accuracy over the 30 corrupted copies of
`ferkit evaluate --robustness` is higher. Prints both models' figures and the verdict; writes each report.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ferkit import load_recognizer
from ferkit.data import fer2013_file
from ferkit.evaluate import robustness, selection_set


def public_report(model: str, data: Path) -> dict:
    rec = load_recognizer(model, detector="none")
    rob = robustness(rec, selection_set(data, rec.labels))
    rob["mean_corrupted"] = float(np.mean([a for v in rob["corruptions"].values() for a in v["accuracy"]]))
    rob["model"] = rec.name
    return rob


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--data", default=None, help="the FER-2013 folder (default: $FERKIT_DATA or ../shared/data/fer2013)")
    ap.add_argument("--max-drop", type=float, default=0.003)
    ap.add_argument("--out", default=None, help="write report_<name>.json for each model here")
    args = ap.parse_args()
    data = fer2013_file(args.data)
    reports = {}
    for role, model in (("old", args.old), ("new", args.new)):
        r = reports[role] = public_report(model, data)
        print(f"{role} {r['model']:<24} PublicTest clean {r['clean']:.4f}  mean of 30 corrupted {r['mean_corrupted']:.4f}  "
              + "  ".join(f"{k} {np.mean(v['accuracy']):.3f}" for k, v in r["corruptions"].items()))
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            (Path(args.out) / f"publictest_{Path(str(model)).stem}.json").write_text(json.dumps(r, indent=1))
    old, new = reports["old"], reports["new"]
    ok_clean = new["clean"] >= old["clean"] - args.max_drop
    ok_robust = new["mean_corrupted"] > old["mean_corrupted"]
    verdict = "NEW becomes the default" if ok_clean and ok_robust else "OLD stays the default"
    print(f"clean: {new['clean'] - old['clean']:+.4f} (allowed >= {-args.max_drop}) {'ok' if ok_clean else 'fails'}; "
          f"corrupted mean: {new['mean_corrupted'] - old['mean_corrupted']:+.4f} {'ok' if ok_robust else 'fails'} -> {verdict}")


if __name__ == "__main__":
    main()
