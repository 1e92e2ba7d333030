"""`ferkit batch INPUT... --out RESULTS` (also `python -m ferkit.batch`, which runs the same through ferkit.cli.main).

Exit codes: 0 done; 1 done, with error rows (inputs that could not be analysed); 2 bad usage; 130 interrupted
(finished chunks kept: rerun the same command to resume). Errors stop the command through ferkit.cli's one path.
"""
from __future__ import annotations

import argparse
import sys

from ..cli.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, CommandError
from ..cli._args import add_adapter, add_detect_side, add_detector, add_features, add_model
from .inputs import BATCH_SIZE, DEFAULT_FPS


EPILOG = ("Exit codes: 0 done; 1 done, with error rows (inputs that could not be analysed; the rest was); 2 bad usage; "
          "130 interrupted (finished work is kept: rerun the same command to resume). The columns: docs/batch.md.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """`ferkit batch`'s arguments on `p` (its description and epilog too, where `p` has none)."""
    p.description = p.description or "Analyse many images and videos into one Parquet/CSV/JSON Lines file, resumably."
    p.epilog = p.epilog or EPILOG
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image or video files, folders (walked recursively), .txt/.csv manifests of paths")
    p.add_argument("--out", required=True, metavar="RESULTS",
                   help="results file: .parquet, .csv or .jsonl (one row per face; rerun to resume)")
    p.add_argument("--glob", metavar="PATTERN", help="in folders, only files whose name or relative path matches")
    p.add_argument("--column", metavar="NAME", help='the paths\' column in .csv manifests (default: "path", else the first)')
    p.add_argument("--fps", type=float, default=DEFAULT_FPS, help=f"video frames analysed per second (default: {DEFAULT_FPS:g})")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: worker processes on this machine (default); ray: a Ray Data pipeline")
    p.add_argument("--workers", type=int, metavar="N",
                   help="worker processes (local) or actors (ray) (default: the CPU cores / the cluster's CPUs)")
    p.add_argument("--address", metavar="ADDR", help="Ray cluster to use (default: RAY_ADDRESS, else a Ray running here, else one started for the run)")
    add_model(p)
    add_detector(p)
    add_detect_side(p)
    add_adapter(p)
    add_features(p)
    p.add_argument("--provider", default=None,
                   help="ONNX Runtime execution provider for each worker: cpu, cuda, tensorrt or a provider name")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE, metavar="N",
                   help=f"images per chunk sent to a worker (default: {BATCH_SIZE})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main_from_args(args: argparse.Namespace) -> int:
    from ..video import quiet_opencv
    from . import api
    from .ray_engine import INSTALL

    quiet_opencv()
    try:
        summary = api.run(args.inputs, args.out, engine=args.engine, workers=args.workers, address=args.address,
                          model=args.model, detector=args.detector, provider=args.provider, fps=args.fps,
                          glob=args.glob, column=args.column, batch_size=args.batch_size,
                          progress=not args.no_progress, detect_side=args.detect_side,
                          adapter=args.adapter, features=args.features)
    except KeyboardInterrupt:
        raise CommandError("interrupted; finished work is kept: rerun the same command to resume",
                           EXIT_INTERRUPTED) from None
    except ImportError as e:
        if str(e) != INSTALL:
            raise
        raise CommandError(str(e), EXIT_USAGE) from e
    except (ValueError, FileNotFoundError) as e:  # bad inputs or settings: 2, as 1 means "done, with error rows"
        raise CommandError(str(e), EXIT_USAGE) from e
    print(summary.format(), file=sys.stderr)
    return EXIT_ERROR if summary.errors else EXIT_OK


def add_parser(sub) -> None:
    """Registers `ferkit batch` on the CLI's subparsers."""
    p = sub.add_parser("batch", help="analyse folders, manifests and videos into a results file")
    add_arguments(p)
    p.set_defaults(run=main_from_args)
