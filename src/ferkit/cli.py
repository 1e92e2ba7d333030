"""The `ferkit` command. Flags map one-to-one onto config fields; library errors become messages and exit codes.

One error path for every command: the library raises typed errors (ValueError subclasses such as DataError and
UnreadableImageError, OSError); a command raises CommandError for trouble of its own, with an exit code; main()
prints each as `ferkit: message` on stderr and exits with its code. print_error() is only for trouble that does
not stop a command (one bad file among several).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import warnings
from pathlib import Path

from .detect import DEFAULT_DETECTOR, available_detectors, detector_help

EXIT_OK = 0             # success
EXIT_ERROR = 1          # an input could not be processed (with several inputs, the others still were)
EXIT_USAGE = 2          # bad usage: an unknown option, a missing argument, options that contradict each other
EXIT_NO_FACE = 3        # analyze, recommend: no face in any image
EXIT_SOME_NO_FACE = 4   # analyze: faces in some images, none in others
EXIT_INTERRUPTED = 130  # Ctrl+C
EXIT_BROKEN_PIPE = 141  # the reader of stdout went away (`ferkit analyze ... | head`): 128 + SIGPIPE, as for C tools


class CommandError(Exception):
    """Stops a command: main() prints `ferkit: message` on stderr and exits with `code`."""

    def __init__(self, message: str, code: int = EXIT_ERROR):
        super().__init__(message)
        self.code = code


def print_error(message: str) -> None:
    """`ferkit: message` on stderr, for trouble that does not stop the command; the rest go through main()."""
    print(f"ferkit: {message}", file=sys.stderr)


# ---------------------------------------------------------------- analyze
# What a folder given to `ferkit analyze` is searched for (recursively); hidden files and folders are left out.
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")

ANALYZE_EPILOG = f"""\
A folder is searched recursively for images ({' '.join(PHOTO_SUFFIXES)}; hidden files left out).
One unreadable or broken image is reported on stderr and the others are still analysed.

--json prints one JSON array with an object per image, also for a single image:
  {{"file": ..., "status": "ok" | "no_face", "faces": [...]}} or {{"file": ..., "status": "error", "error": ...}}

exit status:
  {EXIT_OK}  every image had at least one face
  {EXIT_ERROR}  at least one input could not be read or analysed (the others still were)
  {EXIT_USAGE}  bad usage (an unknown option, an output file with an unknown image extension ...)
  {EXIT_NO_FACE}  no image had a face
  {EXIT_SOME_NO_FACE}  some images had faces, others none
