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
    """`name`: the detector's short name. `needs_color`: True when `detect` uses colour; False when it works on
    grey anyway, so callers holding a grey copy may pass that instead (optional: see `detector_input`)."""

    name: str
    needs_color: bool

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def detector_input(detector: Detector, image: np.ndarray, grey: np.ndarray) -> np.ndarray:
    """What to pass to `detector.detect` for a caller holding both copies of a frame: `grey` where the detector
    works on grey anyway (cheaper to scale, no second conversion), else `image`. A detector that does not say
    (no `needs_color`) gets `image`."""
    return image if getattr(detector, "needs_color", True) else grey


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

    needs_color = False  # works on grey: a grey image skips the conversion

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


class BlazeFaceDetector:
    """MediaPipe's BlazeFace short-range model (Apache-2.0, from the mediapipe 0.10.14 wheel, converted to ONNX
    with tflite2onnx; see weights/NOTICE.md), run on ONNX Runtime: about a millisecond per frame.

    Built for faces that fill a good part of the frame (webcams, selfies, within ~2 m): it misses small faces
    in group photos, where the Haar cascade is the better choice. Its boxes are tighter than FER-2013's crops,
    so they are widened by `frame` (scale, shift down as a fraction of the box) to the framing the classifier
    was trained on (measured against the Haar cascade on FER-2013 scenes: benchmarks/detectors.py).
    """

    name = "blazeface"
    needs_color = True
    INPUT = 128
    MODEL = Path(__file__).parent / "weights" / "detectors" / "blazeface_short_range.onnx"

    def __init__(self, score_threshold: float = 0.5, nms_threshold: float = 0.3, threads: int = 1,
                 frame: tuple[float, float] = (1.20, -0.043)):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        self._session = ort.InferenceSession(str(self.MODEL), opts, providers=["CPUExecutionProvider"])
        self.score_threshold, self.nms_threshold, self.frame = score_threshold, nms_threshold, frame
        self._anchors = _ssd_anchors(self.INPUT)  # (896, 2) anchor centres in [0, 1]

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        n = self.INPUT
        s = n / max(h, w)  # shrink first, then letterbox to an n x n square as MediaPipe does: no full-size copies
        sw, sh = max(1, round(w * s)), max(1, round(h * s))
        small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        rgb = cv2.cvtColor(small, cv2.COLOR_GRAY2RGB) if small.ndim == 2 else cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        top, left = (n - sh) // 2, (n - sw) // 2
        square = cv2.copyMakeBorder(rgb, top, n - sh - top, left, n - sw - left, cv2.BORDER_CONSTANT, value=0)
        x = square.astype(np.float32) / 127.5 - 1
        reg, cls = self._session.run(None, {"input": x.transpose(2, 0, 1)[None]})  # (1, 896, 16), (1, 896, 1)
        scores = 1 / (1 + np.exp(-np.clip(cls[0, :, 0].astype(np.float64), -100, 100)))
        keep = scores >= self.score_threshold
        if not keep.any():
            return _empty()
        r, a, scores = reg[0, keep, :4] / self.INPUT, self._anchors[keep], scores[keep]
        cx, cy, bw, bh = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1], r[:, 2], r[:, 3]
        boxes = (np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1) * n - [left, top, left, top]) / s
        boxes, scores = _weighted_nms(boxes, scores, self.nms_threshold)
        scale, shift = self.frame
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) * scale
        cy = cy + shift * size
        xywh = np.stack([cx - size / 2, cy - size / 2, size, size], 1)
        x0, y0 = np.clip(xywh[:, 0], 0, w - 1), np.clip(xywh[:, 1], 0, h - 1)  # clamp to the image
        x1, y1 = np.clip(xywh[:, 0] + size, 1, w), np.clip(xywh[:, 1] + size, 1, h)
        out = np.round(np.stack([x0, y0, x1 - x0, y1 - y0], 1)).astype(np.int32)
        order = np.argsort(out[:, 0], kind="stable")
        return out[order], scores[order].astype(np.float32)


def _ssd_anchors(size: int) -> np.ndarray:
    """BlazeFace short-range anchors: 2 per cell on the 16x16 grid (stride 8), 6 per cell on 8x8 (stride 16)."""
    anchors = []
    for stride, per_cell in ((8, 2), (16, 6)):
        cells = size // stride
        for y in range(cells):
            for x in range(cells):
                anchors += [((x + 0.5) / cells, (y + 0.5) / cells)] * per_cell
    return np.array(anchors, np.float32)


def _weighted_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's weighted NMS: overlapping boxes (x0, y0, x1, y1) are averaged, weighted by score."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    out_boxes, out_scores, used = [], [], np.zeros(len(boxes), bool)
    for i in range(len(boxes)):
        if used[i]:
            continue
        ix0, iy0 = np.maximum(boxes[i, 0], boxes[:, 0]), np.maximum(boxes[i, 1], boxes[:, 1])
        ix1, iy1 = np.minimum(boxes[i, 2], boxes[:, 2]), np.minimum(boxes[i, 3], boxes[:, 3])
        inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
        group = (~used) & (inter / (areas[i] + areas - inter + 1e-9) > threshold)
        used |= group
        w = scores[group][:, None]
        out_boxes.append((boxes[group] * w).sum(0) / w.sum())
        out_scores.append(scores[i])
    return np.array(out_boxes), np.array(out_scores)


class WholeImageDetector:
    """For pre-cropped faces: the whole image is one face, score 1."""

    name = "none"
    needs_color = False

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        return np.array([[0, 0, w, h]], np.int32), np.ones(1, np.float32)


DETECTORS = {
    "haar": lambda **kw: CascadeDetector("haarcascade_frontalface_default.xml", name="haar", **kw),
    "haar-alt2": lambda **kw: CascadeDetector("haarcascade_frontalface_alt2.xml", name="haar-alt2", **kw),
    "blazeface": lambda **kw: BlazeFaceDetector(**kw),
    "none": lambda **kw: WholeImageDetector(),
}


def available_detectors() -> list[str]:
    return list(DETECTORS)


def create_detector(name: str = "haar", **options) -> Detector:
    """A detector by name; unknown names raise ValueError listing the valid ones."""
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; valid: {', '.join(DETECTORS)}")
    return DETECTORS[name](**options)
