"""Batch analysis: folders, manifests and video collections into one results file, on this machine or on Ray.

    from ferkit import batch
    summary = batch.run(["photos/", "sessions.csv"], out="results.parquet")            # local worker processes
    summary = batch.run(["photos/"], out="results.parquet", engine="ray", address="head:6379")
    for row in batch.iter_rows(["photos/"]): ...                                         # rows, no files

Modules, in the order the work flows: inputs (paths -> tasks -> chunks), work (a chunk -> rows, the same in every
engine), local / ray_engine (the engines), output (parts, the lock, the settings and the combined file), ledger (the
driver's bookkeeping on disk: plan, finished tasks, an earlier OUT's rows), api (run, iter_rows); the command is ferkit.cli.batch; errors (ClusterError, OutputError, SettingsChangedError: what run() raises besides ValueError).
The output's columns are in docs/batch.md.
"""
from .api import ENGINES, Summary, iter_rows, run
from .errors import BatchError, ClusterError, OutputError, SettingsChangedError
from .work import columns

__all__ = ["run", "iter_rows", "Summary", "ENGINES", "columns", "BatchError", "ClusterError", "OutputError", "SettingsChangedError"]