"""


def add_analyze(sub) -> None:
    p = sub.add_parser("analyze", help="recognise emotions in photos", description="Find faces in photos and recognise each one's emotion.",
                       epilog=ANALYZE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photos", nargs="+", help="image files (JPEG, PNG, WebP, BMP, GIF) or folders of them")
    p.add_argument("--model", default=None, help="shipped model name or path to an .onnx file (default: fer2013)")
    p.add_argument("--detector", default=DEFAULT_DETECTOR, choices=available_detectors(), metavar="NAME",
                   help="face detector (default: %(default)s). " + detector_help())
    p.add_argument("--no-detect", action="store_true", help="treat each image as one pre-cropped face")
    p.add_argument("--tta", action="store_true", help="average each face with its mirror image")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--annotate", metavar="OUT", help="write the image with boxes and labels (a file for one photo, "
                                                     "else a folder, created if missing)")
    p.add_argument("--explain", metavar="OUT", help="write the image with class activation heatmaps (a file for one "
                                                    "photo, else a folder, created if missing)")
    p.set_defaults(run=run_analyze)


@dataclasses.dataclass
class _Input:
    path: Path               # the image file, or the argument that yielded none
    rel: Path | None = None  # its place under a folder argument, mirrored in output folders
    error: str | None = None  # why it cannot be analysed, known before reading it


def _expand_photos(args: list[str]) -> list[_Input]:
    """Files as given; a folder becomes the images under it (sorted, recursive, symbolic links not followed)."""
    out = []
    for arg in map(Path, args):
        if not arg.is_dir():
            out.append(_Input(arg))
            continue
        found = []
        for folder, dirs, files in os.walk(arg):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found += [Path(folder) / f for f in sorted(files)
                      if not f.startswith(".") and f.lower().endswith(PHOTO_SUFFIXES)]
        out += [_Input(f, f.relative_to(arg)) for f in found]
        if not found:
            out.append(_Input(arg, error=f"{arg}: a folder with no images in it (looked for {', '.join(PHOTO_SUFFIXES)})"))
    return out


class _Outputs:
    """Where --annotate / --explain images go: OUT itself for one photo when OUT has an image extension, else
    OUT/<name>_<suffix>.png (mirroring the sub-folders of a folder argument), never the same file twice."""

    def __init__(self, flag: str, out: str, n_photos: int, suffix: str):
        import cv2

        self.out, self.suffix, self.used = Path(out), suffix, set()
        self.is_file = not self.out.is_dir() and bool(self.out.suffix)
        if self.is_file and n_photos > 1:
            raise CommandError(f"{flag} {out}: {n_photos} images need a folder, not a file name", EXIT_USAGE)
        if self.is_file and not cv2.haveImageWriter(str(self.out)):
            raise CommandError(f"{flag} {out}: unknown image extension {self.out.suffix!r}; "
                               "use .png, .jpg, .webp, .bmp or .tif", EXIT_USAGE)
        folder = self.out.parent if self.is_file else self.out
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CommandError(f"{flag} {out}: cannot create the folder {folder} ({e.strerror or e})") from e

    def write(self, item: _Input, image) -> None:
        import cv2

        if self.is_file:
            path = self.out
        else:
            base = self.out / (item.rel.parent if item.rel else Path()) / f"{item.path.stem}_{self.suffix}"
            path, k = base.with_name(base.name + ".png"), 1
            while path in self.used:  # two photos with the same name from different folders
                k += 1
                path = base.with_name(f"{base.name}-{k}.png")
        self.used.add(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            written = cv2.imwrite(str(path), image)
        except (OSError, cv2.error) as e:
            reason = e.strerror if isinstance(e, OSError) else e.err
            raise OSError(f"{item.path}: cannot write {path} ({reason or e})") from e
        if not written:
            raise OSError(f"{item.path}: cannot write {path}")


def _describe_failure(photo: Path, e: Exception) -> str:
    """One line starting with the photo's name."""
    import cv2

    from . import UnreadableImageError

    if isinstance(e, (CommandError, UnreadableImageError)) or (isinstance(e, OSError) and e.filename is None):
        return str(e)  # names the file already
    if isinstance(e, OSError):
        return f"{photo}: {e.strerror or e}"
    if isinstance(e, cv2.error):  # its own text spans several lines
        return f"{photo}: could not be analysed (OpenCV {e.func}: {e.err})"
    return f"{photo}: could not be analysed ({type(e).__name__}: {e})"


def run_analyze(args) -> int:
    from . import load_recognizer
    from .annotate import draw_faces
    from .explain import overlay
    from .images import load_image

    inputs = _expand_photos(args.photos)
    n_photos = sum(i.error is None for i in inputs)
    annotate = _Outputs("--annotate", args.annotate, n_photos, "annotated") if args.annotate else None
    explain = _Outputs("--explain", args.explain, n_photos, "explained") if args.explain else None
    rec = load_recognizer(args.model, detector="none" if args.no_detect else args.detector, tta=args.tta)
    results, failed, faceless, with_faces = [], 0, 0, 0
    for item in inputs:
        name = str(item.path)
        try:
            if item.error:
                raise CommandError(item.error)
            image = load_image(item.path)
            faces = rec.analyze(image, explain=bool(args.explain))
            if annotate and faces:
                annotate.write(item, draw_faces(image, faces))
            if explain and faces:
                explain.write(item, draw_faces(overlay(image, faces), faces))
        except Exception as e:  # one bad file never costs the others: reported here, counted in the exit status
            message = _describe_failure(item.path, e)
            print_error(message)
            results.append({"file": name, "status": "error", "error": message})
            failed += 1
            continue
        faceless += not faces
        with_faces += bool(faces)
        results.append({"file": name, "status": "ok" if faces else "no_face", "faces": [f.to_dict() for f in faces]})
        if not args.json:
            _print_table(name, faces, rec.labels)
    if args.json:
        print(json.dumps(results, indent=2))
    if faceless and not args.no_detect:
        print_error(f"no face found in {faceless} image{'s' if faceless > 1 else ''} with the {rec.detector.name} "
                    f"detector. Other detectors (--detector NAME): {detector_help(exclude=(rec.detector.name,))}")
    if failed:
        return EXIT_ERROR
    return EXIT_NO_FACE if not with_faces else EXIT_SOME_NO_FACE if faceless else EXIT_OK


