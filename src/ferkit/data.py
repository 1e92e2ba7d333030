"""Readers for FER-2013 in the layouts users have, returning one `FaceDataset`.

- the Kaggle CSV `fer2013.csv` (columns emotion,pixels,Usage), plain or .gz
- image folders: `train|test/<emotion>/*.jpg` or `images/train|validation/<emotion>/*`
- FER+ votes `fer2013new.csv`, row-aligned with fer2013.csv, as hard (majority) or soft targets
- the compact `.npz` (or `.npz.xz`, fer2013-compact.npz.xz): the same faces and FER+ votes in one small file

Bad input raises `DataError` naming the file and row; nothing is skipped silently.
"""
from __future__ import annotations

import csv
import gzip
import io
import lzma
import struct
import tokenize
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .labels import EMOTIONS, FERPLUS_COLUMNS, FERPLUS_EMOTIONS
from .preprocess import IMAGE_SIZE, resize_face

SPLITS: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
# Image-folder names -> FER-2013 protocol split: the folder layouts have no PublicTest of their own.
FOLDER_SPLITS = {"train": "Training", "validation": "PublicTest", "val": "PublicTest", "test": "PrivateTest"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}
N_PIXELS = IMAGE_SIZE * IMAGE_SIZE


class DataError(ValueError):
    """A data file is malformed; the message names the file and, where it applies, the row."""


@dataclass
class FaceDataset:
    pixels: np.ndarray              # (N, 48, 48) uint8
    labels: np.ndarray              # (N,) int64, index into `classes`
    usage: np.ndarray               # (N,) split name per row, one of SPLITS
    classes: tuple[str, ...] = EMOTIONS
    soft: np.ndarray | None = None  # (N, K) float32 target distributions (FER+ votes), rows sum to 1
    source: str = ""
    index: np.ndarray = field(default=None)  # (N,) row number in the source file

    def __post_init__(self):
        if self.index is None:
            self.index = np.arange(len(self.labels))

    def __len__(self) -> int:
        return len(self.labels)

    def split(self, name: str) -> "FaceDataset":
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; valid: {', '.join(SPLITS)}")
        keep = self.usage == name
        return self.select(keep)

    def select(self, keep: np.ndarray) -> "FaceDataset":
        return FaceDataset(
            self.pixels[keep], self.labels[keep], self.usage[keep], self.classes,
            None if self.soft is None else self.soft[keep], self.source, self.index[keep],
        )

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {class: count}} for the splits present."""
        out = {}
        for s in SPLITS:
            lab = self.labels[self.usage == s]
            if len(lab):
                out[s] = {c: int((lab == i).sum()) for i, c in enumerate(self.classes)}
        return out

    def summary(self) -> str:
        """Counts per split and class as a plain-text table."""
        counts = self.counts()
        width = max(len(c) for c in self.classes) + 1
        lines = [f"{self.source}: {len(self)} faces", f"{'split':<12}" + "".join(f"{c:>{width}}" for c in self.classes) + f"{'total':>8}"]
        for s, row in counts.items():
            lines.append(f"{s:<12}" + "".join(f"{row[c]:>{width}}" for c in self.classes) + f"{sum(row.values()):>8}")
        return "\n".join(lines)


def _open_text(path: Path) -> io.TextIOBase:
    # utf-8-sig: a byte-order mark (Excel writes one) is dropped, not read into the first column's name
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


# What reading a damaged text file can raise: truncated gzip (EOFError), bad gzip header or CRC (OSError),
# corrupt deflate data (zlib.error), bytes that are not UTF-8, a NUL byte or an oversized field (csv.Error).
_TEXT_READ_ERRORS = (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error)


def _read_fault(e: Exception) -> str:
    """What went wrong reading a text file, in words (not an exception's class name)."""
    import gzip

    if isinstance(e, zlib.error):
        return f"corrupt compressed data: {e}"
    if isinstance(e, gzip.BadGzipFile):
        return f"not a valid gzip file: {e}"
    if isinstance(e, EOFError):
        return "the file ends in the middle of its compressed data (truncated)"
    if isinstance(e, UnicodeDecodeError):
        return f"bytes that are not UTF-8 text at byte {e.start}"
    if isinstance(e, csv.Error):
        return f"malformed CSV: {e}"
    return getattr(e, "strerror", None) or str(e)


def _unreadable(path: Path, row_no: int, e: Exception, expected: str) -> DataError:
    return DataError(f"{path}, row {row_no}: cannot read ({_read_fault(e)}); expected {expected}"
                     + (", gzip-compressed" if path.suffix == ".gz" else ""))


def _is_count(text: str) -> bool:
    """A plain non-negative decimal integer: ASCII digits only (int() also takes '+5', '1_0', ' 7' and '٣')."""
    return text.isascii() and text.isdigit()


def _parse_pixels(text: str, where: str) -> np.ndarray:
    """A FER-2013 `pixels` field -> (48, 48) uint8; DataError naming the first bad value otherwise."""
    tokens = text.split()
    try:  # fast path: numpy parses; the cheap checks before it refuse what int() accepts beyond plain digits
        if text.isascii() and "_" not in text and "+" not in text and "-" not in text:
            px = np.array(tokens, dtype=np.int16)
            if len(tokens) == N_PIXELS and px.max() <= 255:
                return px.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE)
    except (ValueError, OverflowError):
        pass
    for k, tok in enumerate(tokens, start=1):
        if not (_is_count(tok) and int(tok) <= 255):
            raise DataError(f"{where}: pixel {k} is {tok!r}; expected {N_PIXELS} space-separated integers 0-255")
    raise DataError(f"{where}: {len(tokens)} pixel values, expected {N_PIXELS} (48x48)")


