"""Model cards: the Markdown card and the short metrics file, generated from a `ferkit evaluate` report.

Nothing in a card is typed by hand; `write_model_card` writes only where it is told.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .evaluate import mean_corrupted
from .recognizer import DEFAULT_MODEL, WEIGHTS_DIR, Recognizer, shipped_member_files


def read_report(path: str | Path) -> dict:
    """A report `ferkit evaluate` wrote (report_NAME.json), checked for what a model card needs."""
    try:
        results = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable ferkit evaluate report ({e})") from e
    missing = [k for k in ("command", "machine", "main", "sets") if k not in results]
    if missing:
        raise ValueError(f"{path}: not a ferkit evaluate report (no {', '.join(missing)})")
    return results


def write_model_card(rec: Recognizer, results: dict, out: str | Path, card: str | Path) -> list[Path]:
    """The card at `card` and NAME.metrics.json in `out` (copy it beside a model file you ship: the Recognizer and
    `ferkit models` read it there), from a report. The card's figures are the PNGs the same run wrote into `out`
    (names derived from the report, so a card rendered again from a saved report shows the same). Returns the
    paths written."""
    out = Path(out)
    scored = {r["model"] for per_mode in results["sets"].values() for r in per_mode.values()}
    if scored != {rec.name}:
        raise ValueError(f"the report scores {', '.join(sorted(scored))}, not the model {rec.name!r} given by --model")
    figures = {f"Confusion matrix: {next(iter(per_mode.values()))['set']}": out / f"confusion_{rec.name}_{key}.png"
               for key, per_mode in results["sets"].items()}
    if (out / f"curves_{rec.name}.png").is_file():  # copied from the training run's folder (docs/training.md)
        figures["Training curves (Training augmented, PublicTest)"] = out / f"curves_{rec.name}.png"
    if "robustness" in results:
        figures["Robustness"] = out / f"robustness_{rec.name}.png"
    card = Path(card)
    card.parent.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    card.write_text(render_model_card(rec, results, {t: os.path.relpath(p, card.parent) for t, p in figures.items()}))
    metrics = out / f"{rec.name}.metrics.json"
    write_metrics(rec, results, metrics)
    return [card, metrics]


def write_metrics(rec: Recognizer, results: dict, path: Path) -> dict:
    """The short summary the server and the Recognizer read when it sits beside the model file
    (weights/<name>.metrics.json for a shipped one)."""
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
    for field, key in (("agreement", results.get("agreement")), ("fer2013_labels", results.get("fer2013_labels"))):
        if key in results["sets"]:  # agreement with people (FER+ majority, 7 classes) and FER-2013's single labels
            r = results["sets"][key]["none"]
            summary[field] = {"set": r["set"], "accuracy": round(r["accuracy"], 4), "n": r["n"]}
            if "accuracy_over_seven" in r:
                summary[field]["accuracy_over_seven"] = round(r["accuracy_over_seven"], 4)
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
    the members kept their own config (python -m research.ensemble members)."""
    if not cfg:
        return f"{_NETWORK} (stages not recorded in the file)"
    return (f"VGG-style CNN for 48x48 grey faces, stages {cfg['channels']} channels x {cfg['depths']} conv layers, "
            "global average pooling + linear head")  # the wording of every card generated so far


def _files(rec: Recognizer) -> str:
    """The files the model runs: its own, and the shipped models an ensemble runs for the members that ship alone."""
    own = f"ONNX file `{rec.model_path.name}` ({rec.model_path.stat().st_size / 1e6:.1f} MB)"
    added = shipped_member_files(rec.model_path, rec.metadata, check=False)
    if not added:
        return own
    total = sum(p.stat().st_size for p in [rec.model_path] + [p for p, _ in added])
    return (own + ", which runs " + " and ".join(f"the shipped `{p.name}` for member `{e['member']}`" for p, e in added)
            + f" ({total / 1e6:.1f} MB in all)")


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
        *(["- ferkit's default model: the shipped model that agrees best with people (the FER+ majority of ten "
           "annotators), chosen on PublicTest by the rule in docs/quality.md (2026-12-07)."]
          if Path(rec.model_path).resolve() == (WEIGHTS_DIR / f"{DEFAULT_MODEL}.onnx").resolve() else []),
        (f"- Architecture: an ensemble of {len(members)} models (the weighted mean of their probabilities), each a "
         f"{_NETWORK}, its stages given below" if members else f"- Architecture: {_architecture(meta.get('config'))}") +
        f" ({meta.get('parameters', 'n/a')} parameters{' in all' if members else ''}); {_files(rec)}.",
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
    if results.get("agreement") in results["sets"] and results.get("fer2013_labels") in results["sets"]:
        people = results["sets"][results["agreement"]]["none"]
        single = results["sets"][results["fer2013_labels"]]["none"]
        seven = (f" (with contempt removed, the argmax over the seven: {_pct(people['accuracy_over_seven'])})"
                 if "accuracy_over_seven" in people else "")
        lines += ["", f"Agreement with people, the FER+ majority of ten annotators on the {people['n']} faces whose "
                  f"majority is one of FER-2013's seven classes: {_pct(people['accuracy'])}{seven}; on FER-2013's "
                  f"own single labels ({single['n']} faces): {_pct(single['accuracy'])}. Per-class recall, no "
                  "test-time augmentation:", "",
                  "| class | recall, FER+ majority | recall, FER-2013 labels |", "|---|---|---|"]
        for lab in rec.labels:
            a, b = people["per_class"][lab], single["per_class"][lab]
            lines.append(f"| {lab} | {_pct(a['recall']) if a['support'] else '-'} | "
                         f"{_pct(b['recall']) if b['support'] else '-'} |")
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
