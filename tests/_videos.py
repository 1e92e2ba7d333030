"""Short test videos built from real FER-2013 faces moving across a 640x480 canvas (for track/video/live tests)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tests.conftest import pad_face

WIDTH, HEIGHT = 640, 480
FACE_SIZE = 110      # side of the face itself; the replicated border around it makes the patch ~200 px


@dataclass
class Scene:
    path: Path
    fps: float
    n_frames: int
    labels: list[int]                              # FER-2013 label of each face, top to bottom
    boxes: list[list[tuple[int, int, int, int]]]   # per frame, per face: where the face itself was pasted


def pick_faces(detectable_faces, emotions: list[int]) -> list[np.ndarray]:
    """Detectable PrivateTest faces in PrivateTest order, one per wanted label (FER-2013 label numbers); a label
    asked for again gets the next face with that label."""
    faces, labels = detectable_faces
    out, used = [], {}
    for e in emotions:
        idx = np.flatnonzero(labels == e)
        k = used.get(e, 0)
        if len(idx) <= k:
            raise AssertionError(f"not enough detectable faces with label {e}")
        out.append(faces[idx[k]])
        used[e] = k + 1
    return out


def canvas(i: int = 0) -> np.ndarray:
    """A mildly textured background: a smooth gradient, no face-like structure."""
    x = np.linspace(60, 120, WIDTH, dtype=np.float32)
    y = np.linspace(0, 40, HEIGHT, dtype=np.float32)[:, None]
    return np.clip(x[None, :] + y, 0, 255).astype(np.uint8)


def render(faces48: list[np.ndarray], t: float) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Frame at time fraction t in [0, 1]: face k moves horizontally in its own row (alternating direction)."""
    grey = canvas()
    boxes = []
    rows = len(faces48)
    for k, f in enumerate(faces48):
        patch = pad_face(f, FACE_SIZE, 0.4)
        ph, pw = patch.shape
        span = WIDTH - pw
        x = int(round(span * (t if k % 2 == 0 else 1 - t)))
        y = int(round((HEIGHT - ph) * (k / max(1, rows - 1)))) if rows > 1 else (HEIGHT - ph) // 2
        grey[y:y + ph, x:x + pw] = patch
        pad = (pw - FACE_SIZE) // 2
        boxes.append((x + pad, y + pad, FACE_SIZE, FACE_SIZE))
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), boxes


def make_video(path: Path, faces48: list[np.ndarray], labels: list[int], *, n_frames: int = 45, fps: float = 15.0,
               fourcc: str = "mp4v") -> Scene:
    path = Path(path)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (WIDTH, HEIGHT))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} to {path}"
    all_boxes = []
    for i in range(n_frames):
        frame, boxes = render(faces48, i / max(1, n_frames - 1))
        writer.write(frame)
        all_boxes.append(boxes)
    writer.release()
    return Scene(path, fps, n_frames, list(labels), all_boxes)


def make_grid_video(path: Path, faces48: list[np.ndarray], labels: list[int], *, n_frames: int = 20, fps: float = 15.0,
                    face_size: int = 80) -> Scene:
    """Up to 6 faces in a 3x2 grid (row by row), drifting 16 px sideways and back: many faces in one clip."""
    path = Path(path)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (WIDTH, HEIGHT))
    assert writer.isOpened()
    patches = [pad_face(f, face_size, 0.4) for f in faces48]
    ph = patches[0].shape[0]
    pad = (ph - face_size) // 2
    all_boxes = []
    for i in range(n_frames):
        grey = canvas()
        drift = int(round(8 * np.sin(2 * np.pi * i / max(1, n_frames))))
        boxes = []
        for k, patch in enumerate(patches):
            col, row = k % 3, k // 3
            x = col * (WIDTH // 3) + (WIDTH // 3 - ph) // 2 + drift
            y = row * (HEIGHT // 2) + (HEIGHT // 2 - ph) // 2
            grey[y:y + ph, x:x + ph] = patch
            boxes.append((x + pad, y + pad, face_size, face_size))
        writer.write(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
        all_boxes.append(boxes)
    writer.release()
    return Scene(path, fps, n_frames, list(labels), all_boxes)


def to_mjpeg(src: Path, dst: Path) -> Path:
    """The video re-encoded as Motion-JPEG in AVI: every frame is its own JPEG, so damage stays within a frame."""
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS)
    writer = None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if writer is None:
            writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"MJPG"), fps, frame.shape[1::-1])
        writer.write(frame)
    writer.release()
    return Path(dst)


def jpeg_starts(data: bytes) -> list[int]:
    """Offsets of the JPEG start markers (one per frame) in an MJPEG AVI."""
    return [i for i in range(len(data) - 2) if data[i] == 0xFF and data[i + 1] == 0xD8 and data[i + 2] == 0xFF]