class _CsvRows:
    """A CSV's header (stripped) and then its data rows as (where, fields): blank lines skipped, short rows refused.
    `row` is the number of the row being read (1: the header), for a message when the file itself is damaged."""

    def __init__(self, path: Path, f):
        self.path, self.row = path, 1
        self._reader = csv.reader(f)
        self.header = [h.strip() for h in next(self._reader, [])]

    def __iter__(self):
        self.row = 2
        for fields in self._reader:
            where = f"{self.path}, row {self.row}"
            self.row += 1
            if not fields:
                continue
            if len(fields) < len(self.header):
                raise DataError(f"{where}: expected {len(self.header)} fields, found {len(fields)}")
            yield where, fields


def read_fer2013_csv(path: str | Path) -> FaceDataset:
    """Read the Kaggle fer2013.csv (or .csv.gz): header emotion,pixels,Usage."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    pixels, labels, usage = [], [], []
    rows = None
    try:
        with _open_text(path) as f:
            rows = _CsvRows(path, f)
            header = rows.header
            if header[:3] != ["emotion", "pixels", "Usage"] and sorted(header) != ["Usage", "emotion", "pixels"]:
                raise DataError(f"{path}: expected columns emotion,pixels,Usage, found {','.join(header) or 'nothing'}")
            col = {name: header.index(name) for name in ("emotion", "pixels", "Usage")}
            for where, row in rows:
                raw_label = row[col["emotion"]].strip()
                if not _is_count(raw_label) or int(raw_label) >= len(EMOTIONS):
                    raise DataError(f"{where}: unknown label {raw_label!r} (expected 0-{len(EMOTIONS) - 1}: "
                                    f"{', '.join(EMOTIONS)})")
                px = _parse_pixels(row[col["pixels"]], where)
                split = row[col["Usage"]].strip()
                if split not in SPLITS:
                    raise DataError(f"{where}: unknown Usage {split!r}; valid: {', '.join(SPLITS)}")
                pixels.append(px)
                labels.append(int(raw_label))
                usage.append(split)
    except _TEXT_READ_ERRORS as e:
        raise _unreadable(path, rows.row if rows else 1, e, "a UTF-8 CSV with columns emotion,pixels,Usage") from e
    if not labels:
        raise DataError(f"{path}: no data rows")
    return FaceDataset(np.stack(pixels), np.array(labels, np.int64), np.array(usage), EMOTIONS, source=str(path))


# The compact file's arrays: name -> (shape after the row count, allowed values, what a value means)
_NPZ_ARRAYS = {
    "pixels": ((IMAGE_SIZE, IMAGE_SIZE), (0, 255), "grey values 0-255"),
    "emotion": ((), (0, len(EMOTIONS) - 1), f"0-{len(EMOTIONS) - 1} ({', '.join(EMOTIONS)})"),
    "usage": ((), (0, len(SPLITS) - 1), ", ".join(f"{i} {s}" for i, s in enumerate(SPLITS))),
    "ferplus_votes": ((len(FERPLUS_COLUMNS),), (0, np.iinfo(np.int32).max), "vote counts 0 or more"),
}
_NPZ_EXPECTED = "the compact FER-2013 .npz(.xz): pixels (N, 48, 48), emotion (N,), usage (N,) [, ferplus_votes (N, 10)]"


def _read_npz_members(source, path: Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz, each member's declared size checked against the bytes it holds before any allocation
    (a flipped bit in a header could otherwise ask for terabytes)."""
    out = {}
    with zipfile.ZipFile(source) as z:
        for info in z.infolist():
            name = info.filename.removesuffix(".npy")
            with z.open(info) as f:
                version = np.lib.format.read_magic(f)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read_header(f)
                if dtype.hasobject:
                    raise DataError(f"{path}: array {name!r} holds Python objects; expected numbers ({_NPZ_EXPECTED})")
                declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
                if declared > info.file_size:
                    raise DataError(f"{path}: array {name!r} declares shape {shape} ({declared:,} bytes) but holds "
                                    f"{info.file_size:,} bytes: truncated or corrupt")
            with z.open(info) as f:
                out[name] = np.lib.format.read_array(f, allow_pickle=False)
    return out


