"""`ferkit batch INPUT... --out RESULTS` (also `python -m ferkit.batch`, which runs the same through ferkit.cli.main);
ferkit.batch does the work.

Exit codes (ferkit.cli's EXIT_*): 0 done; 1 done, with error rows (inputs that could not be analysed), or a bad
--adapter head file (as on every command); 2 bad usage (settings that differ from those OUT was made with included); 5 the Ray cluster could not be reached, was lost,
or cannot see the inputs; 6 the output cannot be written (missing or read-only folder, disk full) or another run
holds it; 130 interrupted (finished chunks kept: rerun the same command to resume). Errors stop the command through
ferkit.cli's one path.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile

from ..batch.errors import ClusterError, OutputError
from ..batch.inputs import BATCH_SIZE, DEFAULT_FPS
from ._args import add_adapter, add_detect_side, add_detector, add_features, add_model
from .errors import EXIT_CLUSTER, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_OUTPUT, EXIT_USAGE, CommandError


EPILOG = ("Exit codes: 0 done; 1 done, with error rows (inputs that could not be analysed; the rest was), or a bad "
          "--adapter file; 2 bad usage "
          "(or settings other than those RESULTS was made with); 5 the Ray cluster could not be reached, was lost, or "
          "cannot see the inputs; 6 RESULTS cannot be written (missing or read-only folder, disk full, another run "
          "writing it); 130 interrupted (finished work is kept: rerun the same command to resume). "
          "The columns: docs/batch.md.")


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
                   help="local: worker processes on this machine (default); ray: a pool of Ray actors on a cluster")
    p.add_argument("--workers", type=int, metavar="N",
                   help="worker processes (local) or actors (ray) (default: the CPU cores / the cluster's CPUs)")
    p.add_argument("--address", metavar="ADDR", help="Ray cluster to use (default: RAY_ADDRESS, else a Ray running here, else one started for the run)")
    p.add_argument("--node-timeout", type=float, default=None, metavar="S",
                   help="ray: with nodes lost and no worker able to run for S seconds, stop (exit 5; rerun to resume) "
                        "(default: 120)")
    add_model(p)
    add_detector(p)
    add_detect_side(p)
    add_adapter(p)
    add_features(p)
    p.add_argument("--provider", default=None,
                   help="ONNX Runtime execution provider for each worker: cpu, cuda, tensorrt or a provider name")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE, metavar="N",
                   help=f"images per chunk sent to a worker (default: {BATCH_SIZE})")
    p.add_argument("--overwrite", action="store_true",
                   help="analyse everything again, replacing RESULTS and any unfinished run's parts")
    p.add_argument("--retry-errors", action="store_true",
                   help="analyse the inputs with error rows in RESULTS again (the other rows are kept)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main_from_args(args: argparse.Namespace) -> int:
    from ..adapt import AdapterError
    from ..batch import api
    from ..batch.ray_engine import INSTALL
    from ..frames import quiet_opencv

    quiet_opencv()
    if args.adapter is not None:
        _check_adapter(args.model, args.adapter, AdapterError)
    log = None
    try:
        with _native_stderr_to_log(args.engine == "ray") as log:
            try:
                summary = api.run(args.inputs, args.out, engine=args.engine, workers=args.workers,
                                  address=args.address, model=args.model, detector=args.detector,
                                  provider=args.provider, fps=args.fps, glob=args.glob, column=args.column,
                                  batch_size=args.batch_size, progress=not args.no_progress,
                                  detect_side=args.detect_side, adapter=args.adapter, features=args.features,
                                  mesh=args.mesh_column, overwrite=args.overwrite, retry_errors=args.retry_errors,
                                  node_timeout=args.node_timeout)
            except ClusterError:
                raise  # Ray's own messages may say more than ours: the log is kept, and named
            except BaseException:
                log.keep = False
                raise
            log.keep = False  # it went well: nothing to keep
    except KeyboardInterrupt:
        raise CommandError("interrupted; finished work is kept: rerun the same command to resume",
                           EXIT_INTERRUPTED) from None
    except ImportError as e:
        if str(e) != INSTALL:
            raise
        raise CommandError(str(e), EXIT_USAGE) from e
    except ClusterError as e:
        raise CommandError(str(e) + (f"\nRay's own messages: {log}" if log else ""), EXIT_CLUSTER) from e
    except OutputError as e:
        raise CommandError(str(e), EXIT_OUTPUT) from e
    except (ValueError, FileNotFoundError) as e:  # bad inputs or settings: 2, as 1 means "done, with error rows"
        raise CommandError(str(e), EXIT_USAGE) from e
    print(summary.format(), file=sys.stderr)
    return EXIT_ERROR if summary.errors else EXIT_OK


def _check_adapter(model, adapter, adapter_error) -> None:
    """A head file that is missing, malformed or for another model is a bad input file: exit 1, as on every command
    (ferkit.cli.errors.EXIT_ERROR), not 2 as batch's other bad settings."""
    from ..adapt import Head
    from ..recognizer import resolve_model

    try:
        path = resolve_model(model)
    except (ValueError, FileNotFoundError) as e:
        raise CommandError(str(e), EXIT_USAGE) from e
    try:
        Head.load(adapter).check_base(path, adapter)
    except (adapter_error, OSError) as e:
        raise CommandError(str(e), EXIT_ERROR) from e


@contextlib.contextmanager
def _native_stderr_to_log(enabled: bool):
    """With Ray: file descriptor 2 (where Ray's C++ core and its raylet print) goes to a log file for the run, and
    sys.stderr (the progress bar, ferkit's messages) to the terminal's stderr as before -> the log's holder (falsy
    when not enabled). The log is kept (and its path said) only when the run failed: the caller sets `keep` False
    once it went well, or it printed nothing there; it is removed otherwise."""
    if not enabled:
        yield _LogPath(None)
        return
    fd, path = tempfile.mkstemp(prefix="ferkit-batch-ray-", suffix=".log")
    sys.stderr.flush()
    terminal = os.dup(2)
    python_stderr = sys.stderr
    os.dup2(fd, 2)
    os.close(fd)
    sys.stderr = open(terminal, "w", encoding=getattr(python_stderr, "encoding", None) or "utf-8",
                      errors="backslashreplace", buffering=1, closefd=False)
    holder = _LogPath(path)
    # Ray's Python log lines too ("Token authentication is enabled ..."): ray.init(configure_logging=False) leaves
    # its loggers without handlers, so they reach logging's last resort, which writes to sys.stderr, the bar's
    ray_log = logging.getLogger("ray")
    handler, handlers, last_resort = logging.FileHandler(path, encoding="utf-8"), ray_log.handlers[:], logging.lastResort
    ray_log.handlers, logging.lastResort = [handler], handler
    try:
        yield holder
    finally:
        ray_log.handlers, logging.lastResort = handlers, last_resort
        handler.close()
        sys.stderr.flush()
        os.dup2(terminal, 2)
        os.close(terminal)
        sys.stderr = python_stderr
        if not holder.keep or os.path.getsize(path) == 0:
            os.unlink(path)
            holder.path = None


class _LogPath:
    """The log's path, for the messages (falsy once the log is removed, or when there is none)."""

    def __init__(self, path):
        self.path = path
        self.keep = True

    def __bool__(self):
        return self.path is not None

    def __str__(self):
        return str(self.path)


def add_parser(sub) -> None:
    """Registers `ferkit batch` on the CLI's subparsers."""
    p = sub.add_parser("batch", help="analyse folders, manifests and videos into a results file")
    add_arguments(p)
    p.set_defaults(run=main_from_args)
