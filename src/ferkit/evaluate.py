"""Evaluation through the inference path users get (Recognizer.classify on the ONNX model).

Metrics, per-class report and confusion matrix on any split; test-time augmentation variants;
the FER+ majority-filtered PrivateTest; robustness under corruptions; the generated model card.
"""
from __future__ import annotations

import json
import platform
from math import comb
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import FaceDataset, with_ferplus
from .labels import FERPLUS_EMOTIONS
from .recognizer import Recognizer


# ---------------------------------------------------------------- metrics
def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """(k, k) counts; rows are true classes, columns predictions."""
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def classification_report(y_true: np.ndarray, probs: np.ndarray, labels: tuple[str, ...]) -> dict:
    """Accuracy, macro/weighted precision-recall-F1, per-class figures, the confusion matrix, and the ECE."""
    k = len(labels)
    y_pred = probs.argmax(1)
    cm = confusion_matrix(y_true, y_pred, k)
    tp = np.diag(cm).astype(float)
    support = cm.sum(1)
    predicted = cm.sum(0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    present = support > 0
    w = support / support.sum()
    return {
        "n": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()),
        "macro": {"precision": float(precision[present].mean()), "recall": float(recall[present].mean()),
                  "f1": float(f1[present].mean())},
        "weighted": {"precision": float((precision * w).sum()), "recall": float((recall * w).sum()),
                     "f1": float((f1 * w).sum())},
        "per_class": {lab: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                            "support": int(support[i])} for i, lab in enumerate(labels)},
        "confusion_matrix": cm.tolist(),
        "labels": list(labels),
        "ece": expected_calibration_error(y_true, probs),
    }


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """ECE over equal-width confidence bins: how far the shown confidence is from the accuracy."""
    conf = probs.max(1)
    correct = probs.argmax(1) == y_true
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def mcnemar(correct_old: np.ndarray, correct_new: np.ndarray) -> tuple[int, int, float]:
    """Paired comparison of two models on the same faces: (N,) bool correctness each -> (faces only NEW gets
    right, faces only OLD gets right, exact two-sided McNemar p-value). Faces both get right or wrong say
    nothing about which is better, so only the discordant ones count (a binomial test at 1/2)."""
    gained = int((correct_new & ~correct_old).sum())
    lost = int((correct_old & ~correct_new).sum())
    n, k = gained + lost, min(gained, lost)
    p = min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0
    return gained, lost, p


def paired(old: Recognizer, new: Recognizer, s: EvalSet) -> dict:
    """Two models on the same faces of `s`: each one's accuracy and `mcnemar`'s (gained, lost, p) for NEW
    against OLD. Raises ValueError, naming both, when their labels differ."""
    if tuple(old.labels) != tuple(new.labels):
        raise ValueError(f"{old.name} and {new.name} have different labels: {old.labels} vs {new.labels}")
    correct = {}
    for role, rec in (("old", old), ("new", new)):
        if tuple(s.classes) != tuple(rec.labels):
            raise ValueError(f"the set's classes {s.classes} differ from the model's {rec.labels}")
        correct[role] = rec.classify(s.pixels).argmax(1) == s.labels
    gained, lost, p = mcnemar(correct["old"], correct["new"])
    return {"old": float(correct["old"].mean()), "new": float(correct["new"].mean()), "gained": gained, "lost": lost,
            "p": p}