def _check_npz(data: dict[str, np.ndarray], path: Path) -> None:
    for key in ("pixels", "emotion", "usage"):
        if key not in data:
            raise DataError(f"{path}: missing array {key!r}; expected {_NPZ_EXPECTED}")
    n = len(data["emotion"]) if data["emotion"].ndim else 0
    for key, (shape, (lo, hi), meaning) in _NPZ_ARRAYS.items():
        if key not in data:
            continue
        a = data[key]
        if a.shape != (n, *shape):
            raise DataError(f"{path}: array {key!r} has shape {a.shape}; expected {(n, *shape)} "
                            f"(one row per face, {n} faces in 'emotion')")
        if a.dtype.kind not in "iu" and a.size:
            raise DataError(f"{path}: array {key!r} holds {a.dtype} values; expected integers ({meaning})")
        bad = np.flatnonzero(((a < lo) | (a > hi)).reshape(n, -1).any(axis=1)) if a.size else ()
        if len(bad):
            i = int(bad[0])
            shown = a[i] if a[i].size <= 10 else f"a value {a[i][(a[i] < lo) | (a[i] > hi)][0]}"
            raise DataError(f"{path}: row {i} (from 0) of {key!r} is {shown}; expected {meaning}"
                            + (f" ({len(bad)} rows are outside)" if len(bad) > 1 else ""))