def _print_table(name: str, faces, labels) -> None:
    if not faces:
        print(f"{name}: no face found")
        return
    print(f"{name}: {len(faces)} face{'s' if len(faces) > 1 else ''}")
    short = [label[:8] for label in labels]
    print(f"  {'#':>2} {'box (x,y,w,h)':<20} {'emotion':<9}" + "".join(f"{s:>9}" for s in short))
    for i, f in enumerate(faces, 1):
        box = ",".join(map(str, f.box))
        print(f"  {i:>2} {box:<20} {f.emotion:<9}" + "".join(f"{f.probabilities[label]:>9.1%}" for label in labels))


# ---------------------------------------------------------------- models
def add_models(sub) -> None:
    p = sub.add_parser("models", help="the shipped models: classes, size, test accuracy",
                       description="List the models shipped with ferkit (for --model NAME and load_recognizer(NAME)), "
                                   "with their published PrivateTest figures (no TTA).")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run_models)


def run_models(args) -> int:
    from .recognizer import RETIRED_MODELS, describe_models

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


# ---------------------------------------------------------------- train / export / data
def _add_dataclass_flags(p, cls, skip=()) -> None:
    """One flag per dataclass field: --field-name, typed from the default, explained by the field's comment."""
    from .config import field_help

    docs = field_help(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        flag = "--" + f.name.replace("_", "-")
        # argparse %-formats help strings: a literal % in a comment must be doubled
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else repr(default) if default == "" else default
        text = docs.get(f.name, "").replace("%", "%%")
        text = f"{text} (default: {shown})" if text else f"default: {shown}"
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
        elif isinstance(default, tuple):
            p.add_argument(flag, type=int, nargs="+", default=list(default), metavar="N", help=text)
        else:
            p.add_argument(flag, type=type(default), default=default, metavar=f.name.upper(), help=text)


def add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model (needs the [train] extra)",
                       description="Train on Training, select on PublicTest; PrivateTest is never read.")
    _add_train_flags(p)
    p.set_defaults(run=run_train)


def _add_train_flags(p) -> None:
    from .config import ModelConfig, TrainConfig

    _add_dataclass_flags(p, TrainConfig, skip=("model",))
    _add_dataclass_flags(p, ModelConfig)


def run_train(args) -> int:
    try:
        from .train import train
    except ImportError as e:
        raise CommandError("training needs torch: pip install torch==2.13.0 && pip install -e '.[train]'",
                           EXIT_USAGE) from e
    from .config import ModelConfig, TrainConfig

    mfields = {f.name for f in dataclasses.fields(ModelConfig)}
    model = ModelConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in vars(args).items() if k in mfields})
    tfields = {f.name for f in dataclasses.fields(TrainConfig)} - {"model"}
    cfg = TrainConfig(model=model, **{k: v for k, v in vars(args).items() if k in tfields})
    print(f"ferkit train: {cfg}", flush=True)
    train(cfg, log=lambda s: print(s, flush=True), progress=sys.stderr.isatty())
    return EXIT_OK


def add_export(sub) -> None:
    p = sub.add_parser("export", help="checkpoint -> ONNX, checked against torch")
    p.add_argument("checkpoint", help="a best.pt written by ferkit train")
    p.add_argument("out", help="the .onnx file to write")
    p.add_argument("--name", default=None, help="model name stored in the file (default: the file's stem)")
    p.add_argument("--calibrate", metavar="DATA", default=None,
                   help="fit a softmax temperature on PublicTest of this FER-2013 data (calibrated probabilities); "
                        "a FER+ model uses fer2013new.csv beside it")
    p.set_defaults(run=run_export)


