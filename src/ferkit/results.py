"""ferkit's results on disk as one pandas DataFrame: `read_results(path)`.

Reads what the commands write, in ferkit.records' one row schema (docs/batch.md):
    a video's output folder (`ferkit video`)   its timeline (timeline.csv, .jsonl or .parquet): batch's columns plus
                                              `track`, the person a row belongs to (ferkit.track's id)
    a batch result (`ferkit batch`)           OUT.csv, OUT.jsonl or OUT.parquet
each with the run's metadata beside it (PATH.meta.json, or a Parquet file's own: records.read_meta).

The result is a `Results`, a DataFrame with the column groups as properties (`.emotions`, `.action_units`,
`.blendshapes`, `.pose`, `.landmarks`: the columns without their prefix) and the run's facts in `.attrs`: model,
labels, detector, adapter, features, ferkit_version (None where nothing records them: a file copied without its
metadata gives the model, detector and labels its rows name), `kind` ("video" or "batch"), `path`, and for a video
`video` (its path), `fps` and `every`; `meta`, the whole metadata as written.

pandas is imported with this module (ferkit[results]); `import ferkit` alone does not need it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

try:
    import pandas as pd
except ImportError as e:  # an extra: say which
    raise ImportError('ferkit.read_results and `ferkit report` need pandas: pip install "ferkit[results]"') from e

from .face import LANDMARK_COLUMNS, POSE_KEYS
from .records import FORMATS, column_type, read_meta

TIMELINE = "timeline"     # a video's output folder holds timeline.csv, .jsonl or .parquet (ferkit video --timeline)


class ResultsError(ValueError):
    """A file or folder that is not a ferkit result, or a value in it of the wrong type (the message names which)."""


class Results(pd.DataFrame):
    """The rows of a ferkit result (read_results); the column groups as properties, the run's facts in `.attrs`."""

    @property
    def _constructor(self):
        return Results

    def _group(self, prefix: str, names=None) -> pd.DataFrame:
        cols = [c for c in self.columns if c.startswith(prefix)] if names is None else [c for c in names if c in self]
        return pd.DataFrame(self[cols]).rename(columns=lambda c: c[len(prefix):])

    @property
    def emotions(self) -> pd.DataFrame:
        """One column per class of the model (its label order), the probabilities: `prob_happy` as `happy`."""
        return self._group("prob_", [f"prob_{k}" for k in self.attrs.get("labels") or []] or None)

    @property
    def action_units(self) -> pd.DataFrame:
        """The action-unit estimates, 0-1 (`AU1` ... `AU43`), when the run read the face features."""
        return self._group("au_")

    @property
    def blendshapes(self) -> pd.DataFrame:
        """MediaPipe's 52 blendshapes, 0-1, when the run read the face features."""
        return self._group("bs_")

    @property
    def pose(self) -> pd.DataFrame:
        """Head pose in degrees: yaw, pitch, roll (ferkit.mesh says the convention), when the run read it."""
        return self._group("", POSE_KEYS)

    @property
    def landmarks(self) -> pd.DataFrame:
        """The detector's five landmarks in pixels (lm0_x, lm0_y ... lm4_y), where it gives them."""
        return self._group("", LANDMARK_COLUMNS)


