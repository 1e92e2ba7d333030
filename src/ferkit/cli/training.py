"""The training workflow a user retrains with on their own data: `ferkit train`, `export`, `quantize`, `evaluate`.

Needs the [train] extra (torch, onnx, matplotlib, scikit-learn); docs/training.md walks through it.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from .errors import EXIT_OK, EXIT_USAGE, CommandError
from ._args import add_data, add_dataclass_flags, add_model


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model (needs the [train] extra)",
                       description="Train on Training, select on PublicTest; PrivateTest is never read.")
    add_train_flags(p)
    p.set_defaults(run=run_train)

    p = sub.add_parser("export", help="checkpoint -> ONNX, checked against torch")
    p.add_argument("checkpoint", help="a best.pt written by ferkit train")
    p.add_argument("out", help="the .onnx file to write")
    p.add_argument("--name", default=None, help="model name stored in the file (default: the file's stem)")
    p.add_argument("--calibrate", metavar="DATA", default=None,
                   help="fit a softmax temperature on PublicTest of this FER-2013 data (calibrated probabilities); "
                        "a FER+ model uses fer2013new.csv beside it")
    p.set_defaults(run=run_export)

    p = sub.add_parser("quantize", help="an exported ONNX model -> a faster INT8 model (static quantization)")
    p.add_argument("model", help="the float32 .onnx written by ferkit export")
    p.add_argument("out", help="the INT8 .onnx to write")
    add_data(p, help="FER-2013 (file or folder; default: $FERKIT_DATA); calibration uses faces of its Training split only")
    p.add_argument("--faces", type=int, default=1024, help="how many Training faces calibrate the activation ranges")
    p.add_argument("--name", default=None, help="model name stored in the file (default: the file's stem)")
    p.set_defaults(run=run_quantize)

    p = sub.add_parser("evaluate", help="accuracy, F1, confusion matrix on a split; writes the model card",
                       description="Evaluate a model through the same ONNX inference path users get. Writes "
                                   "report_NAME.json and PNG figures into --out, and with --model-card the card and "
                                   "NAME.metrics.json (copy it beside a model file to have `ferkit models` and the "
                                   "server show its figures).")
    add_model(p, help="shipped model name or .onnx path (default: ferplus)")
    add_data(p)
    p.add_argument("--ferplus", default=None, help="fer2013new.csv for the FER+ set (default: beside --data)")
    p.add_argument("--split", default="PrivateTest", choices=["PrivateTest", "PublicTest", "Training"],
                   help="the split to score (default: PrivateTest, the held-out report split; models are chosen on PublicTest)")
    p.add_argument("--tta", default="all", choices=["none", "flip", "crops", "all"], help="test-time augmentation (default: all three)")
    p.add_argument("--robustness", action="store_true", help="also measure accuracy under corruptions")
    p.add_argument("--robustness-labels", default="own", choices=["own", "people"],
                   help="the corruptions on the model's own label set (default) or on agreement with people (the "
                        "FER+ majority, faces whose majority is one of FER-2013's seven classes: the set the default "
                        "model is chosen on, docs/quality.md)")
    p.add_argument("--out", default=".", help="folder for the JSON report, PNG figures and metrics file (default: the "
                                              "current folder)")
    p.add_argument("--model-card", default=None, metavar="MD", help="write the model card here")
    p.add_argument("--from-report", default=None, metavar="JSON",
                   help="render --model-card from a report an earlier run wrote into --out, scoring nothing again "
                        "(after a change to the card's wording or to the model file's metadata)")
    p.set_defaults(run=run_evaluate)


def add_train_flags(p) -> None:
    from ..config import ModelConfig, TrainConfig

    add_dataclass_flags(p, TrainConfig, skip=("model",))
    add_dataclass_flags(p, ModelConfig)


def run_train(args) -> int:
    try:
        from ..train import train
    except ImportError as e:
        raise CommandError("training needs torch: pip install torch==2.13.0 && pip install -e '.[train]'",
                           EXIT_USAGE) from e
    from ..config import ModelConfig, TrainConfig

    mfields = {f.name for f in dataclasses.fields(ModelConfig)}
    model = ModelConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in vars(args).items() if k in mfields})
    tfields = {f.name for f in dataclasses.fields(TrainConfig)} - {"model"}
    cfg = TrainConfig(model=model, **{k: v for k, v in vars(args).items() if k in tfields})
    print(f"ferkit train: {cfg}", flush=True)
    train(cfg, log=lambda s: print(s, flush=True), progress=sys.stderr.isatty())
    return EXIT_OK


def run_export(args) -> int:
    from ..export import export_onnx
    from ..train import load_checkpoint, training_run_facts

    model, ckpt = load_checkpoint(args.checkpoint)
    extra = {"trained": {k: ckpt.get(k) for k in ("epoch", "val_accuracy", "selected_on", "train_config")},
             "parameters": sum(p.numel() for p in model.parameters())}
    temperature = 1.0
    if args.calibrate:
        from ..config import data_path
        from ..evaluate import selection_set
        from ..export import fit_temperature
        from ..metrics import expected_calibration_error, softmax
        from ..train import predict_logits

        val = selection_set(data_path(args.calibrate), tuple(ckpt["labels"]))  # FER+ majority labels for a FER+ model
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


def run_quantize(args) -> int:
    import numpy as np

    from ..config import data_path
    from ..data import load_dataset
    from ..export import quantize_int8

    train = load_dataset(data_path(args.data)).split("Training")
    faces = train.pixels[np.random.default_rng(0).permutation(len(train))[:args.faces]]
    quantize_int8(args.model, args.out, faces, name=args.name)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e6:.1f} MB), calibrated on {len(faces)} Training faces")
    return EXIT_OK


def run_evaluate(args) -> int:
    from .. import load_recognizer
    from ..config import data_path
    from ..evaluate import evaluate_model
    from ..model_card import read_report, write_model_card

    if args.from_report and not args.model_card:
        raise CommandError("--from-report renders a model card: give --model-card MD", EXIT_USAGE)
    if args.from_report:
        results = read_report(args.from_report)
    else:
        command = "ferkit " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("ferkit") else "ferkit evaluate ..."
        results = evaluate_model(args.model, data_path(args.data), args.out, ferplus=args.ferplus, split=args.split,
                                 tta=args.tta, with_robustness=args.robustness, public=bool(args.model_card),
                                 robustness_on=args.robustness_labels,
                                 command=command, log=print)
    if args.model_card:
        written = write_model_card(load_recognizer(args.model, detector="none"), results, args.out, args.model_card)
        print("wrote " + " and ".join(map(str, written)))
    return EXIT_OK