def run_export(args) -> int:
    from .export import export_onnx
    from .train import load_checkpoint

    model, ckpt = load_checkpoint(args.checkpoint)
    extra = {"trained": {k: ckpt.get(k) for k in ("epoch", "val_accuracy", "selected_on", "train_config")},
             "parameters": sum(p.numel() for p in model.parameters())}
    temperature = 1.0
    if args.calibrate:
        from .evaluate import expected_calibration_error, selection_set, softmax
        from .export import fit_temperature
        from .train import predict_logits

        val = selection_set(args.calibrate, tuple(ckpt["labels"]))  # FER+ majority labels for a FER+ model
        logits = predict_logits(model, val.pixels, "cpu")  # one pass: the fit and both ECEs use these
        temperature = fit_temperature(logits, val.labels)
        before, after = softmax(logits), softmax(logits / temperature)
        extra["calibration"] = {"fitted_on": "PublicTest", "temperature": round(temperature, 4),
                                "ece_before": round(expected_calibration_error(val.labels, before), 4),
                                "ece_after": round(expected_calibration_error(val.labels, after), 4)}
        print(f"temperature {temperature:.3f} fitted on PublicTest: ECE {extra['calibration']['ece_before']:.3f} -> "
              f"{extra['calibration']['ece_after']:.3f}; accuracy unchanged")
    history = Path(args.checkpoint).with_name("history.json")
    if history.is_file():  # how the run went: hardware, epochs, wall time, the equivalent command
        extra["training_run"] = training_run_facts(json.loads(history.read_text()))
    meta = export_onnx(model, args.out, name=args.name or Path(args.out).stem, labels=ckpt["labels"], extra=extra,
                       temperature=temperature)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e6:.1f} MB); ONNX Runtime vs torch max abs probability difference {meta['max_abs_diff']:.1e}")
    return EXIT_OK


def add_quantize(sub) -> None:
    p = sub.add_parser("quantize", help="an exported ONNX model -> a faster INT8 model (static quantization)")
    p.add_argument("model", help="the float32 .onnx written by ferkit export")
    p.add_argument("out", help="the INT8 .onnx to write")
    p.add_argument("--data", required=True, help="FER-2013 data; calibration uses faces of its Training split only")
    p.add_argument("--faces", type=int, default=1024, help="how many Training faces calibrate the activation ranges")
    p.add_argument("--name", default=None, help="model name stored in the file (default: the file's stem)")
    p.set_defaults(run=run_quantize)


def run_quantize(args) -> int:
    import numpy as np

    from .data import load_dataset
    from .export import quantize_int8

    train = load_dataset(args.data).split("Training")
    faces = train.pixels[np.random.default_rng(0).permutation(len(train))[:args.faces]]
    quantize_int8(args.model, args.out, faces, name=args.name)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e6:.1f} MB), calibrated on {len(faces)} Training faces")
    return EXIT_OK


def add_ensemble(sub) -> None:
    p = sub.add_parser("ensemble", help="several exported models -> one ONNX file averaging their probabilities",
                       description="Merge models with the same labels into one ONNX graph whose output is the weighted "
                                   "mean of the members' probabilities (and class maps).")
    p.add_argument("members", nargs="+", help="two or more .onnx files (or shipped model names)")
    p.add_argument("--out", required=True, help="the ensemble .onnx to write")
    p.add_argument("--name", default=None, help="model name stored in the file (default: the file's stem)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--weights", type=float, nargs="+", metavar="W", help="one weight per member (default: equal)")
    g.add_argument("--fit-weights", metavar="DATA", help="choose the weights (grid of 0.1 steps) by accuracy on "
                                                        "DATA's PublicTest split; never PrivateTest")
    p.add_argument("--budget-ms", type=float, metavar="MS", help="with --fit-weights: time each member alone (batch 1) "
                   "and try only the mixes whose members add up to at most MS milliseconds per face")
    p.set_defaults(run=run_ensemble)


def run_ensemble(args) -> int:
    from .export import ensemble_onnx
    from .recognizer import resolve_model

    members = [resolve_model(m) for m in args.members]
    weights = args.weights
    if args.budget_ms is not None and not args.fit_weights:
        raise ValueError("--budget-ms limits the weight fit: give --fit-weights DATA too")
    if args.fit_weights:
        from .evaluate import fit_ensemble_weights, latency_ms
        from .recognizer import load_recognizer

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
    return EXIT_OK


def add_offsets(sub) -> None:
    p = sub.add_parser("offsets", help="per-class offsets fitted on PublicTest, written into a model file",
                       description="Fit one offset per class on the log-probabilities of MODEL (NLL on DATA's PublicTest "
                                   "split, never PrivateTest), print the figures of docs/quality.md's round 11 rule and "
                                   "its verdict, and write MODEL with the offsets in its graph to --out.")
    p.add_argument("model", help="shipped model name or .onnx path")
    p.add_argument("--fit", required=True, metavar="DATA", help="FER-2013 data whose PublicTest split the fit uses")
    p.add_argument("--out", required=True, help="the .onnx to write (the model with its offsets)")
    p.add_argument("--name", default=None, help="model name stored in the file (default: the model's own)")
    p.add_argument("--report", metavar="JSON", help="also keep the figures as JSON here")
    p.set_defaults(run=run_offsets)