def read_results(path: str | os.PathLike) -> Results:
    """The rows of a `ferkit video` output folder (or its timeline file) or of a `ferkit batch` result (.csv, .jsonl,
    .parquet) as a Results DataFrame (this module's docstring says what it holds).
    Raises FileNotFoundError for a missing path and ResultsError for anything that is not a ferkit result."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        found = [path / f"{TIMELINE}{suffix}" for suffix in FORMATS if (path / f"{TIMELINE}{suffix}").is_file()]
        if len(found) != 1:
            names = ", ".join(f.name for f in found) if found else f"no {TIMELINE}.csv, .jsonl or .parquet"
            raise ResultsError(f"{path}: a folder with {names}; expected the output folder of `ferkit video` (one "
                               f"timeline) or a `ferkit batch` result file ({', '.join(FORMATS)})")
        path = found[0]
    elif path.suffix.lower() not in FORMATS:
        raise ResultsError(f"{path}: not a ferkit result; expected a `ferkit batch` result ({', '.join(FORMATS)}) "
                           f"or a `ferkit video` output folder")
    return _read(path)


def _read(path: Path) -> Results:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except ImportError:
            raise ResultsError(f'{path}: reading Parquet needs pyarrow: pip install "ferkit[parquet]"') from None
        except Exception as e:  # noqa: BLE001 -- pyarrow's own errors (ArrowInvalid ...): said with the file's name
            raise ResultsError(f"{path}: not a Parquet file pyarrow can read ({e})") from None
        first_row = 1
    elif suffix == ".csv":
        frame, first_row = _read_table(path), 2   # row 1 is the header
    else:
        frame, first_row = _read_lines(path), 1
    missing = [c for c in ("source", "status", "emotion") if c not in frame]
    if missing or not any(c.startswith("prob_") for c in frame.columns):
        raise ResultsError(f"{path}: no column {', '.join(missing) or 'prob_<label>'}; expected ferkit's rows "
                           f"(source, kind, frame, time, status, ... emotion, prob_<label> ..., model: docs/batch.md)")
    return _typed(frame, path, _facts(path, frame), first_row=first_row)


def _facts(path: Path, frame: pd.DataFrame) -> dict:
    """The run's facts for `.attrs`: from the metadata written with the rows, else from the rows themselves."""
    try:
        meta = read_meta(path) or {}
    except (ValueError, OSError) as e:  # a damaged side file: said, not guessed around
        raise ResultsError(f"{path}: its metadata cannot be read ({e}); expected the .meta.json ferkit wrote "
                           f"beside it") from None
    models = frame["model"].dropna().unique().tolist() if "model" in frame else []
    detectors = frame["detector"].dropna().unique().tolist() if "detector" in frame else []
    video = "track" in frame.columns or meta.get("command") == "ferkit video"
    facts = {"model": meta.get("model", models[0] if len(models) == 1 else None),
             "labels": meta.get("labels", [c[len("prob_"):] for c in frame.columns if c.startswith("prob_")]),
             "detector": meta.get("detector", detectors[0] if len(detectors) == 1 else None),
             "adapter": meta.get("adapter"), "features": meta.get("features"),
             "ferkit_version": meta.get("ferkit_version"), "kind": "video" if video else "batch", "path": str(path)}
    if video:
        info = meta.get("video") or {}
        facts.update(video=info.get("path"), fps=info.get("fps"), every=meta.get("every"))
    facts["meta"] = meta
    return facts


# ---------------------------------------------------------------- reading and typing rows
def _read_table(path: Path) -> pd.DataFrame:
    """A CSV as text (typed by _typed, which can then name a bad cell); empty cells are missing values."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise ResultsError(f"{path}: empty file; expected a header line of ferkit's columns") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise ResultsError(f"{path}: not a CSV file pandas can read ({e})") from None


def _read_lines(path: Path) -> pd.DataFrame:
    """JSON Lines: one object a line (blank lines skipped); the columns in the first object's order."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ResultsError(f"{path}: line {number} is not JSON ({e.msg}); expected one row object a line") from None
            if not isinstance(row, dict):
                raise ResultsError(f"{path}: line {number} is a JSON {type(row).__name__}, not a row object")
            rows.append(row)
    if not rows:
        raise ResultsError(f"{path}: no rows; expected one JSON object a line")
    return pd.DataFrame.from_records(rows, columns=list(rows[0]))


def _typed(frame: pd.DataFrame, path: Path, meta: dict, first_row: int) -> Results:
    """Every column in its type (records.column_type: int as nullable Int64, float, str as text), whatever the file
    stored; a value that is not of its column's type is a ResultsError naming the file, row and column.
    `first_row`: the file's row (CSV: line) number of frame's first row, for the message."""
    out = {}
    for col in frame.columns:
        values, kind = frame[col], column_type(col)
        if kind is str:
            out[col] = values.astype("string")
            continue
        numbers = pd.to_numeric(values, errors="coerce")
        bad = numbers.isna() & values.notna()
        if bad.any():
            i = int(bad.to_numpy().argmax())
            raise ResultsError(f"{path}: row {i + first_row}, column {col}: {_shown(values.iloc[i])} is not a number")
        if kind is int:
            fraction = numbers.notna() & (numbers != numbers.round())
            if fraction.any():
                i = int(fraction.to_numpy().argmax())
                raise ResultsError(f"{path}: row {i + first_row}, column {col}: {_shown(values.iloc[i])} is not a whole number")
            out[col] = numbers.astype("Int64")
        else:
            out[col] = numbers.astype("float64")
    results = Results(out, index=pd.RangeIndex(len(frame)))
    results.attrs.update(meta)
    return results


def _shown(value) -> str:
    """A cell as the message quotes it: text in quotes, a number as written."""
    return repr(value) if isinstance(value, str) else str(value)
