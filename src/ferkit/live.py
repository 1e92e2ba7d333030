"""Real time on the desktop: `ferkit live` over a camera or a video file (the command: ferkit.cli.live).

Each frame: `FaceTracker` (detection every few frames on a downscaled copy, faces followed in between, stable
ids, optional smoothing) -> a box, `#id emotion %` and a small probability bar chart per face, FPS in the corner.
The picture goes to a desktop window (`q` or Esc quits), or with `--no-window` one JSON line per frame goes to
stdout instead.

The window: OpenCV's own (cv2.imshow) where OpenCV was built with a GUI (the `opencv-python` wheel), else a
Tk window (tkinter + Pillow) because ferkit depends on `opencv-python-headless`, which has no windows; the
frames are drawn with OpenCV either way. The two OpenCV wheels must not be installed together (they share the
`cv2` folder), so ferkit never asks for both.
"""
from __future__ import annotations

import os
import re
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from .annotate import EMOTION_COLORS_BGR, draw_tracked
from .frames import FrameReader, VideoError, VideoInfo, open_video
from .track import FaceTracker, TrackedFace

WINDOW_TITLE = "ferkit live"
QUIT_KEYS = {ord("q"), ord("Q"), 27}   # q, Q, Esc
GUI_HELP = ("use --no-window for JSON lines, or get a window: install tkinter (Debian/Ubuntu: "
            "apt install python3-tk; it comes with the python.org installers), or replace OpenCV with its GUI build: "
            "pip uninstall -y opencv-python-headless && pip install 'opencv-python>=4.8,<5' "
            "(never keep both: they overwrite each other's files)")


class SourceError(ValueError):
    """A camera that cannot be opened or gives no frames, or a source that stops working."""


class GuiUnavailableError(RuntimeError):
    """No way to open a desktop window here (no display, or neither an OpenCV GUI build nor tkinter)."""


# ---------------------------------------------------------------- sources
@dataclass
class Source:
    cap: cv2.VideoCapture
    name: str          # "camera 0" or the file's path
    is_file: bool
    first: np.ndarray  # the first frame, read while opening to prove the source works
    info: VideoInfo | None = None  # a file's facts (frame rate, frame count, size); None for a camera

    @property
    def fps(self) -> float:
        """The file's frame rate (for pacing); 0 for cameras."""
        return self.info.fps if self.info else 0.0


def open_source(camera: int | None = 0, path: str | Path | None = None) -> Source:
    """A camera by index or a video file, with its first frame read; SourceError / VideoError / FileNotFoundError
    with the reason when it cannot give frames."""
    if path is not None:
        cap, info = open_video(path)
        ok, frame = cap.read()
        if not ok or frame is None:
            cap.release()
            raise VideoError(f"{path}: opened, but its first frame cannot be decoded")
        return Source(cap, str(path), True, frame, info)
    if camera is None or camera < 0:
        raise SourceError(f"camera index must be >= 0, got {camera}")
    cap = cv2.VideoCapture(camera)
    if not cap.isOpened():
        raise SourceError(f"camera {camera}: cannot be opened: no camera with that index, no permission, or another "
                          f"program is using it (try another --camera N, or --source FILE)")
    ok, frame = cap.read()
    if not ok or frame is None:
        cap.release()
        raise SourceError(f"camera {camera}: opened but gives no frames (busy with another program, or not a capture device)")
    return Source(cap, f"camera {camera}", False, frame)


@dataclass
class LiveFrame:
    index: int
    time: float                 # seconds: the position in a file, or since the start for a camera
    image: np.ndarray           # the BGR frame as read
    faces: list[TrackedFace]
    fps: float                  # end-to-end frames per second over the last ~second


