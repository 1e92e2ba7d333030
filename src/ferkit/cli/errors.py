"""The CLI's errors and exit codes: a leaf module (it imports nothing of ferkit), so every command's module imports
them from here while ferkit.cli imports those modules to register their subcommands; the arrows point one way."""
from __future__ import annotations

import sys

EXIT_OK = 0             # success
EXIT_ERROR = 1          # an input could not be processed (with several inputs, the others still were); a bad
                        # --adapter head file (missing, malformed, for another model) on every command
EXIT_USAGE = 2          # bad usage: an unknown option, a missing argument, options that contradict each other
EXIT_NO_FACE = 3        # analyze, recommend: no face in any image; video: none in any frame
EXIT_SOME_NO_FACE = 4   # analyze: faces in some images, none in others
EXIT_CLUSTER = 5        # batch: the Ray cluster could not be reached, was lost mid-run, or cannot see the inputs
EXIT_OUTPUT = 6         # batch: the output cannot be written (read-only, missing folder, disk full) or is in use
EXIT_INTERRUPTED = 130  # Ctrl+C
EXIT_BROKEN_PIPE = 141  # the reader of stdout went away (`ferkit analyze ... | head`): 128 + SIGPIPE, as for C tools


class CommandError(Exception):
    """Stops a command: main() prints `ferkit: message` on stderr and exits with `code`. A message of several
    lines (several bad settings at once) is printed as several `ferkit: ` lines."""

    def __init__(self, message: str, code: int = EXIT_ERROR):
        super().__init__(message)
        self.code = code


def print_error(message: str) -> None:
    """`ferkit: message` on stderr, for trouble that does not stop the command; the rest go through main()."""
    print(f"ferkit: {message}", file=sys.stderr)
