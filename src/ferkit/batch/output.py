"""Results on disk, never truncated or corrupt: each finished chunk is written as a part file (a temporary name,
then an atomic rename) into OUT.parts/, and when every task is done the parts (and the rows of an earlier OUT) are
combined, in plan order, into OUT (again written aside and renamed), then OUT.parts/ is removed. A run killed at
any point leaves finished parts, which the rerun skips; OUT is either absent, the previous whole file, or the new
whole file. OUT.settings.json, written with OUT, records the settings its rows were made with, so that a rerun with
other settings is refused rather than mixing rows; OUT.lock is held (flock, with the holder's PID in it) while a run
writes OUT, so that a second run into the same OUT is refused.

Part file: JSON Lines; the first line {"chunk": id, "tasks": [keys]}, then one row a line.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import time
from pathlib import Path
from typing import Iterable, Iterator

from .errors import OutputError, SettingsChangedError
from ..records import column_type, output_format, read_rows, writer_for  # noqa: F401  (read_rows: the tests' import)
from .work import effective_detect_side

try:
    import fcntl
except ImportError:  # Windows: no lock
    fcntl = None

def check_output(out: Path) -> None:
    """OutputError unless `out` can be written: its folder exists (it is never made), is a folder and is writable."""
    folder = out.parent
    if not folder.exists():
        raise OutputError(f"{out}: the folder {folder} does not exist; create it first")
    if not folder.is_dir():
        raise OutputError(f"{out}: {folder} is a file, not a folder")
    if out.is_dir():
        raise OutputError(f"{out} is a folder; name a results file (.parquet, .csv or .jsonl)")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{out}: the folder {folder} is not writable")


def _unwritable(path: Path, e: OSError, keep: Path | None = None) -> OutputError:
    kept = f"; the finished chunks are kept in {keep}: " if keep else "; "
    return OutputError(f"{path}: cannot write ({e.strerror or type(e).__name__}){kept}"
                       f"free space or fix permissions, then rerun the same command")


class OutputLock:
    """OUT.lock, held (flock) while a run writes OUT; the file holds the holder's PID for the refusal's message. The
    lock goes with its process (kill -9 included); release() removes the file, and a run that locked a file
    removed meanwhile locks afresh."""

    def __init__(self, out: Path):
        self.out = out
        self.path = out.with_name(out.name + ".lock")
        self.fh = None

    def acquire(self) -> None:
        if fcntl is None:
            return
        while True:
            try:
                fh = open(self.path, "a+", encoding="utf-8")
            except OSError as e:
                raise _unwritable(self.path, e) from None
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = ""
                for _ in range(20):  # the holder writes its PID right after locking
                    fh.seek(0)
                    pid = fh.read().strip()
                    if pid:
                        break
                    time.sleep(0.05)
                fh.close()
                raise OutputError(f"{self.out} is being written by another ferkit batch run (PID {pid or 'unknown'}); "
                                  f"wait for it to end, or name another --out") from None
            try:
                same = os.fstat(fh.fileno()).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            fh.close()  # the previous holder removed it between our open and flock: lock the new one
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self.fh = fh

    def release(self) -> None:
        if self.fh is not None:
            try:
                os.unlink(self.path)  # while still holding it: a waiting run then locks a fresh file
            except OSError:
                pass
            self.fh.close()
            self.fh = None


def settings_path(out: Path) -> Path:
    return out.with_name(out.name + ".settings.json")


def settings_difference(before: dict, now: dict) -> str:
    """The settings that differ, as "name: old then, new now" (a setting an older ferkit did not record counts as
    the same while it has its default, empty value now; detect_side is compared as the detector uses it, so an
    older record's none is yunet's 640); "" when none."""
    now = json.loads(json.dumps(now))  # as recorded: tuples (a spec's tuple fields) read back as lists
    if "detect_side" in before:
        before = {**before, "detect_side": effective_detect_side(before.get("detector"), before["detect_side"])}
    diff = [f"{k}: {before.get(k)!r} then, {v!r} now" for k, v in now.items()
            if before.get(k) != v and (k in before or v not in (None, (), [], "", False))]
    return ", ".join(diff)


def check_finished(out: Path, settings: dict) -> None:
    """SettingsChangedError when OUT was made with other settings than `settings`."""
    path = settings_path(out)
    if not out.exists() or not path.is_file():
        return
    diff = settings_difference(json.loads(path.read_text()), settings)
    if diff:
        raise SettingsChangedError(f"{out} was made with other settings ({diff}); rerun with those settings, "
                                   f"or add --overwrite to analyse everything again, or name another --out")


def write_settings(out: Path, settings: dict, tmp_dir: Path) -> None:
    """OUT.settings.json (written aside, then renamed)."""
    tmp = tmp_dir / ".tmp-settings.json"
    try:
        tmp.write_text(json.dumps(settings, indent=1), encoding="utf-8")
        os.replace(tmp, settings_path(out))
    except OSError as e:
        raise _unwritable(settings_path(out), e, tmp_dir) from None


class Parts:
    """OUT.parts/: settings.json (what the rows depend on) and one part file per finished chunk."""

    def __init__(self, out: str | os.PathLike, settings: dict):
        self.out = Path(out)
        self.dir = self.out.with_name(self.out.name + ".parts")
        self.settings = settings
        self.count = 0

    def open(self) -> bool:
        """Create the folder (-> True), or check that the parts in it were made with the same settings (-> False)."""
        path = self.dir / "settings.json"
        created = False
        if path.is_file():
            diff = settings_difference(json.loads(path.read_text()), self.settings)
            if diff:
                raise SettingsChangedError(f"{self.dir} holds the parts of an unfinished run with other settings "
                                           f"({diff}); rerun with those settings, or add --overwrite to start again")
        else:
            try:
                created = not self.dir.exists()
                self.dir.mkdir(exist_ok=True)
                _write_atomic(path, json.dumps(self.settings, indent=1))
            except OSError as e:
                raise _unwritable(self.dir, e) from None
        for tmp in self.dir.glob(".tmp-*"):  # what a killed run was writing
            tmp.unlink()
        return created

    def index(self) -> Iterator[tuple[str, Path]]:
        """(task key, the part holding its rows) of each finished task (reading only each part's first line)."""
        if not self.dir.is_dir():
            return
        for part in sorted(self.dir.glob("part-*.jsonl")):
            with open(part, encoding="utf-8") as fh:
                for key in json.loads(fh.readline())["tasks"]:
                    yield key, part

    def write(self, chunk_id: int, results: list[tuple[str, list[dict]]]) -> Path:
        self.count += 1
        lines = [json.dumps({"chunk": chunk_id, "tasks": [k for k, _ in results]})]
        lines += [json.dumps({**row, "_task": key}) for key, rows in results for row in rows]
        path = self.dir / f"part-{chunk_id:08d}-{os.getpid()}-{self.count}.jsonl"
        try:
            _write_atomic(path, "\n".join(lines) + "\n")
        except OSError as e:
            raise _unwritable(path, e, self.dir) from None
        return path

    def written(self) -> bool:
        """Whether the folder holds any finished part."""
        return any(self.dir.glob("part-*.jsonl"))

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def read_part(path: Path) -> dict[str, list[dict]]:
    """Rows per task key of one part file."""
    with open(path, encoding="utf-8") as fh:
        by_key: dict[str, list[dict]] = {k: [] for k in json.loads(fh.readline())["tasks"]}
        for line in fh:
            row = json.loads(line)
            by_key[row.pop("_task")].append(row)
    return by_key


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------- whole files
def stream_rows(path: str | os.PathLike) -> tuple[list[str], Iterator[dict]]:
    """(columns, rows) of a file written by writer_for, as records.read_rows gives them (the same types), the rows
    read as they are asked for (a Parquet file a batch of rows at a time): an earlier OUT is never all in memory."""
    path = Path(path)
    fmt = output_format(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        return pf.schema_arrow.names, (r for batch in pf.iter_batches(batch_size=1024) for r in batch.to_pylist())
    fh = open(path, newline="" if fmt == "csv" else None, encoding="utf-8")
    if fmt == "jsonl":
        lines = (line for line in fh if line.strip())
        first = next(lines, None)
        if first is None:
            fh.close()
            return [], iter(())
        row = json.loads(first)
        return list(row), _closing(fh, (json.loads(line) for line in lines), first=row)
    reader = csv.reader(fh)
    cols = next(reader, [])
    kinds = [column_type(c) for c in cols]
    return cols, _closing(fh, ({c: (None if v == "" else k(v)) for c, k, v in zip(cols, kinds, line)}
                               for line in reader))


def _closing(fh, rows: Iterator[dict], first: dict | None = None) -> Iterator[dict]:
    with fh:
        if first is not None:
            yield first
        yield from rows


def write_rows(path: str | os.PathLike, rows: Iterable[dict], cols: list[str], tmp_dir: Path) -> None:
    """Rows (any iterable: they are streamed) into `path` in its format, written in `tmp_dir` first and renamed over
    `path`."""
    path = Path(path)
    try:
        _write_rows(path, rows, cols, tmp_dir)
    except OSError as e:
        raise _unwritable(path, e, tmp_dir) from None


def _write_rows(path: Path, rows: Iterable[dict], cols: list[str], tmp_dir: Path) -> None:
    tmp = tmp_dir / f".tmp-combined{path.suffix}"
    with writer_for(path, cols, into=tmp) as writer:
        writer.write_many(rows)
    os.replace(tmp, path)
