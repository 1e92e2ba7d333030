"""What to analyse: INPUT arguments -> files (folders walked, manifests read) -> tasks -> chunks.

A task is one image or one segment of a video (a run of frames, sampled at `fps`); a chunk is the tasks one worker
takes at once (images in batches, a video segment alone). The plan is a pure function of the inputs and settings,
so a rerun makes the same tasks with the same keys: that is what resuming relies on. Each task keeps its source as
the user gave it (the `source` column, and the messages) and the absolute path made from it on the driver, which
is what workers open: a Ray worker's working directory is the one its node was started in. Every stage is a
generator, and the paths already seen are kept in a temporary SQLite table on disk: a manifest of millions of
entries is never all in the driver's memory (ledger.py keeps the plan).
"""
from __future__ import annotations

import csv
import math
import os
import sqlite3
from collections import deque
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Iterable, Iterator

from ..frames import is_sampled
from ..images import IMAGE_SUFFIXES

IMAGE_EXTS = set(IMAGE_SUFFIXES)  # the decoder's own list, the same for every command
VIDEO_EXTS = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts"}
MANIFEST_EXTS = {".txt", ".csv"}
DEFAULT_FPS = 5.0          # video frames analysed per second of video
BATCH_SIZE = 16            # images per chunk: the faces of a chunk are classified together
SEGMENT_SAMPLES = 50       # analysed frames per video task (10 s at 5 fps): the unit of work and of resuming


@dataclass(frozen=True, slots=True)  # slots: a 100,000-entry manifest is 100,000 of these on the driver
class Task:
    """One image, or frames [start, stop) of a video (stop None: to the end), of which those `sampled` are analysed."""
    index: int                 # position in the plan: the output's row order
    source: str
    kind: str                  # "image" | "video"
    start: int = 0
    stop: int | None = None
    video_fps: float = 0.0     # the video's own frame rate (0 when it could not be opened while planning)
    units: int = 1             # images or analysed frames, for the progress bar
    path: str = ""             # the file to open: `source` made absolute on the driver (workers may run elsewhere);
                               # "" when that is `source` itself (an absolute path as written)

    @property
    def file(self) -> str:
        return self.path or self.source

    @property
    def key(self) -> str:
        return self.source if self.kind == "image" else f"{self.source}#{self.start}"


@dataclass(frozen=True)
class Chunk:
    id: int
    tasks: tuple[Task, ...]
    attempt: int = 0           # 1 on the retry after a worker died

    @property
    def units(self) -> int:
        return sum(t.units for t in self.tasks)


def expand_inputs(inputs, glob: str | None = None, column: str | None = None) -> Iterator[str]:
    """Image and video paths, in order, without repeats, as they are found: files as given, folders walked
    recursively (sorted; only image and video extensions, and only names or relative paths matching `glob` when
    given), manifests (.txt: a path a line, '#' comments; .csv: the `column` named, default "path", else the first)
    read line by line, relative paths in them taken from the manifest's folder. A missing file stays in the list:
    it becomes an error row."""
    seen = sqlite3.connect("")  # "": a private temporary database on disk, deleted when closed
    try:
        seen.execute("CREATE TABLE seen (path TEXT PRIMARY KEY) WITHOUT ROWID")
        for item in inputs:
            for path in _expand(Path(item), glob, column):
                if seen.execute("INSERT OR IGNORE INTO seen VALUES (?)", (str(path),)).rowcount:
                    yield str(path)
    finally:
        seen.close()


def _expand(path: Path, glob: str | None, column: str | None, depth: int = 0):
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            rel = p.relative_to(path).as_posix()
            if p.is_file() and p.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS and not _hidden(rel) and \
                    (glob is None or fnmatch(rel, glob) or fnmatch(p.name, glob)):
                yield p
    elif path.suffix.lower() in MANIFEST_EXTS and path.is_file() and depth == 0:
        for entry in read_manifest(path, column):
            yield from _expand(entry, glob, column, depth + 1)
    else:
        yield path


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in rel.split("/"))