def read_compact_npz(path: str | Path) -> FaceDataset:
    """Read the compact copy (fer2013-compact.npz(.xz)): pixels, emotion, usage (0/1/2), ferplus_votes."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        if path.suffix == ".xz":
            with lzma.open(path) as f:
                data = _read_npz_members(io.BytesIO(f.read()), path)
        else:
            data = _read_npz_members(path, path)
    except DataError:
        raise
    # a damaged archive: truncated xz (EOFError, LZMAError), not a zip or a broken one (BadZipFile, zlib.error,
    # struct.error), a broken .npy header or data that ends early (ValueError), an unknown compression method
    # a member header numpy cannot parse (tokenize.TokenError, SyntaxError; RecursionError or MemoryError when
    # deeply nested)
    except (OSError, EOFError, ValueError, lzma.LZMAError, zipfile.BadZipFile, zlib.error, struct.error,
            NotImplementedError, KeyError, tokenize.TokenError, SyntaxError, RecursionError, MemoryError) as e:
        raise DataError(f"{path}: not a readable .npz ({e}); expected {_NPZ_EXPECTED}") from e
    _check_npz(data, path)
    ds = FaceDataset(data["pixels"].astype(np.uint8, copy=False), data["emotion"].astype(np.int64),
                     np.array(SPLITS)[data["usage"]], EMOTIONS, source=str(path))
    if "ferplus_votes" in data:
        ds.ferplus_votes = data["ferplus_votes"]  # kept for with_ferplus()
    return ds


def read_image_folders(root: str | Path) -> FaceDataset:
    """Read `root/{train,test}/<emotion>/*` or `root/images/{train,validation}/<emotion>/*`.

    Folder splits map onto the protocol as train -> Training, validation/val -> PublicTest,
    test -> PrivateTest. Emotion folder names must be FER-2013 classes (any case).
    """
    root = Path(root)
    if (root / "images").is_dir() and not (root / "train").is_dir():
        root = root / "images"
    split_dirs = [d for d in sorted(root.iterdir()) if d.is_dir() and d.name.lower() in FOLDER_SPLITS] if root.is_dir() else []
    if not split_dirs:
        raise DataError(f"{root}: expected sub-folders train/ and test/ (or validation/), each with one folder per emotion")
    pixels, labels, usage = [], [], []
    for split_dir in split_dirs:
        for class_dir in sorted(d for d in split_dir.iterdir() if d.is_dir()):
            name = class_dir.name.lower()
            if name not in EMOTIONS:
                raise DataError(f"{class_dir}: unknown emotion folder {class_dir.name!r}; valid: {', '.join(EMOTIONS)}")
            for img_path in sorted(class_dir.iterdir()):
                if img_path.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                img = cv2.imread(str(img_path), cv2.IMREAD_GRAYSCALE)
                if img is None:
                    raise DataError(f"{img_path}: unreadable image")
                pixels.append(resize_face(img))
                labels.append(EMOTIONS.index(name))
                usage.append(FOLDER_SPLITS[split_dir.name.lower()])
    if not labels:
        raise DataError(f"{root}: no images found")
    return FaceDataset(np.stack(pixels), np.array(labels, np.int64), np.array(usage), EMOTIONS, source=str(root))


def read_ferplus_votes(path: str | Path, n_rows: int | None = None) -> np.ndarray:
    """fer2013new.csv -> (N, 10) int votes in FERPLUS_COLUMNS order (row-aligned with fer2013.csv)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    votes = []
    rows = None
    try:
        with _open_text(path) as f:
            rows = _CsvRows(path, f)
            header = rows.header
            missing = [c for c in FERPLUS_COLUMNS if c not in header]
            if missing:
                raise DataError(f"{path}: missing FER+ columns {', '.join(missing)}; expected the header of "
                                f"fer2013new.csv (Usage,Image name,{','.join(FERPLUS_COLUMNS)})")
            cols = [header.index(c) for c in FERPLUS_COLUMNS]
            for where, row in rows:
                raw = [row[c].strip() for c in cols]
                bad = next((k for k, v in enumerate(raw) if not (_is_count(v) and len(v) <= 9)), None)
                if bad is not None:
                    raise DataError(f"{where}: vote counts must be integers 0 or more; "
                                    f"{FERPLUS_COLUMNS[bad]} is {raw[bad]!r}")
                votes.append([int(v) for v in raw])
    except _TEXT_READ_ERRORS as e:
        raise _unreadable(path, rows.row if rows else 1, e, "fer2013new.csv: a UTF-8 CSV of FER+ vote counts") from e
    votes = np.array(votes, np.int64).reshape(-1, len(FERPLUS_COLUMNS))
    if n_rows is not None and len(votes) != n_rows:
        raise DataError(f"{path}: {len(votes)} rows, but fer2013.csv has {n_rows}; the files must be row-aligned")
    return votes


