"""Results on disk, never truncated or corrupt: each finished chunk is written as a part file (a temporary name,
then an atomic rename) into OUT.parts/, and when every task is done the parts (and the rows of an earlier OUT) are
combined, in plan order, into OUT (again written aside and renamed), then OUT.parts/ is removed. A run killed at
any point leaves finished parts, which the rerun skips; OUT is either absent, the previous whole file, or the new
whole file.

Part file: JSON Lines; the first line {"chunk": id, "tasks": [keys]}, then one row a line.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path
from typing import Iterable, Iterator

from .work import column_type

PARQUET_ROWS = 50_000  # rows per Parquet row group, written as they come
FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def output_format(out: str | os.PathLike) -> str:
    fmt = FORMATS.get(Path(out).suffix.lower())
    if fmt is None:
        raise ValueError(f"{out}: unknown output format; name the file .parquet, .csv or .jsonl")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ValueError(f'{out}: Parquet output needs pyarrow: pip install "ferkit[ray]" (or pyarrow), '
                             f'or name the file .csv or .jsonl') from None
    return fmt


class Parts:
    """OUT.parts/: settings.json (what the rows depend on) and one part file per finished chunk."""

    def __init__(self, out: str | os.PathLike, settings: dict):
        self.out = Path(out)
        self.dir = self.out.with_name(self.out.name + ".parts")
        self.settings = settings
        self.count = 0

    def open(self) -> None:
        """Create the folder, or check that the parts in it were made with the same settings."""
        path = self.dir / "settings.json"
        if path.is_file():
            before = json.loads(path.read_text())
            if before != self.settings:
                diff = ", ".join(f"{k}: {before.get(k)!r} then, {v!r} now" for k, v in self.settings.items()
                                 if before.get(k) != v)
                raise ValueError(f"{self.dir} holds the parts of an unfinished run with other settings ({diff}); "
                                 f"rerun with those settings, or delete the folder to start again")
        else:
            self.dir.mkdir(parents=True, exist_ok=True)
            _write_atomic(path, json.dumps(self.settings, indent=1))
        for tmp in self.dir.glob(".tmp-*"):  # what a killed run was writing
            tmp.unlink()

    def index(self) -> dict[str, Path]:
        """The part holding each finished task's rows, by task key (reading only each part's first line)."""
        where: dict[str, Path] = {}
        if not self.dir.is_dir():
            return where
        for part in sorted(self.dir.glob("part-*.jsonl")):
            with open(part, encoding="utf-8") as fh:
                where.update(dict.fromkeys(json.loads(fh.readline())["tasks"], part))
        return where

    def write(self, chunk_id: int, results: list[tuple[str, list[dict]]]) -> Path:
        self.count += 1
        lines = [json.dumps({"chunk": chunk_id, "tasks": [k for k, _ in results]})]
        lines += [json.dumps({**row, "_task": key}) for key, rows in results for row in rows]
        path = self.dir / f"part-{chunk_id:08d}-{os.getpid()}-{self.count}.jsonl"
        _write_atomic(path, "\n".join(lines) + "\n")
        return path

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
def write_rows(path: str | os.PathLike, rows: Iterable[dict], cols: list[str], tmp_dir: Path) -> None:
    """Rows (any iterable: they are streamed) into `path` in its format, written in `tmp_dir` first and renamed over
    `path`."""
    path = Path(path)
    fmt = output_format(path)
    tmp = tmp_dir / f".tmp-combined{path.suffix}"
    if fmt == "jsonl":
        with open(tmp, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps({c: row.get(c) for c in cols}) + "\n")
    elif fmt == "csv":
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(cols)
            for row in rows:
                writer.writerow(["" if row.get(c) is None else row[c] for c in cols])
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        types = {int: pa.int64(), float: pa.float64(), str: pa.string()}
        schema = pa.schema([(c, types[column_type(c)]) for c in cols])
        with pq.ParquetWriter(tmp, schema) as writer:
            for group in _groups(rows, PARQUET_ROWS):
                writer.write_table(pa.Table.from_pylist([{c: row.get(c) for c in cols} for row in group], schema=schema))
    os.replace(tmp, path)


def _groups(rows: Iterable[dict], n: int) -> Iterator[list[dict]]:
    group: list[dict] = []
    for row in rows:
        group.append(row)
        if len(group) == n:
            yield group
            group = []
    if group:
        yield group


def read_rows(path: str | os.PathLike) -> tuple[list[str], list[dict]]:
    """(columns, rows) of an output file, with the types it was written with (CSV's text converted back)."""
    path = Path(path)
    fmt = output_format(path)
    if fmt == "jsonl":
        with open(path, encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
        return (list(rows[0]) if rows else []), rows
    if fmt == "csv":
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            cols = next(reader, [])
            kinds = [column_type(c) for c in cols]
            rows = [{c: (None if v == "" else k(v)) for c, k, v in zip(cols, kinds, line)} for line in reader]
        return cols, rows
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return table.column_names, table.to_pylist()
