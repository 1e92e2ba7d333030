"""The default chosen for agreement with people (docs/quality.md, 2026-12-07, issue 37): the rule's figures.

    python benchmarks/agreement.py [--data ../shared/data/fer2013] [--threads 2] [--out docs/benchmarks/agreement]
    python benchmarks/agreement.py --private [--write-metrics]   # after the choice: PrivateTest, reported only
    python benchmarks/agreement.py --calibrate NAME  # the rule's step 7: a temperature on PublicTest votes, two-fold
    python benchmarks/agreement.py --models fer2013 ferplus ferplus-robust --candidate /path/new.onnx  # a new candidate

For each shipped model (INT8 as the Recognizer runs it, no TTA): its classifier latency per face (batch 1, median,
timed in rounds that alternate the models, so a load on the shared machine falls on all of them alike), then on
PublicTest its agreement with the FER+ majority (faces whose majority is one of FER-2013's seven classes; an 8-class
model's contempt answer counts as a disagreement, its argmax over the seven is shown beside) clean and as the mean
over the 30 corrupted copies of `ferkit evaluate --robustness`, FER-2013's own labels beside it, the score S and
the choice. With --private it scores PrivateTest instead (the same figures, no choice); with --write-metrics it also
puts each model's PrivateTest agreement, FER-2013 figure and speed into src/ferkit/weights/NAME.metrics.json
(`agreement`, `fer2013_labels`, `speed`: what `ferkit models` shows; the model files are not touched). Writes
OUT.txt and OUT.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

import onnxruntime as ort

from ferkit import available_models, load_recognizer
from ferkit.data import load_dataset, read_ferplus_votes
from ferkit.evaluate import evaluate, fer2013_set, ferplus_set, mean_corrupted, robustness
from _data import cpu_name, fer2013

SPEED_LIMIT = 1.5      # times fer2013's ms per face
MARGIN = 0.01          # S above fer2013's needed to replace it
TIE = 0.003            # S this close: the faster model


def latencies(models: list[str], faces: np.ndarray, threads: int, rounds: int = 7, calls: int = 40) -> dict:
    """Median ms per face at batch 1 per model, over `rounds` alternating rounds of `calls` calls each."""
    recs = {m: load_recognizer(m, detector="none", threads=threads) for m in models}
    times: dict = {m: [] for m in models}
    for m in models:
        recs[m].classify(faces[:1])  # warm-up
    for r in range(rounds):
        for m in models:
            for i in range(calls):
                x = faces[(r * calls + i) % len(faces)][None]
                t = time.perf_counter()
                recs[m].classify(x)
                times[m].append((time.perf_counter() - t) * 1000)
    return {m: statistics.median(v) for m, v in times.items()}


def write_metrics(rows: dict, threads: int) -> None:
    """PrivateTest agreement, FER-2013 figure and speed into each shipped model's metrics file, other fields kept."""
    from ferkit.registry import WEIGHTS_DIR

    for m, r in rows.items():
        if m.endswith(".onnx"):
            continue  # a candidate: it has no metrics file until it ships
        path = WEIGHTS_DIR / f"{m}.metrics.json"
        metrics = json.loads(path.read_text())
        metrics["agreement"] = {"set": r["set"], "accuracy": round(r["agreement"], 4), "n": r["n"]}
        if r["agreement_over_seven"] is not None:
            metrics["agreement"]["accuracy_over_seven"] = round(r["agreement_over_seven"], 4)
        metrics["fer2013_labels"] = {"set": "FER-2013 PrivateTest", "accuracy": round(r["fer2013_labels"], 4),
                                     "n": r["n_fer2013"]}
        metrics["speed"] = {"ms_per_face": round(r["ms_per_face"], 2), "batch": 1, "threads": threads,
                            "cpu": cpu_name(), "command": "python benchmarks/agreement.py --private --write-metrics",
                            "note": "classifier only, median, all shipped models timed in the same run on a shared, "
                                    "loaded machine: compare models, not machines"}
        path.write_text(json.dumps(metrics, indent=1) + "\n")


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """T on a grid (0.5-3, steps of 0.01) minimising the NLL of softmax(log p / T): convex in 1/T, so a grid will do."""
    from ferkit.metrics import rescale_temperature

    grid = np.arange(0.5, 3.0001, 0.01)
    nll = [-np.log(rescale_temperature(probs, t)[np.arange(len(labels)), labels].clip(1e-12)).mean() for t in grid]
    return float(grid[int(np.argmin(nll))])