def source_frames(source: Source, loop: bool = False,
                  on_problem: Callable[[str], None] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(index in the source, BGR frame) from the first frame on. A file is read through ferkit.frames (damaged
    frames skipped as `ferkit video` and `ferkit batch` skip them), and ends normally or, with `loop`, restarts at
    index 0; a camera that stops giving frames raises SourceError. `on_problem(message)` is told each skipped frame
    and an early end, in ferkit.frames' words, as they are met and once each, even when looping."""
    yield 0, source.first
    if not source.is_file:
        n = 1
        while True:
            ok, frame = source.cap.read()
            if not ok or frame is None:
                raise SourceError(f"{source.name}: stopped giving frames after {n} (disconnected?)")
            yield n, frame
            n += 1
    told: set[str] = set()

    def tell(problem: str) -> None:
        if problem not in told:  # a looped file meets the same damage on every pass
            told.add(problem)
            on_problem(problem)

    start, read = 1, 1  # frame 0 was read by open_source
    while True:
        for frame in FrameReader(source.cap, source.info, start=start, frames_read=read,
                                 on_problem=tell if on_problem else None):
            if frame.image is not None:  # None: a damaged frame, skipped (and told)
                yield frame.index, frame.image
        if not loop:
            return
        source.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        start, read = 0, 0


def live_frames(source: Source, tracker: FaceTracker, *, loop: bool = False, pace: bool = True,
                on_problem: Callable[[str], None] | None = None) -> Iterator[LiveFrame]:
    """Frames with their tracked faces until the source ends. A file ends normally (or restarts with `loop`);
    a camera that stops giving frames raises SourceError. `pace`: play a file at its own frame rate.
    `on_problem(message)`: told of a file's skipped frames and early end (see `source_frames`)."""
    stamps: deque[float] = deque(maxlen=31)
    start = time.perf_counter()
    for index, (file_index, frame) in enumerate(source_frames(source, loop, on_problem)):
        if index and file_index == 0:  # a looped file starts again: faces from its end are not these faces
            tracker.reset()
        if source.is_file and pace and source.fps:
            delay = start + index / source.fps - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1 / source.fps:  # running late: carry on from here rather than rush to catch up
                start -= delay
        faces = tracker.process(frame)
        now = time.perf_counter()
        stamps.append(now)
        fps = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0
        t = file_index / source.fps if source.is_file else now - start
        yield LiveFrame(index, t, frame, faces, fps)


def frame_record(lf: LiveFrame) -> dict:
    """One frame as the JSON object `--no-window` prints."""
    faces = [f.to_dict(decimals=4) for f in lf.faces]
    return {"frame": lf.index, "time": round(lf.time, 3), "fps": round(lf.fps, 1), "faces": faces}


# ---------------------------------------------------------------- drawing
def draw_live(image: np.ndarray, faces: list[TrackedFace], fps: float, labels) -> np.ndarray:
    """The frame with boxes, '#id emotion %' labels, a probability bar chart per face and the FPS; with face
    features (--features), the face's strongest action units and its head pose under the chart."""
    out = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    text = f"{fps:4.1f} fps  {len(faces)} face{'' if len(faces) == 1 else 's'}  q/Esc: quit"
    cv2.rectangle(out, (0, 0), (8 + 8 * len(text), 24), (0, 0, 0), -1)   # first: face labels go over it
    cv2.putText(out, text, (5, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    draw_tracked(out, faces, inplace=True)   # `out` is already this function's own copy
    for f in faces:
        panel = draw_bars(out, f, labels)
        draw_features(out, f, panel)
    return out


def draw_bars(img: np.ndarray, face: TrackedFace, labels, bar_w: int = 70, row_h: int = 12) -> tuple[int, int, int, int]:
    """A small chart beside the face's box: one bar per emotion, in the emotion's box colour, in place.
    -> the panel's x, y, w, h."""
    x, y, w, h = face.box
    panel_w, panel_h = 34 + bar_w + 6, row_h * len(labels) + 6
    H, W = img.shape[:2]
    px = x + w + 4 if x + w + 4 + panel_w <= W else max(0, x - panel_w - 4)
    py = min(max(0, y), max(0, H - panel_h))
    _darken(img, px, py, panel_w, panel_h)
    for k, label in enumerate(labels):
        p = face.probabilities.get(label, 0.0)
        ry = py + 3 + k * row_h
        cv2.putText(img, label[:3], (px + 3, ry + row_h - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 255), 1, cv2.LINE_AA)
        x0 = px + 34
        cv2.rectangle(img, (x0, ry + 2), (x0 + bar_w, ry + row_h - 2), (70, 70, 70), -1)
        cv2.rectangle(img, (x0, ry + 2), (x0 + max(1, int(round(bar_w * p))), ry + row_h - 2),
                      EMOTION_COLORS_BGR.get(label, (0, 255, 0)), -1)
    return px, py, panel_w, panel_h


SHOWN_AUS = 3        # the strongest action units shown per face
AU_BAR_COLOR = (255, 255, 0)  # BGR cyan: apart from every emotion's colour


def draw_features(img: np.ndarray, face: TrackedFace, panel: tuple[int, int, int, int], row_h: int = 12) -> None:
    """Under the chart (above it where the frame ends): the face's SHOWN_AUS strongest action units, each with a bar,
    and its head pose as 'yaw pitch roll' in degrees; nothing for a face without those features."""
    lines: list[tuple[str, float | None]] = []
    if face.action_units:
        top = sorted(face.action_units.items(), key=lambda kv: -kv[1])[:SHOWN_AUS]
        lines += [(name, value) for name, value in top]
    if face.head_pose:
        q = face.head_pose
        lines.append((f"yaw {q['yaw']:+.0f} pitch {q['pitch']:+.0f} roll {q['roll']:+.0f}", None))
    if not lines:
        return
    px, py, pw, ph = panel
    height = row_h * len(lines) + 6
    H = img.shape[0]
    top_y = py + ph if py + ph + height <= H else max(0, py - height)
    _darken(img, px, top_y, pw, height)
    for k, (text, value) in enumerate(lines):
        ry = top_y + 3 + k * row_h
        cv2.putText(img, text, (px + 3, ry + row_h - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 255), 1, cv2.LINE_AA)
        if value is not None:
            x0, bar_w = px + 34, pw - 40
            cv2.rectangle(img, (x0, ry + 2), (x0 + bar_w, ry + row_h - 2), (70, 70, 70), -1)
            cv2.rectangle(img, (x0, ry + 2), (x0 + max(1, int(round(bar_w * min(1.0, value)))), ry + row_h - 2),
                          AU_BAR_COLOR, -1)


def _darken(img: np.ndarray, x: int, y: int, w: int, h: int) -> None:
    """Darken a panel's background so its text and bars read on any picture."""
    roi = img[y:y + h, x:x + w]
    roi[:] = (roi * 0.35).astype(np.uint8)


# ---------------------------------------------------------------- windows
def opencv_has_gui() -> bool:
    """Whether this OpenCV build can open windows (False for opencv-python-headless)."""
    m = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    return bool(m) and m.group(1).upper() != "NONE"


class OpenCVWindow:
    def __init__(self, title: str):
        self.title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)  # no Qt toolbar: just the picture
        except cv2.error as e:
            raise GuiUnavailableError(f"OpenCV cannot open a window ({str(e).strip().splitlines()[-1]}); {GUI_HELP}") from e

    def show(self, image: np.ndarray) -> bool:
        """Display a BGR image; False once the user pressed q / Esc or closed the window."""
        cv2.imshow(self.title, image)
        key = cv2.waitKey(1)
        if key != -1 and (key & 0xFF) in QUIT_KEYS:
            return False
        return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        cv2.destroyWindow(self.title)
        cv2.waitKey(1)


class TkWindow:
    def __init__(self, title: str):
        try:
            import tkinter as tk

            from PIL import Image, ImageTk
        except ImportError as e:
            raise GuiUnavailableError(f"this OpenCV build has no windows and tkinter is missing ({e}); {GUI_HELP}") from e
        self._image_cls, self._photo_cls, self._tcl_error = Image, ImageTk.PhotoImage, tk.TclError
        try:
            self.root = tk.Tk()
        except tk.TclError as e:
            raise GuiUnavailableError(f"cannot open a window ({e}); use --no-window on machines without a display") from e
        self.root.title(title)
        self.label = tk.Label(self.root, borderwidth=0)
        self.label.pack()
        self.open = True
        self.root.bind("<KeyPress>", self._key)
        self.root.protocol("WM_DELETE_WINDOW", self._closed)

    def _key(self, event) -> None:
        if event.keysym in ("q", "Q", "Escape"):
            self.open = False

    def _closed(self) -> None:
        self.open = False

    def show(self, image: np.ndarray) -> bool:
        """Display a BGR image; False once the user pressed q / Esc or closed the window."""
        if not self.open:
            return False
        try:
            photo = self._photo_cls(self._image_cls.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)), master=self.root)
            self.label.configure(image=photo)
            self.label.image = photo  # Tk keeps no reference of its own
            self.root.update()
        except self._tcl_error:      # the window is gone (closed by the window manager or the display)
            self.open = False
        return self.open

    def close(self) -> None:
        try:
            self.root.destroy()
        except Exception:  # already destroyed by the window manager: nothing left to close
            pass


def open_window(title: str = WINDOW_TITLE, backend: str = "auto"):
    """A window with show(image) -> still open? and close(). backend: "auto" (OpenCV if it has a GUI, else Tk),
    "opencv" or "tk". Raises GuiUnavailableError saying what to install or do."""
    if backend not in ("auto", "opencv", "tk"):
        raise ValueError(f"unknown window backend {backend!r}; valid: auto, opencv, tk")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise GuiUnavailableError("no display ($DISPLAY is not set): run on a desktop session, or use --no-window")
    if backend == "opencv" or (backend == "auto" and opencv_has_gui()):
        if not opencv_has_gui():
            raise GuiUnavailableError(f"this OpenCV build ({cv2.__version__}, probably opencv-python-headless) has no windows; {GUI_HELP}")
        return OpenCVWindow(title)
    return TkWindow(title)
