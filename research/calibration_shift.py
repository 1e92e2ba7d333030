"""Confidence under shift (issue 28, item 12): ECE of every shipped model on clean faces, under the 30 corruptions of
`ferkit evaluate --robustness` and on faces in scenes (found by the detector), and whether one extra temperature
fitted on shifted faces would help.

    python -m research.calibration_shift [--data DIR] [--per-corruption 400] [--train 6000] [--scenes 300]
                                         [--out docs/eval/calibration-shift.json]

Splits: the temperature is fitted on shifted Training faces (each face corrupted by a random one of the 30), chosen
on PublicTest (kept only if it lowers the mean ECE over the corruptions there without raising the clean ECE), and
reported on PrivateTest. The temperature rescales the shipped probabilities: softmax(log p / T), so T = 1 is the
model as shipped and the accuracy never changes. Subsets are random but fixed (seed 0) to fit the CPU budget.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import ferkit
from ferkit.config import data_path
from ferkit.corruptions import corrupt
from ferkit.evaluate import CORRUPTIONS, EvalSet, classify_all, fer2013_set, ferplus_set
from ferkit.metrics import expected_calibration_error, rescale_temperature

GRID = np.exp(np.linspace(np.log(0.5), np.log(4.0), 61))   # relative temperatures tried (1 = as shipped)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(probs[np.arange(len(labels)), labels].clip(1e-12)).mean())


def subset(s: EvalSet, n: int, seed: int) -> EvalSet:
    if n >= len(s.labels):
        return s
    i = np.sort(np.random.default_rng(seed).choice(len(s.labels), n, replace=False))
    return EvalSet(s.name, s.pixels[i], s.labels[i], s.classes)


def corrupted_probs(rec, s: EvalSet) -> list[tuple[str, np.ndarray]]:
    """[(kind@level, probs)] over the 30 corrupted copies of the faces."""
    return [(f"{kind}@{level}", classify_all(rec, corrupt(s.pixels, kind, level)))
            for kind, levels in CORRUPTIONS.items() for level in levels]


def shifted_training(s: EvalSet, n: int, seed: int = 0) -> EvalSet:
    """n Training faces, each under one random corruption of the 30."""
    s = subset(s, n, seed)
    rng = np.random.default_rng(seed + 1)
    pairs = [(k, lv) for k, lvs in CORRUPTIONS.items() for lv in lvs]
    which = rng.integers(0, len(pairs), len(s.labels))
    pixels = s.pixels.copy()
    for j, (kind, level) in enumerate(pairs):
        m = which == j
        if m.any():
            pixels[m] = corrupt(s.pixels[m], kind, level, seed=j)
    return EvalSet(s.name + " (shifted)", pixels, s.labels, s.classes)


def scene_probs(model: str, s: EvalSet, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Faces placed in 320x240 frames and found by the default detector (the one face it finds): (probs, labels)."""
    from ferkit.scenes import scene

    rec = ferkit.load_recognizer(model)
    s = subset(s, n, seed=7)
    probs, labels = [], []
    for face, label in zip(s.pixels, s.labels):
        faces = rec.analyze(scene(face, 320, 240, 110))
        if len(faces) == 1:
            probs.append([faces[0].probabilities[c] for c in rec.labels])
            labels.append(label)
    return np.array(probs), np.array(labels)


def ece_at(probs: np.ndarray, labels: np.ndarray, t: float) -> float:
    return expected_calibration_error(labels, probs if t == 1 else rescale_temperature(probs, t))


def study(model: str, ds, votes, args) -> dict:
    from ferkit.labels import EMOTIONS

    rec = ferkit.load_recognizer(model, detector="none")
    labels = tuple(rec.labels)
    sets = {split: fer2013_set(ds, split) if labels == tuple(EMOTIONS) else ferplus_set(ds, votes, split, labels)
            for split in ("Training", "PublicTest", "PrivateTest")}
    t0 = time.time()
    train = shifted_training(sets["Training"], args.train)
    p_train = classify_all(rec, train.pixels)
    t_fit = float(GRID[np.argmin([nll(rescale_temperature(p_train, t), train.labels) for t in GRID])])

    out = {"model": model, "shipped_temperature": rec.metadata.get("temperature"), "fitted_relative_t": t_fit}
    for split in ("PublicTest", "PrivateTest"):
        s = sets[split]
        clean = classify_all(rec, s.pixels)
        shifted = corrupted_probs(rec, subset(s, args.per_corruption, seed=3))
        small = subset(s, args.per_corruption, seed=3)
        row = {"n_clean": len(s.labels), "n_per_corruption": len(small.labels)}
        for name, t in (("shipped", 1.0), ("fitted", t_fit)):
            row[name] = {
                "clean_ece": ece_at(clean, s.labels, t),
                "corrupted_ece_mean": float(np.mean([ece_at(p, small.labels, t) for _, p in shifted])),
                "corrupted_ece_worst": float(np.max([ece_at(p, small.labels, t) for _, p in shifted])),
                "clean_mean_top_p": float((clean if t == 1 else rescale_temperature(clean, t)).max(1).mean()),
                "clean_share_over_0.99": float(((clean if t == 1 else rescale_temperature(clean, t)).max(1) > 0.99).mean()),
            }
        row["clean_accuracy"] = float((clean.argmax(1) == s.labels).mean())
        row["corrupted_accuracy_mean"] = float(np.mean([(p.argmax(1) == small.labels).mean() for _, p in shifted]))
        out[split] = row
    pub = out["PublicTest"]
    out["choose_fitted"] = bool(pub["fitted"]["corrupted_ece_mean"] < pub["shipped"]["corrupted_ece_mean"]
                                and pub["fitted"]["clean_ece"] <= pub["shipped"]["clean_ece"])
    if args.scenes:
        p, y = scene_probs(model, sets["PrivateTest"], args.scenes)
        out["PrivateTest"]["scenes"] = {"n_found": int(len(y)), "of": args.scenes,
                                        "accuracy": float((p.argmax(1) == y).mean()),
                                        "ece_shipped": ece_at(p, y, 1.0), "ece_fitted": ece_at(p, y, t_fit),
                                        "mean_top_p": float(p.max(1).mean())}
    out["seconds"] = round(time.time() - t0, 1)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None)
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--per-corruption", type=int, default=400)
    ap.add_argument("--train", type=int, default=6000)
    ap.add_argument("--scenes", type=int, default=300)
    ap.add_argument("--out", default="docs/eval/calibration-shift.json")
    args = ap.parse_args(argv)
    from ferkit.data import load_dataset, read_ferplus_votes

    data = data_path(args.data)
    ds = load_dataset(data)
    ferplus = data.parent / "fer2013new.csv"   # FER+ models only
    votes = read_ferplus_votes(ferplus, len(ds)) if ferplus.is_file() else None
    results = []
    for model in args.models or ferkit.available_models():
        r = study(model, ds, votes, args)
        results.append(r)
        priv = r["PrivateTest"]
        print(f"{model:<18} T x{r['fitted_relative_t']:.2f} chosen={r['choose_fitted']}  PrivateTest ECE clean "
              f"{priv['shipped']['clean_ece']:.3f} -> {priv['fitted']['clean_ece']:.3f}, corrupted "
              f"{priv['shipped']['corrupted_ece_mean']:.3f} -> {priv['fitted']['corrupted_ece_mean']:.3f}"
              + (f", scenes {priv['scenes']['ece_shipped']:.3f} -> {priv['scenes']['ece_fitted']:.3f}"
                 if "scenes" in priv else "") + f"  ({r['seconds']} s)", flush=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
