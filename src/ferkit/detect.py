"""Face detectors behind one small interface: `detect(image) -> (boxes, scores)`.

boxes: (N, 4) int32 as x, y, w, h in image pixels; scores: (N,) float32 in [0, 1].
No face gives empty arrays, never None. Every detector here ships inside a PyPI package
(OpenCV's cascades), so nothing is downloaded at run time.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np


class Detector(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def _empty() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((0, 4), np.int32), np.zeros((0,), np.float32)


def _grey(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


class CascadeDetector:
    """OpenCV Viola-Jones cascade (Haar or LBP), the reference reports' detector.

    `max_side` downscales large images before detection (boxes are scaled back), which bounds the
    cost per frame; `min_face` is the smallest face side in pixels of the original image.
    The score is the cascade's last-stage weight squashed by a logistic: a relative score, not a probability.
    """

    def __init__(self, cascade: str = "haarcascade_frontalface_default.xml", *, name: str = "haar",
                 scale_factor: float = 1.1, min_neighbors: int = 5, min_face: int = 30, max_side: int = 640):
        path = Path(cascade) if Path(cascade).is_file() else Path(cv2.data.haarcascades) / cascade
        if not path.is_file():
            raise FileNotFoundError(f"cascade {cascade!r} not found (looked in {cv2.data.haarcascades})")
        self.name, self.path = name, str(path)
        self.scale_factor, self.min_neighbors, self.min_face, self.max_side = scale_factor, min_neighbors, min_face, max_side
        self._local = threading.local()  # a CascadeClassifier per thread: detectMultiScale is not thread-safe
        if cv2.CascadeClassifier(self.path).empty():
            raise ValueError(f"{self.path}: not a valid cascade file")

    def _cascade(self) -> cv2.CascadeClassifier:
        c = getattr(self._local, "cascade", None)
        if c is None:
            c = self._local.cascade = cv2.CascadeClassifier(self.path)
        return c

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        grey = _grey(image)
        h, w = grey.shape
        scale = min(1.0, self.max_side / max(h, w)) if self.max_side else 1.0
        small = cv2.resize(grey, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else grey
        small = cv2.equalizeHist(small)  # cascades are trained on equalised faces; helps dark photos
        min_side = max(12, int(self.min_face * scale))
        boxes, _, weights = self._cascade().detectMultiScale3(
            small, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(min_side, min_side), outputRejectLevels=True)
        if len(boxes) == 0:
            return _empty()
        boxes = np.round(np.asarray(boxes, np.float64) / scale).astype(np.int32)
        scores = 1.0 / (1.0 + np.exp(-np.asarray(weights, np.float64).reshape(-1)))
        order = np.argsort(boxes[:, 0], kind="stable")  # left to right: stable, readable order
        return boxes[order], scores[order].astype(np.float32)


class WholeImageDetector:
    """For pre-cropped faces: the whole image is one face, score 1."""

    name = "none"

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        return np.array([[0, 0, w, h]], np.int32), np.ones(1, np.float32)


DETECTORS = {
    "haar": lambda **kw: CascadeDetector("haarcascade_frontalface_default.xml", name="haar", **kw),
    "haar-alt2": lambda **kw: CascadeDetector("haarcascade_frontalface_alt2.xml", name="haar-alt2", **kw),
    "none": lambda **kw: WholeImageDetector(),
}


def available_detectors() -> list[str]:
    return list(DETECTORS)


def create_detector(name: str = "haar", **options) -> Detector:
    """A detector by name; unknown names raise ValueError listing the valid ones."""
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; valid: {', '.join(DETECTORS)}")
    return DETECTORS[name](**options)