def softmax(logits: np.ndarray) -> np.ndarray:
    """(N, K) logits -> (N, K) probabilities."""
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def rescale_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits) -> softmax(logits / temperature), from the probabilities alone (log p = logits + const)."""
    return softmax(np.log(probs.clip(1e-12)) / temperature)


# ---------------------------------------------------------------- evaluation runs
@dataclass
class EvalSet:
    name: str            # e.g. "FER-2013 PrivateTest"
    pixels: np.ndarray   # (N, 48, 48) uint8
    labels: np.ndarray   # (N,) indices into `classes`
    classes: tuple[str, ...]


def fer2013_set(ds: FaceDataset, split: str) -> EvalSet:
    part = ds.split(split)
    return EvalSet(f"FER-2013 {split}", part.pixels, part.labels, part.classes)


def ferplus_set(ds: FaceDataset, votes: np.ndarray, split: str, model_labels: tuple[str, ...]) -> EvalSet:
    """FER+ majority-filtered faces of a split, labelled in the model's classes.

    For a 7-class FER-2013 model, faces whose FER+ majority is contempt (no FER-2013 class) are left out.
    """
    fp = with_ferplus(ds, votes, "majority").split(split)
    names = np.array(FERPLUS_EMOTIONS)[fp.labels]
    keep = np.isin(names, model_labels)
    labels = np.array([model_labels.index(n) for n in names[keep]], np.int64)
    dropped = int((~keep).sum())
    suffix = f", {dropped} contempt faces left out" if dropped else ""
    return EvalSet(f"FER+ {split} (majority-filtered{suffix})", fp.pixels[keep], labels, tuple(model_labels))


def classify_all(rec: Recognizer, pixels: np.ndarray, batch: int = 512) -> np.ndarray:
    """(N, 48, 48) faces -> (N, K) probabilities through `rec`, `batch` faces per call (bounded memory, crops TTA
    included)."""
    return np.concatenate([rec.classify(pixels[i:i + batch]) for i in range(0, len(pixels), batch)]) if len(pixels) \
        else np.zeros((0, len(rec.labels)), np.float32)


def evaluate(rec: Recognizer, s: EvalSet, batch: int = 256) -> dict:
    """Classify the set's faces through `rec` (its ONNX model, preprocessing and TTA) and report."""
    if tuple(s.classes) != tuple(rec.labels):
        raise ValueError(f"the set's classes {s.classes} differ from the model's {rec.labels}")
    probs = classify_all(rec, s.pixels, batch)
    report = classification_report(s.labels, probs, rec.labels)
    report.update({"set": s.name, "model": rec.name, "tta": rec.tta})
    t = float(rec.metadata.get("temperature", 1.0))
    if t != 1.0:  # the shipped probabilities are softmax(logits / T); undo T for the uncalibrated ECE
        report["ece_uncalibrated"] = expected_calibration_error(s.labels, rescale_temperature(probs, 1 / t))
        report["temperature"] = t
    return report


def selection_set(data: str | Path, labels: tuple[str, ...], ferplus: str | Path | None = None) -> EvalSet:
    """PublicTest in a model's classes: the split that choices about a model (checkpoints, temperatures, ensemble
    weights) are made on."""
    return split_set(data, labels, "PublicTest", ferplus)


def split_set(data: str | Path, labels: tuple[str, ...], split: str, ferplus: str | Path | None = None) -> EvalSet:
    """One split in a model's classes: FER-2013 labels, or FER+ majority labels from fer2013new.csv beside `data`."""
    from .data import load_dataset, read_ferplus_votes
    from .labels import EMOTIONS

    ds = load_dataset(data)
    if tuple(labels) == tuple(EMOTIONS):
        return fer2013_set(ds, split)
    ferplus = Path(ferplus) if ferplus else Path(data).parent / "fer2013new.csv"
    return ferplus_set(ds, read_ferplus_votes(ferplus, len(ds)), split, tuple(labels))


