"""`ferkit adapt DATA --out HEAD`: fit a small head on your own labelled photos, measured first by cross-validation."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .errors import EXIT_ERROR, EXIT_OK, EXIT_USAGE, CommandError, print_error
from ._args import add_dataclass_flags, add_detect_side, add_detector, add_features, add_model

EPILOG = """\
DATA is a folder of LABEL/IMAGE (any depth below the label folder) or a CSV with a header holding path and label
columns, and optionally person (or group): photos of one person then never sit in both the training and the
test part of a fold. Labels are the model's own or new ones: 2 or more classes, at least --min-per-class images each.

Labels are compared without case ("Happy" and "happy" are one class, with a warning). With a box column ("x y w h",
pixels) a photo with several faces gives the face at that box.

Before writing anything, k-fold cross-validation compares the base model with adapted heads on growing feature
groups (the network's outputs; + blendshapes and head pose; + the face mesh's embedding), each with its L2 penalty
chosen inside the training folds alone, and keeps the best (accuracy, macro-F1, per fold, per person). Where the
head's mean gain in accuracy is not above the spread of the per-fold gains, nothing is written (exit status 1)
unless --force; with few persons the verdict says why and shows each person's figures. The head is a JSON file
(8 kB on the network's outputs, 50 kB and more with the embedding): use it with --adapter HEAD on analyze, batch,
video, live and serve, or load_recognizer(adapter=HEAD).
"""


def add_parser(sub) -> None:
    from ..adapt import AdaptConfig

    p = sub.add_parser("adapt", help="fit a small head on your own labelled photos (--adapter elsewhere)",
                       description="Adapt ferkit to your own labelled photos: the recognizer runs once over them, a "
                                   "regularised logistic-regression head is fitted on its outputs, and k-fold "
                                   "cross-validation says how much it helps.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", metavar="DATA", help="a folder of LABEL/IMAGE, or a CSV of path,label[,person]")
    p.add_argument("--out", required=True, metavar="HEAD", help="the head file to write (.json)")
    add_model(p, help="the base model, a shipped name or an .onnx path (default: ferplus); the head loads onto no other")
    add_detector(p)
    add_detect_side(p)
    p.add_argument("--no-detect", action="store_true", help="treat each image as one pre-cropped face")
    add_features(p, default=("blendshapes", "pose", "embedding"),
                 help="face features the heads compared may read beside the network's outputs (default: "
                      "blendshapes,pose,embedding: the 52 blendshapes, the head pose and the face mesh's 512-number "
                      "embedding); --features '' for the network's outputs alone (faster)")
    add_dataclass_flags(p, AdaptConfig)
    p.add_argument("--force", action="store_true", help="write the head even where it does not beat the base model "
                                                        "beyond the folds' spread")
    p.add_argument("--report", metavar="DIR", help="also write DIR/adapt-report.md and DIR/adapt-confusion.png")
    p.add_argument("--json", action="store_true", help="print the cross-validation figures as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    import dataclasses

    from .. import load_recognizer
    from ..adapt import AdaptConfig, adapt, format_report, read_labelled, write_report
    from ..detect import check_detect_side

    out = Path(args.out)
    if out.suffix.lower() != ".json":
        raise CommandError(f"--out {args.out}: a head file ends in .json", EXIT_USAGE)
    config = AdaptConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(AdaptConfig)})
    detector = "none" if args.no_detect else args.detector
    try:
        check_detect_side(detector, args.detect_side)
    except ValueError as e:
        raise CommandError(f"--detect-side {args.detect_side}: {e}", EXIT_USAGE) from None
    data = read_labelled(args.data)
    rec = load_recognizer(args.model, detector=detector, detect_side=args.detect_side, features=args.features)
    result = adapt(rec, data, config, name=out.stem)
    for name, why in result.skipped:
        print_error(f"skipped {name}: {why}")
    print(json.dumps(result.report, indent=1) if args.json else format_report(result.report))
    if args.report:
        try:
            written = write_report(result, args.report)
        except ImportError as e:  # the confusion-matrix figure needs matplotlib
            raise CommandError(f"--report needs the [plot] extra: pip install 'ferkit[plot]' ({e})", EXIT_USAGE) from e
        for path in written:
            print_error(f"wrote {path}")
    if not result.helps and not args.force:
        raise CommandError(f"the adapter does not beat the base model beyond the folds' spread: {out} not written "
                           f"(--force writes it anyway)", EXIT_ERROR)
    out.parent.mkdir(parents=True, exist_ok=True)
    result.head.save(out)
    print_error(f"wrote {out} ({out.stat().st_size / 1000:.1f} kB): use it with --adapter {out}")
    return EXIT_OK
