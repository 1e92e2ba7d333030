"""`ferkit models`: the shipped models with their published figures."""
from __future__ import annotations

import json

from .errors import EXIT_OK

def add_parser(sub) -> None:
    p = sub.add_parser("models", help="the shipped models: classes, size, agreement with people, speed",
                       description="List the models shipped with ferkit (for --model NAME and load_recognizer(NAME)), "
                                   "with their published PrivateTest figures (no TTA): agreement with people (the "
                                   "FER+ majority of ten annotators), accuracy on FER-2013's own labels, the mean "
                                   "under corruptions and the classifier's milliseconds per face.")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..recognizer import RETIRED_MODELS, describe_models

    rows = describe_models()
    if args.json:
        print(json.dumps({"models": rows, "retired": RETIRED_MODELS}, indent=1))
        return EXIT_OK

    def pct(v):
        return f"{v:.2%}" if v is not None else "-"

    print(f"{'name':<20} {'classes':>7} {'networks':>8} {'MB':>5} {'people':>7} {'FER-2013':>8} {'corrupted':>9} "
          f"{'ms/face':>7}")
    for r in rows:
        name = r["name"] + (" *" if r["default"] else "")
        ms = f"{r['ms_per_face']:.2f}" if r["ms_per_face"] is not None else "-"
        print(f"{name:<20} {len(r['labels']):>7} {r['networks']:>8} {r['size_mb']:>5} {pct(r['agreement']):>7} "
              f"{pct(r['fer2013_accuracy']):>8} {pct(r['robustness_mean']):>9} {ms:>7}")
    print("* the default. PrivateTest, no TTA. people: agreement with the FER+ majority of ten annotators (faces whose "
          "majority is one of FER-2013's seven classes; a contempt answer counts as a disagreement); FER-2013: its own "
          "single labels; corrupted: mean over 30 corruptions on the model's own labels (ferkit evaluate "
          "--robustness); ms/face: classifier, batch 1 (benchmarks/agreement.py, CPU in the metrics file)")
    for old, new in RETIRED_MODELS.items():
        print(f"retired: {old} (loads {new})")
    return EXIT_OK
