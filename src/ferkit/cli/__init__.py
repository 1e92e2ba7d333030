"""The `ferkit` command. Flags map one-to-one onto config fields; library errors become messages and exit codes.

Each command's parser and runner is a module here, registering itself with add_parser(sub): analyze, models, data,
training (train, export, quantize, evaluate), video, live, batch, adapt; serve (server/cli.py) and recommend and
music (music/cli.py) still sit beside their code. build_parser imports each plainly (COMMANDS, an explicit list: a
new command is one line there), and they import the library, never ferkit.cli itself: the arrows point one way
(tests/test_imports.py). _args.py declares the arguments several commands share (--model, --detector, --data,
--features, one flag per config field), so each reads the same everywhere.

One error path for every command (`python -m ferkit.batch` included): the library raises typed errors (ValueError
subclasses such as DataError, UnreadableImageError and VideoError, OSError); a command raises CommandError for trouble
of its own, with an exit code (EXIT_*; both in the leaf module errors.py, re-exported here); main() prints each as
`ferkit: message` on stderr (one such line per line of a CommandError's message) and exits with its code; Ctrl+C exits
130 and a reader of stdout that went away 141. print_error() is only for trouble that does not stop a command (one bad
file among several) and for the closing note of one that ended normally; no command prints `ferkit: ...` or picks an
exit status any other way.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path


from .errors import (  # noqa: F401  (re-exported: `from ferkit.cli import CommandError` keeps working)
    EXIT_BROKEN_PIPE, EXIT_CLUSTER, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_NO_FACE, EXIT_OK, EXIT_OUTPUT, EXIT_SOME_NO_FACE,
    EXIT_USAGE,
    CommandError, print_error,
)


# ---------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    from ..music import cli as music
    from ..server import cli as serve
    from ..version import __version__
    from . import adapt, analyze, batch, data, label, live, models, report, training, video

    commands = [
        analyze,   # ferkit analyze
        models,    # ferkit models
        data,      # ferkit data
        training,  # ferkit train, export, quantize, evaluate
        serve,     # ferkit serve (the web app)
        video,     # ferkit video (emotion timelines of video files)
        live,      # ferkit live (desktop real time)
        music,     # ferkit recommend, ferkit music (feedback)
        batch,     # ferkit batch (also python -m ferkit.batch)
        adapt,     # ferkit adapt (a head for your own photos)
        report,    # ferkit report (an HTML report of a video's or a batch's results)
        label,     # ferkit label (label faces in the browser, for ferkit adapt)
    ]
    parser = argparse.ArgumentParser(prog="ferkit", description="Facial emotion recognition.")
    parser.add_argument("--version", action="version", version=f"ferkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in commands:
        command.add_parser(sub)
    return parser


def _show_warning(show):
    """ferkit's own warnings (a retired model name, say) read as the CLI's messages, without a source line; other
    libraries' warnings keep their usual form, so none is passed off as ferkit's."""
    package = Path(__file__).parents[1]  # ferkit/, not ferkit/cli/

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
        for line in str(e).splitlines() or [""]:
            print_error(line)
        code = e.code
    except (ValueError, OSError) as e:  # the library's typed errors (DataError, UnreadableImageError ...), files
        print_error(str(e))
        code = EXIT_ERROR
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    sys.exit(code)
