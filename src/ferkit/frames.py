"""One source of video frames for every command that reads video (`ferkit video`, `ferkit live`, `ferkit batch`):
open a file (`open_video`), choose frames (every n-th, or so many per second, within a range of frames), and read
them with the rules about damage written once (`FrameReader`):

- a frame that fails to decode, followed by one that decodes, is skipped (and said, as it is met);
- MAX_FAILED_READS failures in a row, when the container announced more frames, end the file there: it is
  truncated or damaged, and the frames before were read;
- failures in the last 1 % of the announced frames (at least 2) are the end: containers estimate their length;
- a range of frames ends where it was asked to, unless failures run over its end: then it reads on (without
  yielding) until a good frame shows they were skipped frames, or the rule above ends the file;
- a file that gives no frame at all raises VideoError (a range from the middle that meets only failures is an
  early end at its start).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

# Failed reads in a row after which the file is taken to end there (damaged or truncated), when the
# container announced more frames: isolated bad frames are skipped, a damaged tail stops the loop.
MAX_FAILED_READS = 25


class VideoError(ValueError):
    """A video that cannot be opened or decoded: not a video, an unsupported codec, or a damaged file."""


@dataclass
class VideoInfo:
    path: str
    fps: float
    frame_count: int          # as announced by the container (0 when unknown)
    width: int
    height: int

    @property
    def duration(self) -> float:
        return self.frame_count / self.fps if self.fps else 0.0


def open_video(path: str | Path) -> tuple[cv2.VideoCapture, VideoInfo]:
    """An opened capture and the video's facts; FileNotFoundError / VideoError with the reason otherwise."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise VideoError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        with open(path, "rb") as fh:
            head = fh.read(8)
        raise VideoError(f"{path}: not a video OpenCV can read (starts with {head!r}); "
                         f"a damaged or truncated file, or an unsupported format")
    if cap.get(cv2.CAP_PROP_FRAME_COUNT) <= 1 and cv2.haveImageReader(str(path)):
        cap.release()
        raise VideoError(f"{path}: a still image, not a video (use `ferkit analyze` for photos)")
    fps = cap.get(cv2.CAP_PROP_FPS)
    info = VideoInfo(str(path), fps if fps and 0 < fps < 1000 else 30.0, max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))),
                     int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    return cap, info


def quiet_opencv() -> None:
    """For the CLI edges: OpenCV's and FFmpeg's own log lines (a missing camera, a damaged frame) repeat what
    ferkit reports in its own words, so keep OpenCV's errors only and silence FFmpeg's."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # read when FFmpeg is first used
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


# ---------------------------------------------------------------- which frames
def every_nth(every: int) -> Callable[[int], bool]:
    """Frames 0, n, 2n ...: `ferkit video --every N`."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    return lambda index: index % every == 0


def is_sampled(frame: int, video_fps: float, fps: float) -> bool:
    """Whether frame `frame` is analysed at `fps` frames a second: the first frame of each 1/fps interval of video
    time (every frame when fps >= the video's rate). Depends on the index alone, so every segment of a video
    agrees (`ferkit batch --fps`)."""
    if fps >= video_fps or frame == 0:
        return True
    return math.floor(frame * fps / video_fps + 1e-9) != math.floor((frame - 1) * fps / video_fps + 1e-9)


def per_second(video_fps: float, fps: float) -> Callable[[int], bool]:
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    return lambda index: is_sampled(index, video_fps, fps)


def frame_range(info: VideoInfo, start_s: float | None = None, end_s: float | None = None) -> tuple[int, int | None]:
    """Frames [start, stop) for a range in seconds (None: from the start / to the end); ValueError for a range
    that is empty or starts after the video's announced end."""
    if start_s is not None and start_s < 0 or end_s is not None and end_s <= 0:
        raise ValueError(f"a time range needs start >= 0 and end > 0 seconds, got {start_s} to {end_s}")
    if start_s is not None and end_s is not None and end_s <= start_s:
        raise ValueError(f"the time range's end ({end_s:g} s) must come after its start ({start_s:g} s)")
    start = 0 if start_s is None else int(round(start_s * info.fps))
    if info.frame_count and start >= info.frame_count:
        raise ValueError(f"{info.path}: starts at {start_s:g} s, after its end ({info.duration:.2f} s)")
    stop = None if end_s is None else int(math.ceil(end_s * info.fps))
    return start, stop