def run_offsets(args) -> int:
    from .evaluate import judge_offsets, offsets_report
    from .export import add_class_offsets
    from .recognizer import load_recognizer

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
    return EXIT_OK


def add_members(sub) -> None:
    p = sub.add_parser("members", help="an ensemble's members: list them, or write each as its own .onnx",
                       description="List the networks inside an ensemble file (name, weight, stages, size, how it was "
                                   "trained); with --out, write each one back as a model file of its own.")
    p.add_argument("model", help="an ensemble: shipped name (fer2013-accurate) or .onnx path")
    p.add_argument("--out", metavar="DIR", help="write DIR/<member name>.onnx for each member")
    p.set_defaults(run=run_members)


def run_members(args) -> int:
    from .recognizer import read_metadata, resolve_model

    path = resolve_model(args.model)
    members = read_metadata(path).get("ensemble")
    if not members:
        raise ValueError(f"{args.model}: not an ensemble (one network); `ferkit models` describes it")
    for m in members:
        cfg = m.get("config")
        stages = "x".join(map(str, cfg["channels"])) if cfg else "not recorded"
        trained, run = m.get("trained") or {}, (m.get("training_run") or {}).get("command")
        chosen = (f", chosen at epoch {trained['epoch']} (PublicTest {trained['val_accuracy']:.2%})"
                  if "val_accuracy" in trained else "")
        print(f"{m['name']:<14} weight {m['weight']:<5} channels {stages:<16} {m.get('parameters', 'n/a')} weights"
              f"{', INT8' if m.get('quantized') else ''}{chosen}" + (f"\n    {run}" if run else ""))
    if args.out:
        from .export import split_ensemble

        for out in split_ensemble(path, args.out):
            print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return EXIT_OK


def training_run_facts(history: dict) -> dict:
    """From a run's history.json: the `ferkit train` command equivalent to its config, hardware and wall time."""
    from .config import TrainConfig

    cfg, default = history["config"], dataclasses.asdict(TrainConfig())
    flags = [f"--{k.replace('_', '-')} {v}" for k, v in cfg.items() if k not in ("model", "resume") and v != default.get(k)]
    for k, v in cfg["model"].items():
        if k == "num_classes":  # set by the label set, not a choice
            continue
        if (list(v) if isinstance(v, (list, tuple)) else v) != (list(default["model"][k]) if isinstance(v, (list, tuple)) else default["model"][k]):
            flags.append(f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, (list, tuple)) else v}")
    runs = history["history"]
    return {"command": " ".join(["ferkit train", *flags]), "hardware": f"{history.get('machine')} ({history.get('device')}, "
            f"{history.get('threads')} threads, torch {history.get('torch')})", "epochs_run": len(runs),
            "wall_minutes": round(runs[-1]["wall_s"] / 60, 1) if runs else None,
            "resumed_from": cfg.get("resume") or None}


def add_data(sub) -> None:
    p = sub.add_parser("data", help="read a dataset and print its counts per split and class")
    p.add_argument("path", help="fer2013.csv(.gz), an .npz(.xz) or an image folder")
    p.add_argument("--ferplus", help="fer2013new.csv: also show FER+ majority counts")
    p.add_argument("--chart", metavar="PNG", help="write a class-distribution bar chart")
    p.set_defaults(run=run_data)


def run_data(args) -> int:
    from .data import load_dataset, read_ferplus_votes, with_ferplus

    ds = load_dataset(args.path)
    print(ds.summary())
    if args.ferplus:
        fp = with_ferplus(ds, read_ferplus_votes(args.ferplus, len(ds)), "majority")
        print()
        print(fp.summary())
    if args.chart:
        from .evaluate import plot_class_distribution

        plot_class_distribution(ds, args.chart)
        print(f"wrote {args.chart}")
    return EXIT_OK