def calibrate(name: str, ds, votes, threads: int) -> list[str]:
    """The rule's step 7 on PublicTest's agreement set: ECE as shipped, and two-fold with a fitted temperature (fitted
    on the even-numbered faces and scored on the odd ones, and the other way round)."""
    from ferkit.evaluate import classify_all
    from ferkit.metrics import expected_calibration_error, rescale_temperature

    rec = load_recognizer(name, detector="none", threads=threads)
    s = ferplus_set(ds, votes, "PublicTest", rec.labels, seven=True)
    probs = classify_all(rec, s.pixels)
    even = np.arange(len(s.labels)) % 2 == 0
    two_fold = probs.copy()
    temps = []
    for fit, score in ((even, ~even), (~even, even)):
        t = fit_temperature(probs[fit], s.labels[fit])
        temps.append(t)
        two_fold[score] = rescale_temperature(probs[score], t)
    shipped, fitted = expected_calibration_error(s.labels, probs), expected_calibration_error(s.labels, two_fold)
    t_all = fit_temperature(probs, s.labels)
    verdict = "would ship (a new model file: the next step)" if fitted <= shipped - 0.005 else "does not ship"
    return [f"{name} on {s.name}, n={len(s.labels)}: ECE as shipped {shipped:.4f}; two-fold with a fitted temperature "
            f"{fitted:.4f} (T {temps[0]:.2f} on even faces, {temps[1]:.2f} on odd; {t_all:.2f} on all); rule: at least "
            f"0.005 lower -> {verdict}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--private", action="store_true", help="PrivateTest, reported after the choice")
    ap.add_argument("--calibrate", default=None, metavar="NAME", help="only the rule's calibration step for NAME")
    ap.add_argument("--write-metrics", action="store_true", help="with --private: the figures into the metrics files")
    ap.add_argument("--out", default=None, help="OUT.txt and OUT.json (default docs/benchmarks/agreement[_private])")
    ap.add_argument("--models", nargs="+", default=None, help="shipped models to score (default: all; fer2013 is "
                    "always scored: the speed limit and the margin are relative to it)")
    ap.add_argument("--candidate", nargs="+", default=[], metavar="ONNX", help="candidate .onnx files scored beside "
                    "the shipped models under the same rule (named by their path)")
    args = ap.parse_args()
    split = "PrivateTest" if args.private else "PublicTest"
    out = Path(args.out or f"docs/benchmarks/agreement{'_private' if args.private else ''}")
    path = fer2013(args.data)
    ds = load_dataset(path)
    votes = read_ferplus_votes(path.parent / "fer2013new.csv", len(ds))
    models = sorted({"fer2013", *(args.models or available_models())}) + list(args.candidate)
    if args.calibrate:
        text = calibrate(args.calibrate, ds, votes, args.threads)
        print("\n".join(text))
        Path(f"{out}_calibration.txt").write_text(f"{cpu_name()}\n" + "\n".join(text) + "\n")
        return
    lines = [f"ONNX Runtime {ort.__version__}, threads={args.threads}; {cpu_name()}; 2 CPU cores shared with other "
             f"engineers' work (loaded); {split}, INT8 as shipped, no TTA"]

    def log(s: str) -> None:
        lines.append(s)
        print(s, flush=True)

    log("")
    ms = latencies(models, ds.split(split).pixels, args.threads)
    limit = SPEED_LIMIT * ms["fer2013"]
    rows = {}
    for m in models:
        rec = load_recognizer(m, detector="none", threads=args.threads)
        people = ferplus_set(ds, votes, split, rec.labels, seven=True)
        clean = evaluate(rec, people)
        own = evaluate(rec, fer2013_set(ds, split, rec.labels))
        row = {"ms_per_face": round(ms[m], 3), "eligible": ms[m] <= limit, "n": clean["n"], "set": people.name,
               "agreement": clean["accuracy"], "agreement_over_seven": clean.get("accuracy_over_seven"),
               "macro_f1": clean["macro"]["f1"], "ece": clean["ece"], "fer2013_labels": own["accuracy"], "n_fer2013": own["n"],
               "recall": {c: v["recall"] for c, v in clean["per_class"].items()},
               "confusion_people": clean["confusion_matrix"], "confusion_fer2013": own["confusion_matrix"],
               "recall_fer2013": {c: v["recall"] for c, v in own["per_class"].items()}, "labels": list(rec.labels)}
        if row["eligible"] and not args.private:
            rob = robustness(rec, people)
            row["corrupted_mean"] = mean_corrupted(rob)
            row["score"] = (row["agreement"] + row["corrupted_mean"]) / 2
        rows[m] = row
        seven = f" (over the seven {row['agreement_over_seven']:.2%})" if row["agreement_over_seven"] is not None else ""
        log(f"{m:<17} {ms[m]:6.3f} ms/face{'' if row['eligible'] else ' (over the limit)':<18} FER+ majority n={row['n']} "
            f"{row['agreement']:.2%}{seven}  corrupted mean {row.get('corrupted_mean', float('nan')):.2%}  "
            f"S {row.get('score', float('nan')):.2%}  FER-2013 labels {row['fer2013_labels']:.2%}  ECE {row['ece']:.3f}")
    log(f"speed limit: {SPEED_LIMIT} x fer2013's {ms['fer2013']:.3f} ms = {limit:.3f} ms per face")
    if not args.private:
        eligible = {m: r for m, r in rows.items() if r["eligible"]}
        best = max(eligible, key=lambda m: eligible[m]["score"])
        close = [m for m, r in eligible.items() if r["score"] >= eligible[best]["score"] - TIE]
        best = min(close, key=lambda m: eligible[m]["ms_per_face"])
        winner = best if eligible[best]["score"] >= rows["fer2013"]["score"] + MARGIN else "fer2013"
        if args.candidate:  # 2026-12-08's addendum: a candidate of the default's network must beat it by more than TIE
            from ferkit.registry import DEFAULT_MODEL as default
            for c in args.candidate:
                gain = rows[c].get("score", float("nan")) - rows[default]["score"]
                log(f"candidate {c}: S {gain:+.2%} against the default {default} (more than +{TIE:.1%} needed, "
                    f"eligible: {rows[c]['eligible']}) -> {'ships' if rows[c]['eligible'] and gain > TIE else 'does not ship'}")
        else:
            log(f"choice by the rule: {winner} (best S {best} {eligible[best]['score']:.2%}, fer2013 "
                f"{rows['fer2013']['score']:.2%}, margin needed {MARGIN:.0%})")
    for m, r in rows.items():
        log(f"{m} per-class recall, FER+ majority: " + ", ".join(f"{c} {v:.1%}" for c, v in r["recall"].items()))
        log(f"{m} per-class recall, FER-2013 labels: " + ", ".join(f"{c} {v:.1%}" for c, v in r["recall_fer2013"].items()))
        log(f"{m} confusion (rows truth, columns answer; {', '.join(r['labels'])}), FER+ majority: {r['confusion_people']}")
        log(f"{m} confusion, FER-2013 labels: {r['confusion_fer2013']}")
    if args.private and args.write_metrics:
        write_metrics(rows, args.threads)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".txt").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"split": split, "cpu": cpu_name(), "threads": args.threads,
                                                    "models": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