def ferplus_targets(votes: np.ndarray, mode: str = "majority") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FER+ votes (N, 10) -> (keep mask (N,), hard labels (N,), soft targets (N, 8)).

    FER+ reference protocol: drop single votes (noise), keep a face if one emotion holds more than
    half of the remaining votes and that class is neither `unknown` nor `NF` ("majority"), or, for
    "soft", if any emotion votes remain after that cleaning and unknown/NF do not dominate.
    """
    v = votes.astype(np.float64).copy()
    v[v == 1] = 0                               # single votes are treated as annotator noise
    total = v.sum(axis=1)
    emo = v[:, :len(FERPLUS_EMOTIONS)]          # (N, 8), drops unknown and NF
    top = v.argmax(axis=1)
    if mode == "majority":
        keep = (total > 0) & (v.max(axis=1) > total / 2) & (top < len(FERPLUS_EMOTIONS))
    elif mode == "soft":
        keep = (emo.sum(axis=1) > 0) & (top < len(FERPLUS_EMOTIONS))
    else:
        raise ValueError(f"unknown FER+ mode {mode!r}; valid: majority, soft")
    soft = np.zeros_like(emo, dtype=np.float32)
    soft[keep] = (emo[keep] / emo[keep].sum(axis=1, keepdims=True)).astype(np.float32)
    hard = emo.argmax(axis=1).astype(np.int64)
    return keep, hard, soft


def with_ferplus(ds: FaceDataset, votes: np.ndarray, mode: str = "majority") -> FaceDataset:
    """Relabel a fer2013.csv-aligned dataset with FER+ targets, dropping faces FER+ does not keep."""
    if len(votes) != len(ds):
        raise DataError(f"FER+ votes have {len(votes)} rows, the dataset {len(ds)}; they must be row-aligned")
    keep, hard, soft = ferplus_targets(votes, mode)
    out = FaceDataset(ds.pixels, hard, ds.usage, FERPLUS_EMOTIONS, soft, ds.source + " + FER+ " + mode, ds.index)
    return out.select(keep)


def load_dataset(path: str | Path) -> FaceDataset:
    """Open any supported layout by looking at what `path` is."""
    path = Path(path)
    name = path.name.lower()
    if path.is_dir():
        split_dirs = [d for d in path.iterdir() if d.is_dir() and d.name.lower() in (*FOLDER_SPLITS, "images")]
        if not split_dirs:  # FER-2013's own folder (fer2013.csv.gz beside its README), as FERKIT_DATA names it
            try:
                return load_dataset(fer2013_file(path))
            except FileNotFoundError:
                pass  # read_image_folders says what a folder should hold
        return read_image_folders(path)
    if name.endswith((".npz", ".npz.xz")):
        return read_compact_npz(path)
    if name.endswith((".csv", ".csv.gz")):
        return read_fer2013_csv(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    raise DataError(f"{path}: unsupported data file; expected fer2013.csv(.gz), an .npz(.xz) or an image folder")


def fer2013_file(directory: str | Path | None = None) -> Path:
    """The fastest FER-2013 file in `directory` (default: $FERKIT_DATA): the compact .npz.xz copy when there, else
    fer2013.csv.gz or fer2013.csv. FileNotFoundError names the folder otherwise, or says that none was given."""
    import os

    if directory is None and not os.environ.get("FERKIT_DATA"):
        raise FileNotFoundError("no FER-2013 folder given: pass one or set FERKIT_DATA to the folder that holds "
                                "fer2013.csv(.gz) or fer2013-compact.npz.xz")
    d = Path(directory if directory is not None else os.environ["FERKIT_DATA"])
    for name in ("fer2013-compact.npz.xz", "fer2013-compact.npz", "fer2013.csv.gz", "fer2013.csv"):
        if (d / name).is_file():
            return d / name
    raise FileNotFoundError(f"{d}: no FER-2013 here (fer2013.csv(.gz) or fer2013-compact.npz.xz); "
                            "set FERKIT_DATA to the folder that holds it")