# ---------------------------------------------------------------- evaluate
def add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="accuracy, F1, confusion matrix on a split; writes the model card",
                       description="Evaluate a model through the same ONNX inference path users get.")
    p.add_argument("--model", default=None, help="shipped model name or .onnx path (default: fer2013)")
    p.add_argument("--data", default=None, help="FER-2013 data (default: the fastest FER-2013 file in $FERKIT_DATA or ../shared/data/fer2013)")
    p.add_argument("--ferplus", default=None, help="fer2013new.csv for the FER+ set (default: beside --data)")
    p.add_argument("--split", default="PrivateTest", choices=["PrivateTest", "PublicTest", "Training"],
                   help="the split to score (default: PrivateTest, the held-out report split; models are chosen on PublicTest)")
    p.add_argument("--tta", default="all", choices=["none", "flip", "crops", "all"], help="test-time augmentation (default: all three)")
    p.add_argument("--robustness", action="store_true", help="also measure accuracy under corruptions")
    p.add_argument("--out", default="docs/eval", help="folder for the JSON report and PNG figures")
    p.add_argument("--model-card", default=None, metavar="MD", help="write the model card here (and weights/<name>.metrics.json)")
    p.add_argument("--from-report", default=None, metavar="JSON",
                   help="render --model-card from a report an earlier run wrote into --out, scoring nothing again "
                        "(after a change to the card's wording or to the model file's metadata)")
    p.set_defaults(run=run_evaluate)


