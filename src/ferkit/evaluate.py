"""Evaluation through the inference path users get (Recognizer.classify on the ONNX model).

The labelled sets (FER-2013 splits, the FER+ majority-filtered ones), scoring a model on them with test-time
augmentation, robustness under corruptions, and `evaluate_model`, the whole `ferkit evaluate` run. The metrics
are in metrics.py, the corruptions in corruptions.py, the figures in plots.py, the card in model_card.py.
"""
from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .corruptions import CORRUPTIONS, corrupt
from .data import FaceDataset, with_ferplus
from .labels import EMOTIONS, FERPLUS_EMOTIONS
from .metrics import classification_report, expected_calibration_error, rescale_temperature
from .recognizer import Recognizer


@dataclass
class EvalSet:
    name: str            # e.g. "FER-2013 PrivateTest"
    pixels: np.ndarray   # (N, 48, 48) uint8
    labels: np.ndarray   # (N,) indices into `classes`
    classes: tuple[str, ...]


def fer2013_set(ds: FaceDataset, split: str, model_labels: tuple[str, ...] = EMOTIONS) -> EvalSet:
    """A split with FER-2013's single labels, labelled in the model's classes (an 8-class FER+ model's contempt is
    never the answer there, so a contempt prediction counts as wrong)."""
    part = ds.split(split)
    missing = [c for c in EMOTIONS if c not in model_labels]
    if missing:
        raise ValueError(f"FER-2013 labels need every one of its seven classes; the model lacks {', '.join(missing)}")
    index = np.array([tuple(model_labels).index(c) for c in EMOTIONS], np.int64)
    return EvalSet(f"FER-2013 {split}", part.pixels, index[part.labels], tuple(model_labels))


def ferplus_set(ds: FaceDataset, votes: np.ndarray, split: str, model_labels: tuple[str, ...], *,
                seven: bool = False) -> EvalSet:
    """FER+ majority-filtered faces of a split, labelled in the model's classes.

    For a 7-class FER-2013 model, faces whose FER+ majority is contempt (no FER-2013 class) are left out; with
    `seven`, also for an 8-class model: agreement with people on the same faces for every model (docs/quality.md,
    issue 37), where a contempt answer counts as a disagreement.
    """
    fp = with_ferplus(ds, votes, "majority").split(split)
    names = np.array(FERPLUS_EMOTIONS)[fp.labels]
    keep = np.isin(names, model_labels) & (np.isin(names, EMOTIONS) if seven else True)
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
    seven = [rec.labels.index(c) for c in EMOTIONS if c in rec.labels]
    if len(seven) == len(EMOTIONS) < len(rec.labels) and np.isin(s.labels, seven).all():
        # an 8-class model on faces whose truth is one of the seven: also its answer with contempt removed (the
        # argmax over the seven, which renormalising does not change), the issue 37 reading
        report["accuracy_over_seven"] = float((np.array(seven)[probs[:, seven].argmax(1)] == s.labels).mean())
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


def agreement_set(data: str | Path, labels: tuple[str, ...], split: str, ferplus: str | Path | None = None) -> EvalSet:
    """Agreement with people: the FER+ majority of one split, on the faces whose majority is one of FER-2013's seven
    classes, in a model's classes (the set the default is chosen on, docs/quality.md)."""
    from .data import load_dataset, read_ferplus_votes

    ds = load_dataset(data)
    ferplus = Path(ferplus) if ferplus else Path(data).parent / "fer2013new.csv"
    return ferplus_set(ds, read_ferplus_votes(ferplus, len(ds)), split, tuple(labels), seven=True)


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


