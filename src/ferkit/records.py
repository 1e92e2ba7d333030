"""One row schema for every table ferkit writes (`ferkit batch`'s results, `ferkit video`'s timeline), and the
writers behind one `writer_for(path)`: CSV, JSON Lines, Parquet, chosen by the file's extension.

A row is one face in one image or analysed video frame, or one image / analysed frame with no face (`no_face`) or
that could not be analysed (`error`, with the message). Columns, in this order (docs/batch.md has the table):

    source, kind, frame, time, status, message   where the row comes from and what happened
    track                                        `ferkit video` only: the tracker's id of the person, from 1
    face                                         the face's index in its image or frame, from 0 (left to right)
    x, y, w, h, lm0_x, lm0_y ... lm4_x, lm4_y    box and five landmarks in the file's pixels
    detector, detector_score, emotion            Face.to_row's
    prob_<label>                                 one per class, in the model's (or the adapter's) order
    adapter, base_prob_<label>                   with an adapter only: its name and the base model's probabilities
    bs_<blendshape>, au_<AU>                     with the blendshapes feature
    yaw, pitch, roll                             with the pose feature
    mesh                                         only when `mesh` is named (not with `all`): the 478 points as one
                                                 JSON text [[x, y, z], ...], 0.1 px, as Face.to_dict's "mesh"
    model                                        the model's name (`base+HEAD` with an adapter)

A video's timeline is batch's schema plus `track`: the same clip gives the same columns and values (track aside).
Types: int for frame, track, face, x, y, w, h; float for time, detector_score, landmarks, prob_*, base_prob_*,
bs_*, au_*, yaw, pitch, roll; text for the rest. Missing values are None (Parquet null, JSON null, CSV empty).

The run's metadata (ferkit version, model, labels, base labels, adapter, detector, features, the columns, the
command) goes with every output in a JSON side file, PATH.meta.json beside PATH (`read_meta`), and, in a Parquet
file, in its key-value metadata under b"ferkit" too.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .face import LANDMARK_COLUMNS, POSE_KEYS, Face
from .mesh import ACTION_UNITS, BLENDSHAPES

SOURCE_COLUMNS = ["source", "kind", "frame", "time", "status", "message"]
BOX_COLUMNS = ["x", "y", "w", "h"]
FACE_COLUMNS = ["detector", "detector_score", "emotion"]
INT_COLUMNS = {"frame", "track", "face", "x", "y", "w", "h"}
FLOAT_PREFIXES = ("prob_", "base_prob_", "bs_", "au_")
FLOAT_COLUMNS = {"time", "detector_score", *LANDMARK_COLUMNS, *POSE_KEYS}
FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
PARQUET_ROWS = 4096  # rows per Parquet row group, written as they come (the writer's memory stays flat)
META_KEY = b"ferkit"


def mesh_named(features) -> bool:
    """Whether `mesh` is named in the features as given ("mesh,pose", ["mesh"]); "all" computes the mesh but leaves
    it out of tables: 1,434 numbers a face are asked for, never a default."""
    if not features:
        return False
    names = features.split(",") if isinstance(features, str) else list(features)
    return any(str(n).strip().lower() == "mesh" for n in names)


@dataclass(frozen=True)
class Schema:
    """The columns of one output: the model's labels, the features computed, the base model's labels with an
    adapter, whether the mesh column is asked for, and whether rows carry a track id (video timelines)."""
    labels: tuple[str, ...]
    features: tuple[str, ...] = ()
    base_labels: tuple[str, ...] | None = None
    mesh: bool = False
    track: bool = False

    @classmethod
    def of(cls, rec, *, mesh: bool = False, track: bool = False) -> "Schema":
        """The schema of a Recognizer's rows (or of anything with its labels, features, base_labels and adapter)."""
        adapted = getattr(rec, "adapter", None) is not None
        return cls(tuple(rec.labels), tuple(getattr(rec, "features", ())),
                   tuple(rec.base_labels) if adapted else None, mesh and "mesh" in getattr(rec, "features", ()), track)

    @property
    def columns(self) -> list[str]:
        cols = SOURCE_COLUMNS + (["track"] if self.track else []) + ["face"] + BOX_COLUMNS + LANDMARK_COLUMNS
        cols += FACE_COLUMNS + [f"prob_{k}" for k in self.labels]
        if self.base_labels is not None:
            cols += ["adapter"] + [f"base_prob_{k}" for k in self.base_labels]
        if "blendshapes" in self.features:
            cols += [f"bs_{k}" for k in BLENDSHAPES] + [f"au_{k}" for k in ACTION_UNITS]
        if "pose" in self.features:
            cols += list(POSE_KEYS)
        if self.mesh:
            cols.append("mesh")
        return cols + ["model"]

    def row(self, rec, source: str, kind: str, status: str, *, frame: int | None = None, time: float | None = None,
            message: str | None = None) -> dict:
        """A row with no face values: `no_face` and `error` rows, and the start of a face's."""
        row = dict.fromkeys(self.columns)
        detector = getattr(rec, "detector", None)
        adapter = getattr(rec, "adapter", None)
        row.update(source=source, kind=kind, frame=frame, time=time, status=status, message=message, model=rec.name,
                   detector=getattr(detector, "name", detector))
        if self.base_labels is not None:
            row["adapter"] = getattr(adapter, "name", adapter)
        return row

    def face_row(self, rec, face: Face, index: int, source: str, kind: str, *, frame: int | None = None,
                 time: float | None = None, track: int | None = None) -> dict:
        row = self.row(rec, source, kind, "ok", frame=frame, time=time)
        flat = face.to_row(mesh=self.mesh)
        flat["detector"] = flat["detector"] or row["detector"]
        row.update((k, v) for k, v in flat.items() if k in row)
        row["face"] = index
        if self.track:
            row["track"] = track
        return row


