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

from .work import column_type

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

    def read(self) -> dict[str, list[dict]]:
        """Rows per task key, from every finished part."""
        done: dict[str, list[dict]] = {}
        if not self.dir.is_dir():
            return done
        for part in sorted(self.dir.glob("part-*.jsonl")):
            with open(part, encoding="utf-8") as fh:
                head = json.loads(fh.readline())
                rows = [json.loads(line) for line in fh]
            by_key: dict[str, list[dict]] = {k: [] for k in head["tasks"]}
            for row in rows:
                by_key[row.pop("_task")].append(row)
            done.update(by_key)
        return done

    def write(self, chunk_id: int, results: list[tuple[str, list[dict]]]) -> None:
        self.count += 1
        lines = [json.dumps({"chunk": chunk_id, "tasks": [k for k, _ in results]})]
        lines += [json.dumps({**row, "_task": key}) for key, rows in results for row in rows]
        _write_atomic(self.dir / f"part-{chunk_id:08d}-{os.getpid()}-{self.count}.jsonl", "\n".join(lines) + "\n")

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------- whole files
def write_rows(path: str | os.PathLike, rows: list[dict], cols: list[str], tmp_dir: Path) -> None:
    """All rows into `path` in its format, written in `tmp_dir` first and renamed over `path`."""
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
        pq.write_table(pa.Table.from_pylist([{c: row.get(c) for c in cols} for row in rows], schema=schema), tmp)
    os.replace(tmp, path)


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