def evaluate_model(model: str | Path | None, data: str | Path, out: str | Path, *, ferplus: str | Path | None = None,
                   split: str = "PrivateTest", tta: str = "all", with_robustness: bool = False, public: bool = False,
                   robustness_on: str = "own", command: str = "ferkit evaluate ...",
                   log: Callable[[str], None] = lambda s: None) -> dict:
    """Score `model` on `split` of the FER-2013 file `data` (and the FER+ labels of fer2013new.csv, `ferplus` or
    beside `data`, where present), once per TTA mode; write the report (report_NAME.json) and its figures into
    `out`. With `public` (a model card's needs) PublicTest is scored too, and TTA "none" always. Every model is
    scored on both label sets where the votes are there: `agreement` names the set of agreement with people (FER+
    majority, the seven FER-2013 classes), `fer2013_labels` the set of FER-2013's single labels. The corruptions run
    on the model's own label set (`robustness_on` "own") or on the agreement set ("people"). Returns the report;
    `log` gets one line per figure."""
    from . import EMOTIONS, load_recognizer
    from .data import load_dataset, read_ferplus_votes
    from .plots import plot_confusion, plot_robustness

    out = Path(out)
    data = Path(data)
    ferplus = Path(ferplus) if ferplus else data.parent / "fer2013new.csv"
    out.mkdir(parents=True, exist_ok=True)
    ds = load_dataset(data)
    log(ds.summary())
    modes = ["none", "flip", "crops"] if tta == "all" else [tta]
    if public and "none" not in modes:
        modes.insert(0, "none")  # the card's per-class table is without TTA
    results: dict = {"command": command, "machine": machine_description()}
    rec = load_recognizer(model, detector="none")
    votes = read_ferplus_votes(ferplus, len(ds)) if ferplus.is_file() else None
    part = {"PrivateTest": "private", "PublicTest": "public", "Training": "training"}[split]
    # The model's own label set gives the headline set (and PublicTest beside it for a card); a FER-2013 model
    # is also scored on the FER+ majority labels, a FER+ model on FER+ labels only.
    native = "fer2013" if tuple(rec.labels) == tuple(EMOTIONS) else "ferplus"
    if native == "ferplus" and votes is None:
        raise FileNotFoundError(f"{ferplus}: the FER+ votes are needed to evaluate a model with classes {', '.join(rec.labels)}")

    if robustness_on not in ("own", "people"):
        raise ValueError(f"robustness_on must be 'own' or 'people', got {robustness_on!r}")
    if robustness_on == "people" and votes is None:
        raise FileNotFoundError(f"{ferplus}: the FER+ votes are needed for the corruptions on agreement with people")

    def labelled(kind: str, which: str) -> EvalSet:
        if kind == "fer2013":
            return fer2013_set(ds, which, rec.labels)
        return ferplus_set(ds, votes, which, rec.labels, seven=kind == "ferplus7")

    sets = {f"{native}_{part}": labelled(native, split)}
    if public and split != "PublicTest":
        sets[f"{native}_public"] = labelled(native, "PublicTest")
    results["main"] = next(iter(sets))
    if native == "fer2013" and votes is not None:  # 7 classes: its FER+ set is the agreement set
        sets[f"ferplus_{part}"] = labelled("ferplus", split)
        results["agreement"] = f"ferplus_{part}"
    if native == "ferplus" and all(c in rec.labels for c in EMOTIONS):
        sets[f"ferplus7_{part}"] = labelled("ferplus7", split)
        sets[f"fer2013_{part}"] = labelled("fer2013", split)
        results["agreement"] = f"ferplus7_{part}"
    results["fer2013_labels"] = f"fer2013_{part}" if f"fer2013_{part}" in sets else None
    results["sets"] = {}
    recs = {mode: load_recognizer(model, detector="none", tta=mode) for mode in modes}  # one session per mode
    for key, s in sets.items():
        results["sets"][key] = {}
        for mode in (modes if not key.endswith("_public") or split == "PublicTest" else ["none"]):
            r = evaluate(recs[mode], s)
            results["sets"][key][mode] = r
            log(f"{s.name:<60} n={r['n']:<5} TTA {mode:<6} accuracy {r['accuracy']:.4f}  macro F1 {r['macro']['f1']:.4f}  ECE {r['ece']:.3f}")
        plot_confusion(results["sets"][key][next(iter(results["sets"][key]))], out / f"confusion_{rec.name}_{key}.png")
    if with_robustness:
        results["robustness"] = robustness(rec, sets[results["main"] if robustness_on == "own" else results["agreement"]])
        plot_robustness(results["robustness"], out / f"robustness_{rec.name}.png")
        for name, v in results["robustness"]["corruptions"].items():
            log(f"robustness {name:<13} " + "  ".join(f"{lvl}: {a:.3f}" for lvl, a in zip(v["levels"], v["accuracy"])))
    report = out / f"report_{rec.name}.json"
    report.write_text(json.dumps(results, indent=1, default=str))
    log(f"wrote {report}")
    return results


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
