"""Robustness of several models side by side, as a Markdown table, from `ferkit evaluate --robustness` reports.

    python benchmarks/robustness_table.py docs/eval/report_fer2013.json docs/eval/v1/report_fer2013-v1.json ...

Each cell: accuracy at the corruption's three levels (mild / medium / severe); the last rows give the clean
accuracy and the mean over all 30 corrupted copies.
"""
from __future__ import annotations

import json
import sys

from ferkit.evaluate import mean_corrupted


def main(paths: list[str]) -> None:
    reports = [json.loads(open(p).read()) for p in paths]
    robs = [r["robustness"] for r in reports]
    names = [r["sets"][r["main"]]["none"]["model"] for r in reports]
    print(f"Robustness on {robs[0]['set']} (no test-time augmentation); accuracy at levels mild / medium / severe\n")
    print("| corruption (levels) | " + " | ".join(f"`{n}`" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for kind, v in robs[0]["corruptions"].items():
        levels = " / ".join(map(str, v["levels"]))
        print(f"| {kind} ({levels}) | " + " | ".join(
            " / ".join(f"{a * 100:.1f}" for a in r["corruptions"][kind]["accuracy"]) for r in robs) + " |")
    print("| **clean** | " + " | ".join(f"**{r['clean'] * 100:.2f} %**" for r in robs) + " |")
    print("| **mean of the 30 corrupted** | " + " | ".join(
        f"**{mean_corrupted(r) * 100:.2f} %**" for r in robs) + " |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
