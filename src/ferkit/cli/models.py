"""`ferkit models`: the shipped models with their published figures."""
from __future__ import annotations

import json

from .errors import EXIT_OK

def add_parser(sub) -> None:
    p = sub.add_parser("models", help="the shipped models: classes, size, test accuracy",
                       description="List the models shipped with ferkit (for --model NAME and load_recognizer(NAME)), "
                                   "with their published PrivateTest figures (no TTA).")
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

    print(f"{'name':<20} {'classes':>7} {'networks':>8} {'MB':>5} {'accuracy':>9} {'corrupted':>9}  test set")
    for r in rows:
        name = r["name"] + (" *" if r["default"] else "")
        print(f"{name:<20} {len(r['labels']):>7} {r['networks']:>8} {r['size_mb']:>5} {pct(r['test_accuracy']):>9} "
              f"{pct(r['robustness_mean']):>9}  {r['test_set'] or '(no published figures)'}")
    print("* the default. accuracy: PrivateTest, no TTA; corrupted: mean over 30 corruptions (ferkit evaluate --robustness)")
    for old, new in RETIRED_MODELS.items():
        print(f"retired: {old} (loads {new})")
    return EXIT_OK