def columns(labels, features=(), *, base_labels=None, mesh: bool = False, track: bool = False) -> list[str]:
    """The columns for a model's labels, the features computed (mesh.parse_features names), the base model's labels
    with an adapter, the mesh column when asked for, and the track column (video)."""
    return Schema(tuple(labels), tuple(features), None if base_labels is None else tuple(base_labels),
                  mesh and "mesh" in features, track).columns


def column_type(name: str) -> type:
    if name in INT_COLUMNS:
        return int
    return float if name in FLOAT_COLUMNS or name.startswith(FLOAT_PREFIXES) else str


def output_format(path: str | os.PathLike) -> str:
    """"csv", "jsonl" or "parquet" from the file's extension; ValueError naming the valid ones, or how to get pyarrow."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown output format; name the file .parquet, .csv or .jsonl")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ValueError(f'{path}: Parquet output needs pyarrow: pip install "ferkit[parquet]", '
                             f'or name the file .csv or .jsonl') from None
    return fmt


# ---------------------------------------------------------------- writers
class RowWriter:
    """Rows (dicts; the columns it was opened with, others ignored, missing ones None) into one file. write(row),
    flush(), close(); a context manager."""

    def __init__(self, path: Path, cols: list[str]):
        self.path, self.columns = path, list(cols)

    def write(self, row: dict) -> None:
        raise NotImplementedError

    def write_many(self, rows: Iterable[dict]) -> None:
        for row in rows:
            self.write(row)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class CsvWriter(RowWriter):
    def __init__(self, path, cols, meta=None):
        super().__init__(path, cols)
        self.fh = open(path, "w", newline="", encoding="utf-8")
        self.csv = csv.writer(self.fh)
        self.csv.writerow(self.columns)

    def write(self, row):
        self.csv.writerow(["" if row.get(c) is None else row[c] for c in self.columns])

    def flush(self):
        self.fh.flush()

    def close(self):
        self.fh.close()


class JsonlWriter(RowWriter):
    def __init__(self, path, cols, meta=None):
        super().__init__(path, cols)
        self.fh = open(path, "w", encoding="utf-8")

    def write(self, row):
        self.fh.write(json.dumps({c: row.get(c) for c in self.columns}) + "\n")

    def flush(self):
        self.fh.flush()

    def close(self):
        self.fh.close()


class ParquetWriter(RowWriter):
    """Rows gathered into row groups of PARQUET_ROWS; flush() writes the rows so far as a (smaller) group."""

    def __init__(self, path, cols, meta=None):
        import pyarrow as pa
        import pyarrow.parquet as pq

        super().__init__(path, cols)
        types = {int: pa.int64(), float: pa.float64(), str: pa.string()}
        self.pa = pa
        self.schema = pa.schema([(c, types[column_type(c)]) for c in self.columns],
                                metadata=None if meta is None else {META_KEY: json.dumps(meta).encode()})
        self.writer = pq.ParquetWriter(str(path), self.schema)
        self.group: list[dict] = []

    def write(self, row):
        self.group.append({c: row.get(c) for c in self.columns})
        if len(self.group) >= PARQUET_ROWS:
            self.flush()

    def flush(self):
        if self.group:
            self.writer.write_table(self.pa.Table.from_pylist(self.group, schema=self.schema))
            self.group = []

    def close(self):
        self.flush()
        self.writer.close()


WRITERS = {"csv": CsvWriter, "jsonl": JsonlWriter, "parquet": ParquetWriter}


def writer_for(path: str | os.PathLike, cols: list[str], meta: dict | None = None, *,
               into: str | os.PathLike | None = None) -> RowWriter:
    """The writer for `path`'s format, opened on `into` (a temporary file to be renamed over `path`) or on `path`.
    `meta` goes into a Parquet file's metadata; the side file is write_meta's."""
    return WRITERS[output_format(path)](Path(into or path), cols, meta)


def read_rows(path: str | os.PathLike) -> tuple[list[str], list[dict]]:
    """(columns, rows) of a file written by writer_for, with the types it was written with (CSV's text converted)."""
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


# ---------------------------------------------------------------- metadata
def meta_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".meta.json")