def fit_ensemble_weights(members, data: str | Path, step: float = 0.1, costs_ms=None,
                         budget_ms: float | None = None) -> tuple[list[float], float, float]:
    """Member weights (a grid of `step` on the simplex) with the best PublicTest accuracy; ties go to the most
    even weights. Returns the weights, their accuracy there (optimistic: chosen on those very faces) and a
    two-fold estimate free of that bias (weights fitted on each half of PublicTest, scored on the other half).
    With `budget_ms`, only weightings whose members' `costs_ms` (one per member, e.g. from `latency_ms`) add up
    to at most the budget are tried, in both fits. PrivateTest is never read."""
    from .recognizer import load_recognizer

    costs = None if budget_ms is None else np.asarray(costs_ms if costs_ms is not None else [], np.float64)
    if costs is not None and costs.shape != (len(members),):
        raise ValueError(f"{costs.size} member costs for {len(members)} members: a budget needs one per member")
    if costs is not None and costs.min() > budget_ms:
        raise ValueError(f"no member fits the budget of {budget_ms} ms per face "
                         f"(the members cost {', '.join(f'{c:.3f}' for c in costs)} ms)")
    recs = [load_recognizer(m, detector="none") for m in members]
    s = selection_set(data, recs[0].labels)
    probs = np.stack([classify_all(r, s.pixels) for r in recs])           # (M, N, K)
    weights, acc = _grid_fit(probs, s.labels, step, costs, budget_ms)
    halves = np.arange(len(s.labels)) % 2 == 0
    held_out = 0
    for fit, score in ((halves, ~halves), (~halves, halves)):
        w, _ = _grid_fit(probs[:, fit], s.labels[fit], step, costs, budget_ms)
        held_out += int(((w[:, None, None] * probs[:, score]).sum(0).argmax(1) == s.labels[score]).sum())
    return [round(float(v), 4) for v in weights], acc, held_out / len(s.labels)


def _grid_fit(probs: np.ndarray, labels: np.ndarray, step: float, costs: np.ndarray | None = None,
              budget: float | None = None) -> tuple[np.ndarray, float]:
    """(M, N, K) member probabilities -> the grid weights (M,) with the best accuracy, and that accuracy; with
    `costs` (M,), only weightings whose members with a weight above 0 cost at most `budget` in all."""
    from itertools import product

    n = round(1 / step)
    best = (-1.0, 0.0, None)
    for grid in product(range(n + 1), repeat=len(probs) - 1):
        if sum(grid) > n:
            continue
        w = np.array([*grid, n - sum(grid)], np.float64) / n
        if costs is not None and costs[w > 0].sum() > budget + 1e-9:
            continue
        acc = float(((w[:, None, None] * probs).sum(0).argmax(1) == labels).mean())
        key = (acc, -float(np.abs(w - 1 / len(w)).sum()))
        if key > best[:2]:
            best = (*key, w)
    return best[2], best[0]


# ---------------------------------------------------------------- class offsets (docs/quality.md, round 11)
def fit_class_offsets(probs: np.ndarray, labels: np.ndarray, iters: int = 100) -> np.ndarray:
    """(N, K) probabilities and (N,) labels -> offsets b (K,), summing to 0, that minimise the mean negative
    log-likelihood of softmax(log p + b). Convex in b, so Newton's method finds the one minimum (the Hessian is
    singular only along adding the same number to every class, which changes nothing; hence the sum of 0)."""
    logp = np.log(np.clip(probs, 1e-12, 1)).astype(np.float64)
    n, k = logp.shape
    target = np.eye(k)[labels].mean(0)                     # (K,) how often each class is the label
    b = np.zeros(k)
    for _ in range(iters):
        q = softmax(logp + b)
        grad = q.mean(0) - target
        if np.abs(grad).max() < 1e-10:
            break
        hess = np.diag(q.mean(0)) - q.T @ q / n
        b -= np.linalg.lstsq(hess + 1e-9 * np.eye(k), grad, rcond=None)[0]
        b -= b.mean()
    return b


