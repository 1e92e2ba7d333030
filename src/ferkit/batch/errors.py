"""The errors `ferkit batch` raises for trouble that is not one bad input (those become error rows): a leaf module,
below the engines, the output and the CLI that translates each into its exit code."""
from __future__ import annotations


class BatchError(Exception):
    """A run that cannot start or go on; the message says what was wrong and what to do."""


class ClusterError(BatchError):
    """The Ray cluster could not be reached, was lost during the run, or its nodes cannot see the inputs."""


class OutputError(BatchError):
    """The output cannot be written: its folder is missing or read-only, the disk is full, another run holds it."""


class SettingsChangedError(BatchError, ValueError):
    """A rerun into an output made with other settings (the difference is named in the message)."""
