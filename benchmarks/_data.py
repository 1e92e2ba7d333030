"""Where the benchmarks find FER-2013: `--data`, else $FERKIT_DATA, else ../shared/data/fer2013 beside the repository
(the layout ferkit is developed in; the installed package never assumes it)."""
from __future__ import annotations

import os
from pathlib import Path

DEV_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fer2013"


def cpu_name() -> str:
    """This machine's CPU model, for the figures' headers (lscpu, else /proc/cpuinfo, else the platform)."""
    import platform
    import subprocess

    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine() or "unknown CPU"


def fer2013(data: str | Path | None = None) -> Path:
    """The fastest FER-2013 file in `data` or the folder above (ferkit.data.fer2013_file)."""
    from ferkit.data import fer2013_file

    return fer2013_file(data or os.environ.get("FERKIT_DATA") or DEV_DATA)