def run_evaluate(args) -> int:
    from . import EMOTIONS, load_recognizer
    from .data import fer2013_file, load_dataset, read_ferplus_votes
    from .evaluate import (evaluate, fer2013_set, ferplus_set, machine_description, plot_confusion,
                           plot_robustness, robustness)

    out = Path(args.out)
    if args.from_report:
        return write_model_card(load_recognizer(args.model, detector="none"), read_report(args.from_report), out,
                                args.model_card)
    data = Path(args.data) if args.data else fer2013_file()
    ferplus = Path(args.ferplus) if args.ferplus else data.parent / "fer2013new.csv"
    out.mkdir(parents=True, exist_ok=True)
    ds = load_dataset(data)
    print(ds.summary())
    modes = ["none", "flip", "crops"] if args.tta == "all" else [args.tta]
    if args.model_card and "none" not in modes:
        modes.insert(0, "none")  # the card's per-class table is without TTA
    command = "ferkit " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("ferkit") else "ferkit evaluate ..."
    results: dict = {"command": command, "machine": machine_description()}
    rec = load_recognizer(args.model, detector="none")
    votes = read_ferplus_votes(ferplus, len(ds)) if ferplus.is_file() else None
    part = {"PrivateTest": "private", "PublicTest": "public", "Training": "training"}[args.split]
    # The model's own label set gives the headline set (and PublicTest beside it for a card); a FER-2013 model
    # is also scored on the FER+ majority labels, a FER+ model on FER+ labels only.
    native = "fer2013" if tuple(rec.labels) == tuple(EMOTIONS) else "ferplus"
    if native == "ferplus" and votes is None:
        raise FileNotFoundError(f"{ferplus}: the FER+ votes are needed to evaluate a model with classes {', '.join(rec.labels)}")

    def labelled(kind: str, split: str):
        return fer2013_set(ds, split) if kind == "fer2013" else ferplus_set(ds, votes, split, rec.labels)

    sets = {f"{native}_{part}": labelled(native, args.split)}
    if args.model_card and args.split != "PublicTest":
        sets[f"{native}_public"] = labelled(native, "PublicTest")
    if native == "fer2013" and votes is not None:
        sets[f"ferplus_{part}"] = labelled("ferplus", args.split)
    results["main"] = next(iter(sets))
    results["sets"] = {}
    recs = {mode: load_recognizer(args.model, detector="none", tta=mode) for mode in modes}  # one session per mode
    for key, s in sets.items():
        results["sets"][key] = {}
        for mode in (modes if not key.endswith("_public") or args.split == "PublicTest" else ["none"]):
            r = evaluate(recs[mode], s)
            results["sets"][key][mode] = r
            print(f"{s.name:<60} n={r['n']:<5} TTA {mode:<6} accuracy {r['accuracy']:.4f}  macro F1 {r['macro']['f1']:.4f}  ECE {r['ece']:.3f}")
        plot_confusion(results["sets"][key][next(iter(results["sets"][key]))], out / f"confusion_{rec.name}_{key}.png")
    if args.robustness:
        results["robustness"] = robustness(rec, sets[results["main"]])
        plot_robustness(results["robustness"], out / f"robustness_{rec.name}.png")
        for name, v in results["robustness"]["corruptions"].items():
            print(f"robustness {name:<13} " + "  ".join(f"{lvl}: {a:.3f}" for lvl, a in zip(v["levels"], v["accuracy"])))
    (out / f"report_{rec.name}.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"wrote {out / f'report_{rec.name}.json'}")
    return write_model_card(rec, results, out, args.model_card) if args.model_card else EXIT_OK


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


def write_model_card(rec, results: dict, out: Path, card: str | None) -> int:
    """The model card and weights/NAME.metrics.json from a report; its figures are the PNGs the same run wrote
    into `out` (names derived from the report, so a card rendered again from a saved report shows the same)."""
    from .evaluate import render_model_card, write_metrics

    if not card:
        raise ValueError("--from-report renders a model card: give --model-card MD")
    scored = {r["model"] for per_mode in results["sets"].values() for r in per_mode.values()}
    if scored != {rec.name}:
        raise ValueError(f"the report scores {', '.join(sorted(scored))}, not the model {rec.name!r} given by --model")
    figures = {f"Confusion matrix: {next(iter(per_mode.values()))['set']}": out / f"confusion_{rec.name}_{key}.png"
               for key, per_mode in results["sets"].items()}
    if (out / f"curves_{rec.name}.png").is_file():  # copied from the training run's folder (the README's steps)
        figures["Training curves (Training augmented, PublicTest)"] = out / f"curves_{rec.name}.png"
    if "robustness" in results:
        figures["Robustness"] = out / f"robustness_{rec.name}.png"
    card = Path(card)
    card.parent.mkdir(parents=True, exist_ok=True)
    card.write_text(render_model_card(rec, results, {t: os.path.relpath(p, card.parent) for t, p in figures.items()}))
    write_metrics(rec, results, rec.model_path.with_suffix(".metrics.json"))
    print(f"wrote {card} and {rec.model_path.with_suffix('.metrics.json')}")
    return EXIT_OK


# ---------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="ferkit", description="Facial emotion recognition.")
    parser.add_argument("--version", action="version", version=f"ferkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_analyze(sub)
    add_models(sub)
    add_data(sub)
    add_train(sub)
    add_export(sub)
    add_quantize(sub)
    add_ensemble(sub)
    add_members(sub)
    add_offsets(sub)
    add_evaluate(sub)
    # Subcommands of other areas: each module's add_parser(sub) registers itself (keep one line each).
    __import__("ferkit.server.cli", fromlist=["cli"]).add_parser(sub)  # ferkit serve (the web app)
    __import__("ferkit.video", fromlist=["video"]).add_parser(sub)  # ferkit video (emotion timelines of video files)
    __import__("ferkit.live", fromlist=["live"]).add_parser(sub)  # ferkit live (desktop real time)
    __import__("ferkit.music.cli", fromlist=["cli"]).add_parser(sub)  # ferkit recommend, ferkit music (feedback)
    return parser


def _show_warning(show):
    """ferkit's own warnings (a retired model name, say) read as the CLI's messages, without a source line; other
    libraries' warnings keep their usual form, so none is passed off as ferkit's."""
    package = Path(__file__).parent

    def show_warning(message, category, filename, lineno, file=None, line=None):
        if Path(filename).resolve().is_relative_to(package.resolve()):
            print_error(f"{category.__name__}: {message}")
        else:
            show(message, category, filename, lineno, file, line)
    return show_warning


def _silence_stdout() -> None:
    """After the reader of stdout went away: point stdout at /dev/null, so the flush at exit raises nothing more."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor (captured in-process)
        pass


def main(argv: list[str] | None = None) -> None:
    """Run a command; every error ends here as `ferkit: message` on stderr and an exit status (EXIT_*)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():  # restores the warning hooks afterwards, for callers of main() in-process
            warnings.showwarning = _show_warning(warnings.showwarning)
            code = args.run(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
    except BrokenPipeError:
        _silence_stdout()
        code = EXIT_BROKEN_PIPE
    except CommandError as e:
        print_error(str(e))
        code = e.code
    except (ValueError, OSError) as e:  # the library's typed errors (DataError, UnreadableImageError ...), files
        print_error(str(e))
        code = EXIT_ERROR
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    sys.exit(code)
