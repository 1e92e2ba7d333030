"""Face detectors behind one small interface: `detect(image) -> (boxes, scores)`.

boxes: (N, 4) int32 as x, y, w, h in image pixels; scores: (N,) float32 in [0, 1].
No face gives empty arrays, never None. Detectors that find landmarks (YuNet) also have
`detect_faces(image) -> Detections`; `find_faces(detector, image)` gives Detections for any detector.
Every detector ships with the package (weights/detectors/, OpenCV's cascades): nothing is downloaded at run time.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
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


LANDMARKS = ("right_eye", "left_eye", "nose_tip", "right_mouth", "left_mouth")  # the subject's right: image left


@dataclass(frozen=True)
class Detections:
    """What a detector found in one image, left to right.

    boxes (N, 4) int32 x, y, w, h; scores (N,) float32 (the detector's score, not the emotion's);
    landmarks (N, 5, 2) float32 image x, y in LANDMARKS order, or None for detectors without landmarks;
    sources: the name of the detector that found each face (a fallback may find some)."""
    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray | None
    sources: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls, landmarks: bool = False) -> "Detections":
        return cls(np.zeros((0, 4), np.int32), np.zeros((0,), np.float32),
                   np.zeros((0, 5, 2), np.float32) if landmarks else None, ())

    def scaled(self, factor: float) -> "Detections":
        """The same detections in an image `factor` times larger (boxes and landmarks scaled)."""
        if factor == 1:
            return self
        return Detections(np.round(self.boxes * factor).astype(np.int32), self.scores,
                          None if self.landmarks is None else (self.landmarks * factor).astype(np.float32), self.sources)


def find_faces(detector: "Detector", image: np.ndarray) -> Detections:
    """Detections (with landmarks where the detector gives them) from any detector."""
    if hasattr(detector, "detect_faces"):
        return detector.detect_faces(image)
    boxes, scores = detector.detect(image)
    return Detections(np.asarray(boxes, np.int32).reshape(-1, 4), np.asarray(scores, np.float32).reshape(-1), None,
                      (detector.name,) * len(boxes))


def _scaled_size(w: int, h: int, scale: float) -> tuple[int, int]:
    """(w, h) times scale, never below one pixel: a 2000x1 image scaled to 640 wide stays 1 pixel tall."""
    return max(1, round(w * scale)), max(1, round(h * scale))


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
        small = cv2.resize(grey, _scaled_size(w, h, scale), interpolation=cv2.INTER_AREA) if scale < 1 else grey
        min_side = max(12, int(self.min_face * scale))
        if min(small.shape) < min_side:  # thinner than the smallest face (e.g. a 2000x1 strip): nothing to find
            return _empty()
        small = cv2.equalizeHist(small)  # cascades are trained on equalised faces; helps dark photos
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

    def __init__(self, score_threshold: float = 0.5, nms_threshold: float = 0.3, threads: int | None = 1,
                 frame: tuple[float, float] = (1.20, -0.043), providers: list | None = None):
        from .sessions import open_session

        # a 128x128 input: one thread is enough
        self._session = open_session(self.MODEL, threads=threads or 1, providers=providers)
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


MIN_DETECT_SIDE = 32  # yunet's smallest working size (its input is padded to multiples of 32)
MAX_DETECT_SIDE = 4096  # its largest: yunet's buffers grow with the square (100,000 px would take some 30 GB)


class YuNetDetector:
    """YuNet (2023mar, Wu, Peng and Yu; Apache-2.0, see weights/NOTICE.md) on ONNX Runtime: boxes, scores and five
    landmarks. Found 98 % of the faces in real photos where the Haar cascade found 69 % (the weights' README).

    `long_side`: the image is scaled so its longer side is this many pixels (enlarging small images too) and padded to
    multiples of 32. YuNet finds faces from about 20 px at that scale (16-20 px: about half of them), so 640 finds
    ~20 px faces in photos up to 640 px and ~40 px faces in 1280 px ones; 1280 finds ~20 px faces there at about
    5x the time (benchmarks/front_end.py, part 6). The cost grows with the area: live video uses a smaller side.
    `score_threshold`: OpenCV's default of 0.9 is too strict for this model (real faces score 0.8-0.9); the default
    was chosen on FER-2013 Training faces in scenes and face-free images (benchmarks/front_end.py).
    `frame` (scale, shift down, as fractions of the face's size) widens YuNet's tight box to the framing of FER-2013's
    crops, which the classifier was trained on; fitted the same way.
    Close-ups: YuNet, trained on WIDER FACE, misses a face that fills the whole image. When it finds nothing, it
    looks again at the image inside a margin of repeated border pixels (half the image's side all round), which
    gives such a face the context it expects, keeping what scores `margin_threshold` (a face alone in the frame
    scores lower than one in a scene; chosen on Training close-ups against the face-free images, which this second
    look sees too: the lowest threshold with no false face there; it is its own setting, so raising
    `score_threshold` leaves it as it is); then `fallback` is tried (BlazeFace, made for faces near the camera,
    at `fallback_threshold`: at its own 0.5 it saw faces in 17 of 75 face-free images, and up to 0.72 in 300 generated
    backdrops; chosen on Training close-ups and those images, benchmarks/front_end.py). One ONNX Runtime session,
    thread-safe.
    """

    name = "yunet"
    needs_color = True
    MODEL = Path(__file__).parent / "weights" / "detectors" / "yunet_2023mar_s.onnx"
    STRIDES = (8, 16, 32)

    def __init__(self, *, long_side: int = 640, score_threshold: float = 0.6, nms_threshold: float = 0.3,
                 frame: tuple[float, float] = (1.065, 0.0), margin_threshold: float = 0.35,
                 fallback: "Detector | str | None" = "blazeface",
                 fallback_threshold: float = 0.75, threads: int | None = None, providers: list | None = None):
        from .sessions import open_session

        if not MIN_DETECT_SIDE <= long_side <= MAX_DETECT_SIDE:
            raise ValueError(f"long_side must be {MIN_DETECT_SIDE}-{MAX_DETECT_SIDE} pixels, got {long_side}")
        for name, value in (("score_threshold", score_threshold), ("margin_threshold", margin_threshold)):
            if not 0 < value < 1:
                raise ValueError(f"{name} must be in (0, 1), got {value}")
        # threads None: ONNX Runtime's default, one thread per physical core
        self._session = open_session(self.MODEL, threads=threads, providers=providers)
        self.long_side, self.score_threshold, self.nms_threshold, self.frame = long_side, score_threshold, nms_threshold, frame
        self.margin_threshold = margin_threshold
        self._outputs = [o.name for o in self._session.get_outputs()]  # cls_8 ... kps_32, read once
        self.fallback = create_detector(fallback, threads=threads, score_threshold=fallback_threshold, providers=providers) \
            if isinstance(fallback, str) else fallback

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        found = self.detect_faces(image)
        return found.boxes, found.scores

    def detect_faces(self, image: np.ndarray, long_side: int | None = None) -> Detections:
        """Boxes framed like FER-2013's crops, scores, landmarks; `long_side` overrides the working resolution for
        this call (live video searches a smaller copy)."""
        found = self.raw(image, long_side)
        if len(found) == 0:
            found = self.raw_with_margin(image, long_side)
        if len(found) == 0:
            if self.fallback is not None:
                return find_faces(self.fallback, image)
            return found
        boxes = frame_boxes(found.boxes, found.landmarks, self.frame, image.shape[:2])
        keep = distinct_boxes(boxes, found.scores, FRAMED_OVERLAP)
        return Detections(boxes[keep], found.scores[keep], found.landmarks[keep], tuple(found.sources[i] for i in keep))

    def raw_with_margin(self, image: np.ndarray, long_side: int | None = None, margin: float = 0.5,
                        score_threshold: float | None = None) -> Detections:
        """`raw` on the image inside a margin of repeated border pixels (`margin` x its longer side all round): a
        face that fills the image gets the surroundings YuNet needs. Keeps what scores `score_threshold` (default:
        `margin_threshold`). The image is shrunk to the working size before
        the margin is added (a 65535-pixel strip must not become a 4-gigapixel copy). Boxes and landmarks come back
        in the image's pixels."""
        h, w = image.shape[:2]
        side = long_side or self.long_side
        scale = side / ((1 + 2 * margin) * max(h, w))
        small = cv2.resize(image, _scaled_size(w, h, scale), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        p = max(1, round(margin * max(small.shape[:2])))
        threshold = self.margin_threshold if score_threshold is None else score_threshold
        found = self.raw(cv2.copyMakeBorder(small, p, p, p, p, cv2.BORDER_REPLICATE), side, threshold)
        if len(found) == 0:
            return found
        sx, sy = small.shape[1] / w, small.shape[0] / h  # (the scale per axis, after rounding the small size)
        boxes = (found.boxes - np.array([p, p, 0, 0])) / np.array([sx, sy, sx, sy])
        points = (found.landmarks - p) / np.array([sx, sy], np.float32)
        return Detections(np.round(boxes).astype(np.int32), found.scores, points.astype(np.float32), found.sources)

    def raw(self, image: np.ndarray, long_side: int | None = None, score_threshold: float | None = None) -> Detections:
        """YuNet's own tight boxes (x, y, w, h), scores and landmarks, without framing or fallback; those scoring
        `score_threshold` (default: the detector's) or more."""
        threshold = self.score_threshold if score_threshold is None else score_threshold
        h, w = image.shape[:2]
        scale = (long_side or self.long_side) / max(h, w)
        sw, sh = _scaled_size(w, h, scale)
        small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        if small.ndim == 2:
            small = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
        elif small.shape[2] == 4:
            small = cv2.cvtColor(small, cv2.COLOR_BGRA2BGR)
        ph, pw = -(-sh // 32) * 32, -(-sw // 32) * 32  # padded to multiples of 32, zeros at the bottom and right
        x = np.zeros((1, 3, ph, pw), np.float32)  # BGR, 0-255, NCHW
        x[0, :, :sh, :sw] = small.transpose(2, 0, 1)
        out = dict(zip(self._outputs, self._session.run(None, {"input": x})))
        boxes, scores, points = [], [], []
        for stride in self.STRIDES:
            cols = pw // stride
            cls, obj = out[f"cls_{stride}"][0, :, 0], out[f"obj_{stride}"][0, :, 0]
            score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
            keep = np.flatnonzero(score >= threshold)
            if len(keep) == 0:
                continue
            cx, cy = (keep % cols).astype(np.float32), (keep // cols).astype(np.float32)
            b, k = out[f"bbox_{stride}"][0, keep], out[f"kps_{stride}"][0, keep].reshape(-1, 5, 2)
            bw, bh = np.exp(b[:, 2]) * stride, np.exp(b[:, 3]) * stride  # OpenCV's face_detect.cpp decoding
            bx, by = (cx + b[:, 0]) * stride - bw / 2, (cy + b[:, 1]) * stride - bh / 2
            boxes.append(np.stack([bx, by, bw, bh], 1))
            points.append(np.stack([(k[:, :, 0] + cx[:, None]) * stride, (k[:, :, 1] + cy[:, None]) * stride], 2))
            scores.append(score[keep])
        if not boxes:
            return Detections.empty(landmarks=True)
        boxes, scores, points = np.concatenate(boxes), np.concatenate(scores), np.concatenate(points)
        keep = np.asarray(cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), threshold, self.nms_threshold),
                          np.int64).reshape(-1)
        boxes, scores, points = boxes[keep] / scale, scores[keep], points[keep] / scale
        order = np.argsort(boxes[:, 0], kind="stable")
        return Detections(np.round(boxes[order]).astype(np.int32), scores[order].astype(np.float32),
                          points[order].astype(np.float32), (self.name,) * len(order))


def roll_degrees(landmarks: np.ndarray) -> np.ndarray:
    """(N, 5, 2) landmarks -> (N,) the roll of each face in degrees from the eye line (0: upright; positive:
    the face turned clockwise on screen)."""
    d = landmarks[:, 1] - landmarks[:, 0]  # right eye (image left) -> left eye
    return np.degrees(np.arctan2(d[:, 1], d[:, 0]))


def frame_boxes(boxes: np.ndarray, landmarks: np.ndarray | None, frame: tuple[float, float],
                shape: tuple[int, int]) -> np.ndarray:
    """YuNet's tight boxes -> square boxes with FER-2013's framing: the side `scale` x the box's mean side, the
    centre moved `shift` x that side towards the chin (along the face's own down direction when landmarks give its
    roll). Clamped to the image."""
    scale, shift = frame
    b = boxes.astype(np.float64)
    side = (b[:, 2] + b[:, 3]) / 2 * scale
    cx, cy = b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2
    roll = np.radians(roll_degrees(landmarks)) if landmarks is not None and len(landmarks) else np.zeros(len(b))
    cx, cy = cx - np.sin(roll) * shift * side, cy + np.cos(roll) * shift * side
    h, w = shape
    x0, y0 = np.clip(cx - side / 2, 0, w - 1), np.clip(cy - side / 2, 0, h - 1)
    x1, y1 = np.clip(cx + side / 2, x0 + 1, w), np.clip(cy + side / 2, y0 + 1, h)
    return np.round(np.stack([x0, y0, x1 - x0, y1 - y0], 1)).astype(np.int32).reshape(-1, 4)


# Two framed boxes overlapping this much are one face. YuNet's own suppression (nms_threshold) compares its tight boxes
# before they are framed and clamped to the image; in a close-up, a giant low-score box around the face and the face's
# own box, far apart before, both become nearly the whole image after clamping (overlaps 0.91-0.98 in real photos).
# Framing alone (a uniform 1.065x) cannot lift an overlap from under 0.3 to this: only the clamp can.
FRAMED_OVERLAP = 0.5


def distinct_boxes(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Indices (in their original order) of the boxes (N, 4) x, y, w, h that overlap no higher-scoring kept box by
    more than `threshold` (intersection over union): greedy suppression, best score first."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    x0, y0, x1, y1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    area = b[:, 2] * b[:, 3]
    kept: list[int] = []
    for i in np.argsort(-np.asarray(scores, np.float64), kind="stable"):
        if kept:
            k = np.array(kept)
            iw = np.clip(np.minimum(x1[i], x1[k]) - np.maximum(x0[i], x0[k]), 0, None)
            ih = np.clip(np.minimum(y1[i], y1[k]) - np.maximum(y0[i], y0[k]), 0, None)
            inter = iw * ih
            if np.any(inter / (area[i] + area[k] - inter + 1e-9) > threshold):
                continue
        kept.append(int(i))
    return np.array(sorted(kept), np.int64)


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
    "yunet": lambda **kw: YuNetDetector(**kw),
    # threads: ONNX Runtime's for the ONNX detectors; the cascades run on OpenCV's own threads
    "haar": lambda threads=None, **kw: CascadeDetector("haarcascade_frontalface_default.xml", name="haar", **kw),
    "haar-alt2": lambda threads=None, **kw: CascadeDetector("haarcascade_frontalface_alt2.xml", name="haar-alt2", **kw),
    "blazeface": lambda **kw: BlazeFaceDetector(**kw),
    "none": lambda threads=None, **kw: WholeImageDetector(),
}


def available_detectors() -> list[str]:
    return list(DETECTORS)


DEFAULT_DETECTOR = "yunet"

# When each detector helps: the CLI's --detector help and the "no face found" message list these.
DETECTOR_NOTES = {
    "yunet": "the default: faces from about a thirtieth of the photo's longer side (20 px in 640 px photos), tilted "
             "and profile faces, with landmarks; "
             "looks again with a margin, then with blazeface, for close-ups",
    "haar": "OpenCV's Haar cascade, the reference reports' detector: frontal faces only, slower, misses about a third",
    "haar-alt2": "a stricter Haar cascade: fewer false faces on busy backgrounds",
    "blazeface": "MediaPipe's short-range detector: fastest, for faces that fill much of the frame (webcams, selfies)",
    "none": "the whole image is one face: for photos already cropped to a face",
}


def detector_help(exclude: tuple[str, ...] = ()) -> str:
    """One line per detector saying when it helps: for --detector's help and the "no face found" message."""
    return "; ".join(f"{name}: {note}" for name, note in DETECTOR_NOTES.items() if name not in exclude)


def check_detect_side(detector, detect_side: int | None) -> None:
    """`detect_side` is yunet's working size (its long_side): refused with any other detector (a name or a Detector
    object) and under 32 px. Where load_recognizer, `ferkit analyze|batch|serve --detect-side` and the server's
    settings all check it, before any model loads."""
    if detect_side is None:
        return
    if detector != "yunet":
        name = detector if isinstance(detector, str) else type(detector).__name__
        raise ValueError(f"detect_side sets yunet's working size; the {name} detector has none")
    if detect_side < MIN_DETECT_SIDE:
        raise ValueError(f"detect_side must be at least {MIN_DETECT_SIDE} pixels, got {detect_side}")
    if detect_side > MAX_DETECT_SIDE:
        raise ValueError(f"detect_side must be at most {MAX_DETECT_SIDE} pixels, got {detect_side}")


def create_detector(name: str = DEFAULT_DETECTOR, **options) -> Detector:
    """A detector by name; unknown names raise ValueError listing the valid ones."""
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; valid: {', '.join(DETECTORS)}")
    return DETECTORS[name](**options)
