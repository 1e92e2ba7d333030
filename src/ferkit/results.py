"""ferkit's results on disk as one pandas DataFrame: `read_results(path)`.

Reads what the commands write:
    a video's output folder (`ferkit video`)   its timeline.csv, with timeline.json's head (model, labels, fps)
    a batch result (`ferkit batch`)           OUT.csv, OUT.jsonl or OUT.parquet, with OUT.settings.json beside it

and gives back one row schema whatever the source: batch's columns (docs/batch.md: source, kind, frame, time,
status, message, face, x, y, w, h, lm*_x/y, detector, detector_score, emotion, prob_<label>, bs_*, au_*, yaw,
pitch, roll, mesh_*, model) plus `track`, the person a video's row belongs to (ferkit.track's id; absent in batch
results, which do not follow faces). A video timeline of this ferkit, whose `face` column is the track id and whose
probability columns are bare labels, is renamed into that schema here.

The result is a `Results`, a DataFrame with the column groups as properties (`.emotions`, `.action_units`,
`.blendshapes`, `.pose`, `.landmarks`: the columns without their prefix) and the run's facts in `.attrs`
(model, labels, detector, adapter, features, ferkit_version: None where the files do not record it; plus
what the rows need to be read right: `kind` "video" or "batch", `path`, and for a video `video`, `fps`, `every`).

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

FORMATS = (".csv", ".jsonl", ".ndjson", ".parquet")
INT_COLUMNS = ("frame", "face", "track", "x", "y", "w", "h")   # nullable (Int64): rows without a face have none
TEXT_COLUMNS = ("source", "kind", "status", "message", "detector", "emotion", "model")
VIDEO_TIMELINE = "timeline.csv"
VIDEO_HEAD = "timeline.json"      # its first line holds the run's facts; the rows follow (not read here)
METADATA_KEYS = ("model", "labels", "detector", "adapter", "features", "ferkit_version")


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
    """The rows of a `ferkit video` output folder (or its timeline.csv) or of a `ferkit batch` result (.csv, .jsonl,
    .parquet) as a Results DataFrame, in one schema (this module's docstring); the run's facts in `.attrs`.
    Raises FileNotFoundError for a missing path and ResultsError for anything that is not a ferkit result."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        if not (path / VIDEO_TIMELINE).is_file():
            raise ResultsError(f"{path}: a folder without {VIDEO_TIMELINE}; expected the output folder of "
                               f"`ferkit video` or a `ferkit batch` result file ({', '.join(FORMATS)})")
        return _read_video(path)
    if path.name == VIDEO_TIMELINE and (path.parent / VIDEO_HEAD).is_file():
        return _read_video(path.parent)
    if path.suffix.lower() not in FORMATS:
        raise ResultsError(f"{path}: not a ferkit result; expected a `ferkit batch` result ({', '.join(FORMATS)}) "
                           f"or a `ferkit video` output folder")
    return _read_batch(path)


# ---------------------------------------------------------------- a video's output folder
def _read_video(folder: Path) -> Results:
    head = _video_head(folder / VIDEO_HEAD)
    labels = head["labels"]
    frame = _read_table(folder / VIDEO_TIMELINE)
    missing = [c for c in ("time", "frame", "face", "emotion", *labels) if c not in frame]
    if missing:
        raise ResultsError(f"{folder / VIDEO_TIMELINE}: no column {', '.join(missing)}; expected a `ferkit video` "
                           f"timeline (time, frame, face, x, y, w, h, emotion, one column per label)")
    # the timeline's `face` is the tracker's id: a person, which batch's schema calls `track`
    frame = frame.rename(columns={"face": "track", **{k: f"prob_{k}" for k in labels}})
    frame = frame.assign(source=head["video"], kind="video", status="ok")
    first = ["source", "kind", "frame", "time", "status", "track"]   # batch's order, then the timeline's
    frame = frame[first + [c for c in frame.columns if c not in first]]
    meta = {"model": head.get("model"), "labels": labels, "detector": head.get("detector"),
            "adapter": head.get("adapter"), "features": head.get("features"),
            "ferkit_version": head.get("ferkit_version"),
            "kind": "video", "path": str(folder), "video": head["video"], "fps": head["fps"], "every": head["every"]}
    return _typed(frame, folder / VIDEO_TIMELINE, meta, first_row=2)


def _video_head(path: Path) -> dict:
    """timeline.json's facts, before its rows: the file is one JSON object whose "rows" come after them."""
    with open(path, encoding="utf-8") as fh:
        first = fh.readline()
    start = first.find(', "rows": [')
    try:
        head = json.loads(first[:start] + "}") if start > 0 else json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path}: not JSON ({e.msg} at character {e.pos}); expected `ferkit video`'s "
                           f"timeline.json") from None
    missing = [k for k in ("video", "fps", "every", "labels") if k not in head]
    if missing:
        raise ResultsError(f"{path}: no {', '.join(missing)}; expected `ferkit video`'s timeline.json")
    return head


# ---------------------------------------------------------------- a batch result
def _read_batch(path: Path) -> Results:
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
        raise ResultsError(f"{path}: no column {', '.join(missing) or 'prob_<label>'}; expected a `ferkit batch` "
                           f"result (source, kind, frame, time, status, ... emotion, prob_<label> ..., model)")
    settings = _batch_settings(path)
    probs = [c[len("prob_"):] for c in frame.columns if c.startswith("prob_")]
    models = frame["model"].dropna().unique().tolist() if "model" in frame else []
    detectors = frame["detector"].dropna().unique().tolist() if "detector" in frame else []
    meta = {"model": settings.get("model", models[0] if len(models) == 1 else None),
            "labels": settings.get("labels", probs),
            "detector": settings.get("detector", detectors[0] if len(detectors) == 1 else None),
            "adapter": settings.get("adapter"), "features": settings.get("features"),
            "ferkit_version": settings.get("ferkit_version"), "kind": "batch", "path": str(path),
            "fps": settings.get("fps")}
    return _typed(frame, path, meta, first_row=first_row)


def _batch_settings(path: Path) -> dict:
    """OUT.settings.json, written by ferkit batch beside OUT ({} when absent: the rows' own columns are used)."""
    side = path.with_name(path.name + ".settings.json")
    if not side.is_file():
        return {}
    try:
        return json.loads(side.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ResultsError(f"{side}: not JSON ({e.msg} at line {e.lineno}); expected ferkit batch's settings") from None


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
    """Every column in its type (INT_COLUMNS nullable integers, TEXT_COLUMNS text, the rest floats), whatever the
    file stored; a value that is not of its column's type is a ResultsError naming the file, row and column.
    `first_row`: the file's row (CSV: line) number of frame's first row, for the message."""
    out = {}
    for col in frame.columns:
        values = frame[col]
        if col in TEXT_COLUMNS:
            out[col] = values.astype("string")
            continue
        numbers = pd.to_numeric(values, errors="coerce")
        bad = numbers.isna() & values.notna()
        if bad.any():
            i = int(bad.to_numpy().argmax())
            raise ResultsError(f"{path}: row {i + first_row}, column {col}: {values.iloc[i]!r} is not a number")
        if col in INT_COLUMNS:
            whole = numbers.dropna()
            if not (whole == whole.round()).all():
                i = int((numbers != numbers.round()).to_numpy().argmax())
                raise ResultsError(f"{path}: row {i + first_row}, column {col}: {values.iloc[i]!r} is not a whole number")
            out[col] = numbers.astype("Int64")
        else:
            out[col] = numbers.astype("float64")
    results = Results(out, index=pd.RangeIndex(len(frame)))
    results.attrs.update(meta)
    return results