def read_manifest(path: Path, column: str | None = None) -> Iterator[Path]:
    """The paths a .txt (one a line) or .csv (a named column) manifest lists, relative ones from its folder, read as
    they are asked for."""
    base = path.parent
    with open(path, newline="" if path.suffix.lower() == ".csv" else None, encoding="utf-8-sig") as fh:
        if path.suffix.lower() == ".txt":
            entries = (ln.strip() for ln in fh)
            entries = (e for e in entries if e and not e.startswith("#"))
        else:
            reader = csv.DictReader(fh)
            fields = reader.fieldnames or []
            name = column or ("path" if "path" in fields else (fields[0] if fields else None))
            if name not in fields:
                raise ValueError(f"{path}: no column {name!r}; columns: {', '.join(fields) or '(none)'}")
            entries = (row[name].strip() for row in reader if (row.get(name) or "").strip())
        for e in entries:
            yield Path(e) if Path(e).is_absolute() else Path(tidy(str(base / e)))


def tidy(path: str) -> str:
    """`path` with its `.` and `x/..` steps removed (lists/../broken/x.png -> broken/x.png) where that names the same
    file; kept as written where a `..` follows a symbolic link (link/../x is in the link target's parent, not here)."""
    short = os.path.normpath(path)
    return short if os.path.realpath(short) == os.path.realpath(path) else path


def absolute(path: str) -> str:
    """The path a worker opens: `path` from the driver's working directory, tidied only where that is correct
    (os.path.abspath would tidy through symbolic links too)."""
    return tidy(os.path.join(os.getcwd(), path))


def plan(paths: Iterable[str], fps: float = DEFAULT_FPS, segment_samples: int = SEGMENT_SAMPLES) -> Iterator[Task]:
    """One task per image, and per video one per `segment_samples` analysed frames (a video that cannot be opened
    now, or of unknown length, is one task: the worker reports its error or reads it to the end), as the paths
    come."""
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    index = 0
    for source in paths:
        path = absolute(source)
        path = "" if path == source else path  # one string, not two, for absolute entries
        if Path(source).suffix.lower() not in VIDEO_EXTS:
            yield Task(index, source, "image", path=path)
            index += 1
            continue
        video_fps, count = _probe(path or source)
        if not video_fps or count <= 0:
            yield Task(index, source, "video", 0, None, video_fps, 1, path)
            index += 1
            continue
        step = max(1, math.ceil(segment_samples * video_fps / min(fps, video_fps)))
        for start in range(0, count, step):
            stop = min(count, start + step)
            units = sum(is_sampled(i, video_fps, fps) for i in range(start, stop))
            # the last segment runs to the end: containers sometimes announce fewer frames than they hold
            yield Task(index, source, "video", start, None if stop == count else stop, video_fps, units, path)
            index += 1


def _probe(source: str) -> tuple[float, int]:
    from ..frames import VideoError, open_video

    try:
        cap, info = open_video(source)
    except (OSError, VideoError):
        return 0.0, 0
    cap.release()
    return info.fps, info.frame_count


def chunks(tasks: Iterable[Task], batch_size: int = BATCH_SIZE) -> Iterator[Chunk]:
    """Consecutive images in groups of `batch_size`; each video segment alone; as the tasks come."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    group: list[Task] = []
    for t in tasks:
        if t.kind == "image":
            group.append(t)
            if len(group) == batch_size:
                yield Chunk(group[0].index, tuple(group))
                group = []
        else:
            if group:
                yield Chunk(group[0].index, tuple(group))
                group = []
            yield Chunk(t.index, (t,))
    if group:
        yield Chunk(group[0].index, tuple(group))


class Pending:
    """The chunks an engine has still to send: those put back (a dead worker's) first, then the rest of `todo`,
    read only as they are needed (the chunks of a long plan are never all in memory)."""

    def __init__(self, todo: Iterable[Chunk]):
        self.back: deque[Chunk] = deque()
        self.rest = iter(todo)

    def __bool__(self) -> bool:
        if not self.back:
            chunk = next(self.rest, None)
            if chunk is not None:
                self.back.append(chunk)
        return bool(self.back)

    def first(self) -> Chunk:
        """The next chunk to send (only when there is one: bool(self))."""
        return self.back[0]

    def popleft(self) -> Chunk:
        return self.back.popleft()

    def extendleft(self, chunks: Iterable[Chunk]) -> None:
        """Put `chunks` back in front, the last one given first (deque.extendleft's order)."""
        self.back.extendleft(chunks)