def apply_offsets(probs: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """softmax(log p + b): what a model file with class offsets outputs, from the probabilities before them."""
    return softmax(np.log(np.clip(probs, 1e-12, 1)) + np.asarray(offsets)[None])


def offsets_report(rec: Recognizer, data: str | Path, batch: int = 512) -> dict:
    """Round 11's figures for `rec` on PublicTest (never PrivateTest): offsets fitted on all its faces; the model's
    accuracy and macro F1, and the two-fold ones with offsets (fitted on the even-numbered faces and scored on the
    odd ones, then the other way round, the halves of fit_ensemble_weights); the paired McNemar split of those
    two-fold predictions against the model's; and the mean accuracy over the 30 corrupted copies of
    `robustness`, without and with the offsets fitted on all clean faces."""
    s = selection_set(data, rec.labels)
    probs, y = classify_all(rec, s.pixels, batch), s.labels
    offsets = fit_class_offsets(probs, y)
    halves = np.arange(len(y)) % 2 == 0
    two_fold = np.empty_like(probs)
    for fit, score in ((halves, ~halves), (~halves, halves)):
        two_fold[score] = apply_offsets(probs[score], fit_class_offsets(probs[fit], y[fit]))
    before, after = classification_report(y, probs, rec.labels), classification_report(y, two_fold, rec.labels)
    gained, lost, p = mcnemar(probs.argmax(1) == y, two_fold.argmax(1) == y)
    corrupted = [classify_all(rec, corrupt(s.pixels, kind, level), batch)
                 for kind, levels in CORRUPTIONS.items() for level in levels]
    return {
        "model": rec.name, "set": s.name, "faces": int(len(y)), "labels": list(rec.labels),
        "offsets": [float(v) for v in offsets],
        "accuracy": before["accuracy"], "in_sample": float((apply_offsets(probs, offsets).argmax(1) == y).mean()),
        "two_fold": after["accuracy"], "macro_f1": before["macro"]["f1"], "two_fold_macro_f1": after["macro"]["f1"],
        "gained": gained, "lost": lost, "p": p,
        "corrupted_mean": float(np.mean([(c.argmax(1) == y).mean() for c in corrupted])),
        "corrupted_mean_with_offsets": float(np.mean([(apply_offsets(c, offsets).argmax(1) == y).mean()
                                                      for c in corrupted])),
    }


def judge_offsets(r: dict, min_gain: float = 0.002, max_p: float = 0.05, max_f1_drop: float = 0.01,
                  max_corrupted_drop: float = 0.005) -> tuple[bool, str]:
    """Round 11's rule on an `offsets_report`: (passes, the verdict line naming each figure and its threshold)."""
    checks = [
        ("two-fold accuracy", r["two_fold"] - r["accuracy"] >= min_gain,
         f"{r['two_fold'] - r['accuracy']:+.4f} (needs >= +{min_gain})"),
        ("paired", r["gained"] > r["lost"] and r["p"] < max_p,
         f"{r['gained']}/{r['lost']}, p = {r['p']:.3f} (needs more won, p < {max_p})"),
        ("two-fold macro F1", r["two_fold_macro_f1"] - r["macro_f1"] >= -max_f1_drop,
         f"{r['two_fold_macro_f1'] - r['macro_f1']:+.4f} (needs >= -{max_f1_drop})"),
        ("corrupted mean", r["corrupted_mean_with_offsets"] - r["corrupted_mean"] >= -max_corrupted_drop,
         f"{r['corrupted_mean_with_offsets'] - r['corrupted_mean']:+.4f} (needs >= -{max_corrupted_drop})"),
    ]
    ok = all(passed for _, passed, _ in checks)
    line = "; ".join(f"{name}: {text} {'ok' if passed else 'fails'}" for name, passed, text in checks)
    return ok, line + f" -> {'the offsets become part of ' if ok else 'no offsets for '}{r['model']}"


def latency_ms(rec, repeat: int = 200) -> float:
    """Median milliseconds of `rec.classify` on one face (batch 1, after a warm-up call): what the model adds to
    an ensemble per face, as `benchmarks/core.py` times it."""
    import time

    face = np.full((1, 48, 48), 128, np.uint8)
    rec.classify(face)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        rec.classify(face)
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


# ---------------------------------------------------------------- figures
def plot_confusion(report: dict, path: str | Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.array(report["confusion_matrix"], float)
    norm = cm / cm.sum(1, keepdims=True).clip(min=1)
    labels = report["labels"]
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{norm[i, j]:.2f}\n({int(cm[i, j])})", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted"); ax.set_ylabel("true")
    ax.set_title(f"{report['set']}\naccuracy {report['accuracy']:.1%} (TTA: {report['tta']})", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_class_distribution(ds: FaceDataset, path: str | Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = ds.counts()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    width = 0.8 / max(1, len(counts))
    x = np.arange(len(ds.classes))
    for i, (split, row) in enumerate(counts.items()):
        vals = [row[c] for c in ds.classes]
        bars = ax.bar(x + i * width, vals, width, label=split)
        ax.bar_label(bars, fontsize=6)
    ax.set_xticks(x + width * (len(counts) - 1) / 2, ds.classes)
    ax.set_ylabel("faces"); ax.legend(); ax.set_title("Class distribution per split")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- model card
def write_metrics(rec: Recognizer, results: dict, path: Path) -> dict:
    """The short summary the server and the Recognizer read (weights/<name>.metrics.json)."""
    headline = results["sets"][results["main"]]
    main = headline["none"]
    summary = {
        "model": rec.name,
        "test_set": main["set"],
        "test_accuracy": round(main["accuracy"], 4),
        "test_macro_f1": round(main["macro"]["f1"], 4),
        "test_accuracy_tta": {k: round(v["accuracy"], 4) for k, v in headline.items()},
        "n": main["n"],
        "command": results["command"],
    }
    for key, reports in results["sets"].items():  # the other sets' plain accuracy, e.g. FER+ for a FER-2013 model
        if key != results["main"] and not key.endswith("_public"):
            summary.setdefault("other_sets", {})[reports["none"]["set"]] = {"accuracy": round(reports["none"]["accuracy"], 4),
                                                                            "n": reports["none"]["n"]}
    if "robustness" in results:  # accuracy per corruption and level, and the mean over all of them
        rob = results["robustness"]["corruptions"]
        summary["robustness"] = {k: dict(zip(map(str, v["levels"]), (round(a, 4) for a in v["accuracy"]))) for k, v in rob.items()}
        summary["robustness_mean"] = round(mean_corrupted(results["robustness"]), 4)
    path.write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def _pct(v: float) -> str:
    return f"{v * 100:.2f} %"


def _training_lines(meta: dict) -> list[str]:
    """How one trained model was made: data, selection, the run's command and the recipe."""
    trained = meta.get("trained", {}) or {}
    tc = trained.get("train_config") or {}
    lines = [
        f"- Training data: FER-2013 `Training` split only ({tc.get('labels', 'fer2013')} labels); model selected on "
        f"`{trained.get('selected_on', 'PublicTest')}` (best epoch {trained.get('epoch')}, PublicTest accuracy "
        f"{_pct(trained['val_accuracy']) if trained.get('val_accuracy') is not None else 'n/a'}); `PrivateTest` used only for the figures below.",
    ]
    if meta.get("training_run"):
        run = meta["training_run"]
        resumed = f" (resumed once from `{Path(run['resumed_from']).name}`)" if run.get("resumed_from") else ""
        lines.append(f"- Training run: `{run.get('command')}`{resumed} on {run.get('hardware')}, {run.get('epochs_run')} epochs, "
                     f"{run.get('wall_minutes')} minutes wall time in all.")
    if tc:
        keys = ("epochs", "batch_size", "lr", "weight_decay", "schedule", "label_smoothing", "class_weight_power", "ema_decay", "seed")
        damage = [f"{k} p={tc[k + '_prob']}" for k in ("gamma", "blur", "noise", "jpeg") if tc.get(k + "_prob")]
        lines.append("- Recipe: " + ", ".join(f"{k}={tc[k]}" for k in keys if k in tc) +
                     "; augmentation: rotation, zoom, shear, shift, horizontal flip, brightness/contrast, random erasing" +
                     (f", then corruptions ({', '.join(damage)})" if damage else "") + " (training batches only).")
        if tc.get("teacher"):
            teachers = tc["teacher"].split(",")
            lines.append(f"- Distilled from `{'` + `'.join(teachers)}` ({'the mean of their softened outputs, ' if len(teachers) > 1 else ''}"
                         f"weight {tc.get('distill_weight')}, temperature {tc.get('distill_temperature')}); "
                         + ("the teacher sees each augmented face before the corruptions." if damage else
                            "teacher and student see the same augmented face."))
        if tc.get("aux_labels"):
            lines.append(f"- Multi-task: a second head learnt the `{tc['aux_labels']}` labels of the same Training faces "
                         f"(loss weight {tc.get('aux_weight')}) and was dropped after training; the shipped network is "
                         "the shared features and the main head only.")
    return lines


_NETWORK = "VGG-style CNN for 48x48 grey faces with global average pooling + linear head"


def _architecture(cfg: dict | None) -> str:
    """One network, from the `config` in its metadata; None for a member split out of an ensemble written before
    the members kept their own config (ferkit members --out)."""
    if not cfg:
        return f"{_NETWORK} (stages not recorded in the file)"
    return (f"VGG-style CNN for 48x48 grey faces, stages {cfg['channels']} channels x {cfg['depths']} conv layers, "
            "global average pooling + linear head")  # the wording of every card generated so far


def render_model_card(rec: Recognizer, results: dict, figures: dict[str, str]) -> str:
    """Markdown generated from the evaluation results: nothing in it is typed by hand."""
    meta = rec.metadata
    members = meta.get("ensemble") or []
    lines = [
        f"# Model card: `{rec.name}`",
        "",
        f"Generated by `{results['command']}` on {results['machine']}. Do not edit by hand.",
        "",
        "## Model",
        (f"- Architecture: an ensemble of {len(members)} models (the weighted mean of their probabilities), each a "
         f"{_NETWORK}, its stages given below" if members else f"- Architecture: {_architecture(meta.get('config'))}") +
        f" ({meta.get('parameters', 'n/a')} parameters{' in all' if members else ''}); ONNX file `{rec.model_path.name}` "
        f"({rec.model_path.stat().st_size / 1e6:.1f} MB).",
        f"- Classes (in output order): {', '.join(rec.labels)}.",
        f"- Input: one face crop, grey, resized to {meta['preprocess']['image_size']}x{meta['preprocess']['image_size']} "
        f"({meta['preprocess']['resize']}), scaled to [-1, 1] (`ferkit.preprocess.to_model_input`, shared with training).",
    ]
    if not members:
        lines += _training_lines(meta)
    for m in members:
        lines += ["", f"### Member `{m['name']}` (weight {m['weight']}{', INT8' if m.get('quantized') else ''})"]
        if "config" in m:  # ensembles written before each member kept its own config do not say
            lines.append(f"- Architecture: {_architecture(m['config'])} ({m.get('parameters', 'n/a')} parameters).")
        lines += _training_lines(m)
    lines += ["", "## Results", "",
              "| set | faces | test-time augmentation | accuracy | macro F1 | weighted F1 | ECE uncalibrated | ECE as shipped |",
              "|---|---|---|---|---|---|---|---|"]
    for key, reports in results["sets"].items():
        for mode, r in reports.items():
            lines.append(f"| {r['set']} | {r['n']} | {mode} | {_pct(r['accuracy'])} | {_pct(r['macro']['f1'])} | "
                         f"{_pct(r['weighted']['f1'])} | {r.get('ece_uncalibrated', r['ece']):.3f} | {r['ece']:.3f} |")
    lines += ["", "PublicTest was used to select the checkpoint, so its figure is optimistic; PrivateTest is the honest one."]
    for who, cal in ([("this model", meta.get("calibration"))] if not members else
                     [(f"member `{m['name']}`", m.get("calibration")) for m in members]):
        if not cal:
            continue
        lines += ["", f"Calibration ({who}): the shipped probabilities are softmax(logits / T) with T = {cal['temperature']} fitted on "
                  f"{cal['fitted_on']} (ECE there with the float32 model at export {cal['ece_before']:.3f} -> {cal['ece_after']:.3f}; the "
                  "table above measures the shipped file); T does not change "
                  "any prediction, only how confident the probabilities are. ECE: expected calibration error, 15 bins."]
    lines += ["",
              f"### Per class on {results['sets'][results['main']]['none']['set']} (no test-time augmentation)", "",
              "| class | precision | recall | F1 | faces |", "|---|---|---|---|---|"]
    for lab, r in results["sets"][results["main"]]["none"]["per_class"].items():
        lines.append(f"| {lab} | {_pct(r['precision'])} | {_pct(r['recall'])} | {_pct(r['f1'])} | {r['support']} |")
    for title, fig in figures.items():
        lines += ["", f"### {title}", "", f"![{title}]({fig})"]
    if "robustness" in results:
        lines += ["", render_robustness(results["robustness"])]
    lines += ["", "## Limits", "",
              "- FER-2013 faces are web images of posed and spontaneous expressions, mostly adults with lighter skin; "
              "accuracy on other populations, ages, poses and lighting is not measured here and is likely lower.",
              "- Labels are single annotations and disagree with the 10-annotator FER+ labels on about a third of test faces: "
              "treat the output as a probability over expression categories, not a reading of anyone's feelings.",
              "- Not for decisions about people (hiring, policing, health, education)."]
    return "\n".join(lines) + "\n"


def render_robustness(rob: dict) -> str:
    lines = [f"## Robustness ({rob['set']}, no test-time augmentation)", "",
             f"Clean accuracy {_pct(rob['clean'])}. Each corruption at increasing strength:", "",
             "| corruption | " + " | ".join(f"level {i + 1}" for i in range(max(len(v['levels']) for v in rob['corruptions'].values()))) + " |",
             "|---|" + "---|" * max(len(v['levels']) for v in rob['corruptions'].values())]
    for name, v in rob["corruptions"].items():
        lines.append(f"| {name} | " + " | ".join(f"{a * 100:.1f} % ({lvl})" for lvl, a in zip(v["levels"], v["accuracy"])) + " |")
    return "\n".join(lines)


def machine_description() -> str:
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()}"


# ---------------------------------------------------------------- robustness
def _affine(img: np.ndarray, angle: float = 0.0, shift: float = 0.0, zoom: float = 1.0) -> np.ndarray:
    import cv2

    s = img.shape[0]
    m = cv2.getRotationMatrix2D((s / 2, s / 2), angle, zoom)
    m[:, 2] += shift * s
    return cv2.warpAffine(img, m, (s, s), borderMode=cv2.BORDER_REPLICATE)


def corrupt(pixels: np.ndarray, kind: str, level: float, seed: int = 0) -> np.ndarray:
    """(N, 48, 48) uint8 -> corrupted copy. Deterministic for a seed."""
    import cv2

    rng = np.random.default_rng(seed)
    x = pixels.astype(np.float32)
    if kind == "brightness":          # add a constant (negative: darker)
        out = x + level
    elif kind == "contrast":          # scale around the mean by `level` (< 1 flattens)
        m = x.mean(axis=(1, 2), keepdims=True)
        out = (x - m) * level + m
    elif kind == "gamma":             # > 1 darkens mid-tones, < 1 over-exposes
        out = 255.0 * (x / 255.0) ** level
    elif kind == "noise":             # Gaussian noise, sigma in grey levels
        out = x + rng.normal(0, level, x.shape)
    elif kind == "blur":              # Gaussian blur, sigma in pixels
        out = np.stack([cv2.GaussianBlur(p, (0, 0), level) for p in pixels]).astype(np.float32)
    elif kind == "jpeg":              # JPEG quality
        out = np.stack([cv2.imdecode(cv2.imencode(".jpg", p, [cv2.IMWRITE_JPEG_QUALITY, int(level)])[1], cv2.IMREAD_GRAYSCALE)
                        for p in pixels]).astype(np.float32)
    elif kind == "occlusion":         # a grey square covering `level` of the face area, at a random place
        out = x.copy()
        s = pixels.shape[1]
        side = int(round(s * level ** 0.5))
        for i in range(len(out)):
            y0, x0 = rng.integers(0, s - side + 1, 2)
            out[i, y0:y0 + side, x0:x0 + side] = 128
    elif kind == "rotation":          # degrees, sign alternating per face
        out = np.stack([_affine(p, angle=level * (1 if i % 2 else -1)) for i, p in enumerate(pixels)]).astype(np.float32)
    elif kind == "misalignment":      # detector box shifted by `level` of the face size, in a random direction
        dirs = rng.uniform(0, 2 * np.pi, len(pixels))
        out = np.stack([_affine(p) if level == 0 else _shift(p, level * np.cos(a), level * np.sin(a))
                        for p, a in zip(pixels, dirs)]).astype(np.float32)
    elif kind == "scale":             # detector box too tight (> 1) or too loose (< 1)
        out = np.stack([_affine(p, zoom=level) for p in pixels]).astype(np.float32)
    else:
        raise ValueError(f"unknown corruption {kind!r}; valid: {', '.join(CORRUPTIONS)}")
    return np.clip(out, 0, 255).round().astype(np.uint8)


def _shift(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    import cv2

    s = img.shape[0]
    m = np.float32([[1, 0, dx * s], [0, 1, dy * s]])
    return cv2.warpAffine(img, m, (s, s), borderMode=cv2.BORDER_REPLICATE)


# Three strengths each, mild to severe.
CORRUPTIONS: dict[str, tuple] = {
    "brightness": (-60, 60, -100),
    "contrast": (0.6, 0.4, 0.25),
    "gamma": (2.0, 0.5, 3.0),
    "noise": (8, 16, 32),
    "blur": (0.8, 1.5, 2.5),
    "jpeg": (50, 20, 8),
    "occlusion": (0.1, 0.2, 0.35),
    "rotation": (10, 20, 30),
    "misalignment": (0.05, 0.1, 0.2),
    "scale": (1.15, 0.85, 0.7),
}


def robustness(rec: Recognizer, s: EvalSet) -> dict:
    """Accuracy under each corruption at each strength (same faces, same model)."""
    clean = evaluate(rec, s)["accuracy"]
    out = {"set": s.name, "clean": clean, "corruptions": {}}
    for kind, levels in CORRUPTIONS.items():
        accs = []
        for level in levels:
            corrupted = EvalSet(s.name, corrupt(s.pixels, kind, level), s.labels, s.classes)
            accs.append(evaluate(rec, corrupted)["accuracy"])
        out["corruptions"][kind] = {"levels": list(levels), "accuracy": accs}
    return out


def mean_corrupted(rob: dict) -> float:
    """The mean accuracy over every corruption and level of a `robustness` result: one figure to compare models."""
    return float(np.mean([a for v in rob["corruptions"].values() for a in v["accuracy"]]))


def plot_robustness(rob: dict, path: str | Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rob["corruptions"])
    fig, ax = plt.subplots(figsize=(9, 3.6))
    for lvl in range(3):
        ax.bar(np.arange(len(names)) + lvl * 0.27, [rob["corruptions"][n]["accuracy"][lvl] for n in names], 0.27,
               label=f"level {lvl + 1}")
    ax.axhline(rob["clean"], color="k", ls="--", lw=1, label=f"clean {rob['clean']:.1%}")
    ax.set_xticks(np.arange(len(names)) + 0.27, names, rotation=30, ha="right")
    ax.set_ylabel("accuracy"); ax.set_ylim(0, 1); ax.legend(fontsize=7, ncol=4)
    ax.set_title(f"Robustness on {rob['set']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
