"""Every shipped model's published figures (weights/NAME.metrics.json, quoted by the README, the model cards,
`ferkit models` and the server) against a fresh evaluation on the whole test set each names, with one corrupted
copy (noise 16) as a spot check of its robustness table. Exits 1 when any figure is off by more than 1e-4.

    python benchmarks/published_figures.py [--data DIR] [--model NAME ...]

The test suite checks the default model's figure exactly and the others on a subset (tests/test_shipped_model.py);
this is the full check, minutes on a CPU: run it after a model ships.
"""
from __future__ import annotations

import argparse
import json
import sys

from ferkit import load_recognizer
from ferkit.config import data_path
from ferkit.corruptions import corrupt
from ferkit.data import load_dataset, read_ferplus_votes
from ferkit.evaluate import EvalSet, evaluate, fer2013_set, ferplus_set
from ferkit.recognizer import WEIGHTS_DIR


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="the FER-2013 folder (default: $FERKIT_DATA)")
    ap.add_argument("--model", nargs="+", default=sorted(p.name[:-len(".metrics.json")]
                                                        for p in WEIGHTS_DIR.glob("*.metrics.json")))
    args = ap.parse_args()
    data = data_path(args.data)
    ds = load_dataset(data)
    votes = read_ferplus_votes(data.parent / "fer2013new.csv", len(ds))
    failed = 0
    for name in args.model:
        metrics = json.loads((WEIGHTS_DIR / f"{name}.metrics.json").read_text())
        rec = load_recognizer(name, detector="none")
        s = (ferplus_set(ds, votes, "PrivateTest", rec.labels) if metrics["test_set"].startswith("FER+")
             else fer2013_set(ds, "PrivateTest"))
        figures = {"accuracy": (evaluate(rec, s)["accuracy"], metrics["test_accuracy"])}
        if "robustness" in metrics:
            noisy = EvalSet(s.name, corrupt(s.pixels, "noise", 16), s.labels, s.classes)
            figures["noise 16"] = (evaluate(rec, noisy)["accuracy"], metrics["robustness"]["noise"]["16"])
        ok = s.name == metrics["test_set"] and len(s.labels) == metrics["n"] and all(
            abs(now - published) <= 1e-4 for now, published in figures.values())
        failed += not ok
        print(f"{name:<18} {s.name} ({len(s.labels)} faces): " + ", ".join(
            f"{k} {now:.4f} (published {published:.4f})" for k, (now, published) in figures.items())
            + ("" if ok else "  MISMATCH"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