# ---------------------------------------------------------------- reading
def skip_message(index: int) -> str:
    return f"frame {index}: could not be decoded, skipped"


def truncation_message(info: VideoInfo, at: int, name: str | None = None) -> str:
    return (f"{name or info.path}: video ends at frame {at} of the {info.frame_count} it announces "
            f"(truncated or damaged); frames before that were analysed")


@dataclass
class Frame:
    index: int                    # the frame's position in the file
    image: np.ndarray | None      # BGR; None: a frame chosen but damaged (skipped), said once through on_problem
    chosen: bool                  # whether `choose` picked it (False: decoded only because decode_all)


@dataclass
class FrameReader:
    """Frames of an opened capture, from `start` (the index of the capture's next frame: seek first, or read some
    by hand and count them in `frames_read`) to `stop` (None: the end), with the rules above. Yields the frames
    `choose(index)` picks (all when None), and every other one too, decoded, with `decode_all` (an annotated copy
    keeps every frame); a chosen frame that fails to decode is yielded with image None once the next good frame
    shows it was skipped. `on_problem(message)` hears each skipped frame and an early end as met. After the loop:
    frames_read, skipped, truncated_at (the first frame never read, when the file ends early)."""
    cap: cv2.VideoCapture
    info: VideoInfo
    start: int = 0
    stop: int | None = None
    choose: Callable[[int], bool] | None = None
    decode_all: bool = False
    on_problem: Callable[[str], None] | None = None
    name: str | None = None       # the file's name in messages (default: info.path)
    frames_read: int = 0
    skipped: list[int] = field(default_factory=list)
    truncated_at: int | None = None

    @property
    def problems(self) -> list[str]:
        out = [skip_message(i) for i in self.skipped]
        if self.truncated_at is not None:
            out.append(truncation_message(self.info, self.truncated_at, self.name))
        return out

    def _chosen(self, index: int) -> bool:
        return self.choose is None or self.choose(index)

    def _skip(self, failed: list[int]) -> Iterator[Frame]:
        for i in failed:
            self.skipped.append(i)
            if self.on_problem:
                self.on_problem(skip_message(i))
            if self._chosen(i):
                yield Frame(i, None, True)

    def __iter__(self) -> Iterator[Frame]:
        index, failed, streak, announced = self.start, [], 0, self.info.frame_count  # streak: failures in a row
        stop = self.stop if self.stop is not None else float("inf")
        while index < stop or failed:  # past `stop` only to see whether failures before it were skipped frames
            ours = index < stop
            chosen = ours and self._chosen(index)
            decode = chosen or (ours and self.decode_all)
            ok = self.cap.grab()
            image = self.cap.retrieve()[1] if ok and decode else None
            if ok and (image is not None or not decode):
                yield from self._skip(failed)   # bad frames followed by a good one: skipped, not the end
                failed, streak = [], 0
                if not ours:
                    break
                self.frames_read += 1
                if decode:
                    yield Frame(index, image, chosen)
            else:
                if announced == 0 or index >= announced or streak >= MAX_FAILED_READS:
                    break
                streak += 1
                if ours:
                    failed.append(index)
            index += 1
        # Containers sometimes estimate their frame count: failures in the last 1 % (at least 2 frames) are the end.
        if failed and failed[0] < announced - max(2, announced // 100):
            self.truncated_at = failed[0]
        if self.frames_read == 0 and (self.start == 0 or self.truncated_at is None):
            raise VideoError(f"{self.name or self.info.path}: no frame could be decoded"
                             + (f" from frame {self.start}" if self.start else ""))
        if self.truncated_at is not None and self.on_problem:
            self.on_problem(truncation_message(self.info, self.truncated_at, self.name))


def seek(cap: cv2.VideoCapture, start: int) -> None:
    """Put the capture's next frame at `start`."""
    if start:
        cap.set(cv2.CAP_PROP_POS_FRAMES, start)
