"""Ensembles and per-class offsets: how `fer2013-accurate` was built and how round 11 was judged (docs/quality.md).

    python -m research.ensemble build MEMBER MEMBER... --out ENS.onnx [--weights W...] [--fit-weights DATA
                                      [--budget-ms MS]] [--name NAME]
    python -m research.ensemble members MODEL [--out DIR]     # the networks inside an ensemble, each as a file
    python -m research.ensemble dedupe MODEL --shipped MEMBER=NAME... --out DIR/ENS.onnx
                                      # members that also ship alone: run from DIR/NAME.onnx, not stored twice
                                      # (the wheel build does this to every shipped ensemble: store_once.py)
    python -m research.ensemble offsets MODEL --fit DATA --out MODEL-offsets.onnx [--report JSON]

The Recognizer runs an ensemble file like any other model; only making one lives here. Weights and offsets are
fitted on PublicTest, never PrivateTest. Needs the [train] extra (torch, onnx) and scipy.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ferkit import __version__
from ferkit.config import data_path
from ferkit.corruptions import CORRUPTIONS, corrupt
from ferkit.evaluate import classify_all, selection_set
from ferkit.metrics import softmax
from ferkit.metrics import classification_report
from ferkit.modelfile import proto_metadata, save_with_metadata
from ferkit.recognizer import Recognizer

from store_once import member_model, strip_shipped  # the wheel build's own functions

from .select import ROUND11, judge, mcnemar


# ---------------------------------------------------------------- ONNX files
def ensemble_onnx(member_paths, out_path: str | Path, *, name: str | None = None, weights=None) -> dict:
    """Several exported models (same labels and preprocessing) -> one ONNX file whose `probs` and `cams` are
    the weighted means of the members'. The members' graphs are copied side by side under prefixes `m0/`,
    `m1/`, ... and share the one `input`, so the Recognizer runs an ensemble like any other model.
    `weights` default to equal; they are normalised to sum to 1. Returns the metadata written.
    """
    import onnx
    from onnx import compose, helper

    paths = [Path(p) for p in member_paths]
    if len(paths) < 2:
        raise ValueError(f"an ensemble needs at least 2 member models, got {len(paths)}")
    models, metas = zip(*(_load_ensemble(p) for p in paths))  # each member file is read once: graph and metadata
    for p, m in zip(paths[1:], metas[1:]):
        for key in ("labels", "preprocess"):
            if m[key] != metas[0][key]:
                raise ValueError(f"{p}: its {key} {m[key]} differ from {paths[0]}'s {metas[0][key]}")
    w = np.ones(len(paths)) if weights is None else np.asarray(weights, np.float64)
    if len(w) != len(paths) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"need one non-negative weight per member ({len(paths)}), got {list(w)}")
    w = w / w.sum()

    first = models[0].graph
    nodes, inits, outs = [], [], {"probs": [], "cams": []}
    for i, model in enumerate(models):
        g = compose.add_prefix(model, f"m{i}/").graph
        for node in g.node:  # the members read the shared input
            for j, name_in in enumerate(node.input):
                if name_in == f"m{i}/input":
                    node.input[j] = "input"
        nodes += g.node
        inits += g.initializer
        inits.append(onnx.numpy_helper.from_array(np.array(w[i], np.float32), f"m{i}/weight"))
        for key in outs:
            nodes.append(helper.make_node("Mul", [f"m{i}/{key}", f"m{i}/weight"], [f"m{i}/{key}_weighted"]))
            outs[key].append(f"m{i}/{key}_weighted")
    nodes += [helper.make_node("Sum", outs[key], [key]) for key in outs]
    graph = helper.make_graph(nodes, "ferkit_ensemble", list(first.input), list(first.output), inits)
    opsets = {o.domain: o.version for m in models for o in m.opset_import}
    merged = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])
    merged.ir_version = max(m.ir_version for m in models)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # the top level describes the ensemble; each member's architecture (members may differ in width), size,
    # training and calibration stay with the member
    member_keys = ("config", "parameters", "trained", "training_run", "calibration", "quantized", "temperature")
    meta = {k: v for k, v in metas[0].items() if k not in member_keys}
    meta.update(name=name or out_path.stem, ferkit_version=__version__, ensemble=[
        {"name": m.get("name", p.stem), "file": p.name, "weight": round(float(wi), 4),
         **{k: m[k] for k in member_keys if k in m}} for p, m, wi in zip(paths, metas, w)])
    if all("parameters" in m for m in metas):
        meta["parameters"] = sum(m["parameters"] for m in metas)
    save_with_metadata(merged, meta, out_path)
    return meta


def add_class_offsets(in_path: str | Path, out_path: str | Path, offsets, *, fitted: dict | None = None,
                      name: str | None = None) -> dict:
    """A model file whose `probs` become softmax(log probs + offsets) (Log, Add, Softmax appended to the graph; the
    class maps are untouched), with the offsets and how they were `fitted` in its metadata (`class_offsets`).
    Docs/quality.md, round 11. Returns the metadata written."""
    from onnx import helper, numpy_helper

    in_path = Path(in_path)
    proto, meta = _load_ensemble(in_path)  # offsets go after every member's share, so all of them in one graph
    if "class_offsets" in meta:
        raise ValueError(f"{in_path}: already has class offsets {meta['class_offsets']['values']}")
    b = np.asarray(offsets, np.float32)
    if b.shape != (len(meta["labels"]),):
        raise ValueError(f"need one offset per class ({len(meta['labels'])}: {', '.join(meta['labels'])}), got {list(b)}")
    g = proto.graph
    for node in g.node:  # what computed `probs` now feeds the offsets
        node.input[:] = ["offsets/input" if n == "probs" else n for n in node.input]
        node.output[:] = ["offsets/input" if n == "probs" else n for n in node.output]
    g.initializer.append(numpy_helper.from_array(b, "offsets/values"))
    g.node.extend([helper.make_node("Log", ["offsets/input"], ["offsets/log"]),
                   helper.make_node("Add", ["offsets/log", "offsets/values"], ["offsets/logits"]),
                   helper.make_node("Softmax", ["offsets/logits"], ["probs"], axis=-1)])
    meta = {**meta, "name": name or Path(out_path).stem, "ferkit_version": __version__,
            "class_offsets": {"values": [round(float(v), 6) for v in b], **(fitted or {})}}
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    save_with_metadata(proto, meta, out_path)
    return meta


def split_ensemble(path: str | Path, out_dir: str | Path) -> list[Path]:
    """An ensemble file (ensemble_onnx) -> one .onnx file per member in `out_dir`, named after the member: its graph
    as it was before the merge (the `m<i>/` prefix taken off, the weighting left out) and its metadata (labels and
    preprocessing from the ensemble, its own name, training and calibration; where the ensemble recorded them, its
    config and size). Lets each member be evaluated, timed or put in a new ensemble without the files it was made
    from. A member the file stores as a shipped model beside it (`shipped_members`, see store_without_shipped) comes
    from that file. Returns the paths written."""
    path = Path(path)
    proto, meta = _load_ensemble(path)
    members = meta.get("ensemble")
    if not members:
        raise ValueError(f"{path}: not an ensemble (its metadata lists no members)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shared = {k: v for k, v in meta.items() if k not in ("ensemble", "parameters", "name", "class_offsets")}
    written = []
    for i, member in enumerate(members):
        model = member_model(proto, i)
        if model is None:
            raise ValueError(f"{path}: no graph found for member {i} ({member.get('name')})")
        name = member.get("name", f"member{i}")
        own_meta = {**shared, **{k: v for k, v in member.items() if k not in ("weight", "file")}, "name": name,
                    "split_from": {"file": path.name, "weight": member.get("weight")}}
        out = out_dir / f"{name}.onnx"
        save_with_metadata(model, own_meta, out)
        written.append(out)
    return written


# ---------------------------------------------------------------- members that also ship alone
def store_without_shipped(path: str | Path, out_path: str | Path, shipped: dict[str, str]) -> dict:
    """An ensemble file -> the same ensemble stored without the members that also ship as models of their own, so
    the package carries each network once. `shipped` maps a member's name to the name of the shipped model that is
    that very network: a file NAME.onnx in `out_path`'s directory, where the Recognizer will look for it. Those
    members' graphs and weighting leave the file; its metadata names them under `shipped_members` (name, member,
    weight, the file's sha256), and the Recognizer runs those files beside the file's own graph and adds their
    weighted outputs: the same probabilities and maps as before. The `ensemble` list (every member, for model cards
    and `ferkit models`) stays as it is; the remaining members keep their weights, not renormalised. A shipped file
    that is not the member's network (other initializers or nodes) is refused. Returns the metadata written."""
    path, out_path = Path(path), Path(out_path)
    proto, meta = _load_ensemble(path)  # a file stored this way already: its shipped members back in first
    meta = strip_shipped(proto, meta, out_path.parent, shipped, path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_with_metadata(proto, meta, out_path)
    return meta


def _load_ensemble(path: Path):
    """An ensemble file as one graph holding every member, and its metadata: the members it stores as shipped files
    beside it (`shipped_members`) put back under their `m<i>/` prefixes, weighted and summed in member order, as
    ensemble_onnx wrote them. Any other model file as it is."""
    from onnx import compose, helper, numpy_helper

    proto = _load_onnx(path)
    meta = proto_metadata(proto, path)
    added = meta.pop("shipped_members", None)
    if not added:
        return proto, meta
    from ferkit.recognizer import shipped_member_files

    names = [m["name"] for m in meta["ensemble"]]
    g = proto.graph
    is_sum = [n.op_type == "Sum" and n.output[0] in ("probs", "cams") for n in g.node]
    sums = [n for n, last in zip(g.node, is_sum) if last]
    body = [n for n, last in zip(g.node, is_sum) if not last]
    for (file, entry) in shipped_member_files(path, {**meta, "shipped_members": added}):
        i = names.index(entry["member"])
        member = compose.add_prefix(_load_onnx(file), f"m{i}/").graph
        for node in member.node:  # the members read the shared input
            node.input[:] = ["input" if n == f"m{i}/input" else n for n in node.input]
        body += member.node
        g.initializer.extend(member.initializer)
        g.initializer.append(numpy_helper.from_array(np.array(entry["weight"], np.float32), f"m{i}/weight"))
        for s in sums:
            key = s.output[0]
            body.append(helper.make_node("Mul", [f"m{i}/{key}", f"m{i}/weight"], [f"m{i}/{key}_weighted"]))
            s.input.append(f"m{i}/{key}_weighted")
    for s in sums:  # member order, as ensemble_onnx summed them
        s.input[:] = sorted(s.input, key=lambda n: int(n.split("/")[0][1:]))
    nodes = [type(n)() for n in body + sums]
    for copy, n in zip(nodes, body + sums):
        copy.CopyFrom(n)
    del g.node[:]
    g.node.extend(nodes)
    return proto, meta


def _load_onnx(path: Path):
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as e:  # protobuf raises DecodeError and friends for files that are not ONNX
        raise ValueError(f"{path}: not a readable ONNX model ({e})") from e


# ---------------------------------------------------------------- ensemble weights
def fit_ensemble_weights(members, data: str | Path, step: float = 0.1, costs_ms=None,
                         budget_ms: float | None = None) -> tuple[list[float], float, float]:
    """Member weights (a grid of `step` on the simplex) with the best PublicTest accuracy; ties go to the most
    even weights. Returns the weights, their accuracy there (optimistic: chosen on those very faces) and a
    two-fold estimate free of that bias (weights fitted on each half of PublicTest, scored on the other half).
    With `budget_ms`, only weightings whose members' `costs_ms` (one per member, e.g. from `latency_ms`) add up
    to at most the budget are tried, in both fits. PrivateTest is never read."""
    from ferkit.recognizer import load_recognizer

    costs = None if budget_ms is None else np.asarray(costs_ms if costs_ms is not None else [], np.float64)
    if costs is not None and costs.shape != (len(members),):
        raise ValueError(f"{costs.size} member costs for {len(members)} members: a budget needs one per member")
    if costs is not None and costs.min() > budget_ms:
        raise ValueError(f"no member fits the budget of {budget_ms} ms per face "
                         f"(the members cost {', '.join(f'{c:.3f}' for c in costs)} ms)")
    recs = [load_recognizer(m, detector="none") for m in members]
    s = selection_set(data_path(data), recs[0].labels)
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



# ---------------------------------------------------------------- class offsets (round 11)
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
    s = selection_set(data_path(data), rec.labels)
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


def judge_offsets(r: dict) -> tuple[bool, str]:
    """research.select's rule (ROUND11) on an offsets_report: the model with its offsets (two-fold figures) as NEW,
    the model alone as OLD."""
    old = {"clean": r["accuracy"], "mean_corrupted": r["corrupted_mean"], "macro_f1": r["macro_f1"]}
    new = {"clean": r["two_fold"], "mean_corrupted": r["corrupted_mean_with_offsets"],
           "macro_f1": r["two_fold_macro_f1"]}
    return judge(old, new, r["gained"], r["lost"], r["p"], ROUND11, role=f"{r['model']} (NEW: with its offsets)")


# ---------------------------------------------------------------- command line
def run_build(args) -> None:
    from ferkit.recognizer import load_recognizer, resolve_model

    members = [resolve_model(m) for m in args.members]
    weights = args.weights
    if args.budget_ms is not None and not args.fit_weights:
        raise ValueError("--budget-ms limits the weight fit: give --fit-weights DATA too")
    if args.fit_weights:
        costs = None
        if args.budget_ms is not None:
            costs = [latency_ms(load_recognizer(m, detector="none")) for m in members]
            print("each member alone, batch 1: " + ", ".join(f"{m.name} {c:.3f} ms" for m, c in zip(members, costs))
                  + f"; budget {args.budget_ms} ms per face")
        weights, acc, held_out = fit_ensemble_weights(members, args.fit_weights, costs_ms=costs,
                                                      budget_ms=args.budget_ms)
        print(f"weights {weights} chosen on PublicTest (accuracy there {acc:.4f}, optimistic; "
              f"fitted on each half and scored on the other: {held_out:.4f})")
    if weights is not None and len(weights) == len(members) and any(w == 0 for w in weights):
        dropped = [m.name for m, w in zip(members, weights) if w == 0]
        members, weights = [m for m, w in zip(members, weights) if w != 0], [w for w in weights if w != 0]
        print(f"left out (weight 0): {', '.join(dropped)}")
        if len(members) < 2:
            raise ValueError(f"the weights put everything on {members[0] if members else 'no member'}: "
                             "use that model itself; no ensemble written")
    meta = ensemble_onnx(members, args.out, name=args.name, weights=weights)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e6:.1f} MB): " +
          ", ".join(f"{m['name']} x {m['weight']}" for m in meta["ensemble"]))