def run_meta(rec_or_describe: dict, *, command: str, cols: list[str], **extra) -> dict:
    """The metadata written with an output: ferkit's version, the command, the columns, and `rec_or_describe`'s
    model, labels, base_labels, adapter, detector, features (a dict of those), plus `extra` (settings)."""
    from .version import __version__

    return {"ferkit_version": __version__, "command": command, **rec_or_describe, **extra, "columns": list(cols)}


def recognizer_meta(rec) -> dict:
    """model, labels, base_labels, adapter, detector, features of a Recognizer, for run_meta."""
    adapter = getattr(rec, "adapter", None)
    return {"model": rec.name, "labels": list(rec.labels),
            "base_labels": list(rec.base_labels) if adapter is not None else None,
            "adapter": getattr(adapter, "name", None), "detector": getattr(rec.detector, "name", None),
            "features": list(getattr(rec, "features", ()))}


def write_meta(path: str | os.PathLike, meta: dict, *, tmp_dir: str | os.PathLike | None = None) -> Path:
    """PATH.meta.json (written aside in `tmp_dir` and renamed, when given)."""
    target = meta_path(path)
    text = json.dumps(meta, indent=1)
    if tmp_dir is None:
        target.write_text(text, encoding="utf-8")
    else:
        tmp = Path(tmp_dir) / f".tmp-{target.name}"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    return target


def read_meta(path: str | os.PathLike) -> dict | None:
    """The metadata written with an output: PATH.meta.json, else a Parquet file's own; None when neither exists."""
    side = meta_path(path)
    if side.is_file():
        return json.loads(side.read_text(encoding="utf-8"))
    if output_format(path) == "parquet":
        import pyarrow.parquet as pq

        found = (pq.read_schema(path).metadata or {}).get(META_KEY)
        return None if found is None else json.loads(found)
    return None