def run_members(args) -> None:
    from ferkit.recognizer import read_metadata, resolve_model

    path = resolve_model(args.model)
    members = read_metadata(path).get("ensemble")
    if not members:
        raise ValueError(f"{args.model}: not an ensemble (one network)")
    for m in members:
        cfg = m.get("config")
        stages = "x".join(map(str, cfg["channels"])) if cfg else "not recorded"
        trained, run = m.get("trained") or {}, (m.get("training_run") or {}).get("command")
        chosen = (f", chosen at epoch {trained['epoch']} (PublicTest {trained['val_accuracy']:.2%})"
                  if "val_accuracy" in trained else "")
        print(f"{m['name']:<14} weight {m['weight']:<5} channels {stages:<16} {m.get('parameters', 'n/a')} weights"
              f"{', INT8' if m.get('quantized') else ''}{chosen}" + (f"\n    {run}" if run else ""))
    if args.out:
        for out in split_ensemble(path, args.out):
            print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


def run_dedupe(args) -> None:
    from ferkit.recognizer import resolve_model

    pairs = dict(p.split("=", 1) for p in args.shipped if "=" in p)
    if len(pairs) != len(args.shipped):
        raise ValueError(f"--shipped takes MEMBER=NAME pairs, got {' '.join(args.shipped)}")
    path, out = resolve_model(args.model), Path(args.out)
    if out.resolve() == path.resolve():
        raise ValueError(f"{out}: write beside {path.name}, not over it, then move it into place")
    meta = store_without_shipped(path, out, pairs)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, was {path.stat().st_size / 1e6:.1f} MB); it runs " +
          ", ".join(f"{m['name']}.onnx (member {m['member']}) x {m['weight']}" for m in meta["shipped_members"]) +
          f" from {out.parent}")


def run_offsets(args) -> None:
    from ferkit.recognizer import load_recognizer

    rec = load_recognizer(args.model, detector="none")
    r = offsets_report(rec, args.fit)
    print(f"{r['model']} on {r['set']} ({r['faces']} faces): offsets " +
          ", ".join(f"{c} {v:+.3f}" for c, v in zip(r["labels"], r["offsets"])))
    print(f"accuracy {r['accuracy']:.4f}; with offsets {r['in_sample']:.4f} (fitted on these faces, optimistic), "
          f"two-fold {r['two_fold']:.4f}; macro F1 {r['macro_f1']:.4f} -> two-fold {r['two_fold_macro_f1']:.4f}")
    print(f"paired on the two-fold predictions: {r['gained']} faces only the offsets get right, {r['lost']} only the "
          f"model; McNemar p = {r['p']:.3f}")
    print(f"mean of 30 corrupted copies {r['corrupted_mean']:.4f}; with offsets {r['corrupted_mean_with_offsets']:.4f}")
    print(judge_offsets(r)[1])
    add_class_offsets(rec.model_path, args.out, r["offsets"], name=args.name or rec.name, fitted={
        "fitted_on": "PublicTest", "faces": r["faces"], "method": "NLL of softmax(log p + b), Newton; b sums to 0",
        "accuracy_before": round(r["accuracy"], 4), "two_fold_accuracy": round(r["two_fold"], 4)})
    if args.report:
        Path(args.report).write_text(json.dumps(r, indent=1))
    print(f"wrote {args.out}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m research.ensemble", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="several exported models -> one ONNX file averaging their probabilities")
    p.add_argument("members", nargs="+", help="two or more .onnx files (or shipped model names)")
    p.add_argument("--out", required=True, help="the ensemble .onnx to write")
    p.add_argument("--name", default=None, help="model name stored in the file (default: the file's stem)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--weights", type=float, nargs="+", metavar="W", help="one weight per member (default: equal)")
    g.add_argument("--fit-weights", metavar="DATA", help="choose the weights (grid of 0.1 steps) by accuracy on "
                                                        "DATA's PublicTest split; never PrivateTest")
    p.add_argument("--budget-ms", type=float, metavar="MS", help="with --fit-weights: time each member alone (batch 1) "
                   "and try only the mixes whose members add up to at most MS milliseconds per face")
    p.set_defaults(run=run_build)
    p = sub.add_parser("members", help="an ensemble's members: list them, or write each as its own .onnx")
    p.add_argument("model", help="an ensemble: shipped name (fer2013-accurate) or .onnx path")
    p.add_argument("--out", metavar="DIR", help="write DIR/<member name>.onnx for each member")
    p.set_defaults(run=run_members)
    p = sub.add_parser("dedupe", help="an ensemble stored without the members that also ship alone (run from "
                                      "those files beside it: the same outputs, a smaller package)")
    p.add_argument("model", help="an ensemble: shipped name or .onnx path")
    p.add_argument("--shipped", nargs="+", required=True, metavar="MEMBER=NAME",
                   help="a member and the shipped model that is that network (NAME.onnx beside --out)")
    p.add_argument("--out", required=True, help="the ensemble .onnx to write, in the directory of the shipped models")
    p.set_defaults(run=run_dedupe)
    p = sub.add_parser("offsets", help="per-class offsets fitted on PublicTest, written into a model file")
    p.add_argument("model", help="shipped model name or .onnx path")
    p.add_argument("--fit", required=True, metavar="DATA", help="FER-2013 data whose PublicTest split the fit uses")
    p.add_argument("--out", required=True, help="the .onnx to write (the model with its offsets)")
    p.add_argument("--name", default=None, help="model name stored in the file (default: the model's own)")
    p.add_argument("--report", metavar="JSON", help="also keep the figures as JSON here")
    p.set_defaults(run=run_offsets)
    args = ap.parse_args(argv)
    try:
        args.run(args)
    except (ValueError, OSError) as e:
        sys.exit(f"research.ensemble: {e}")


if __name__ == "__main__":
    main()
