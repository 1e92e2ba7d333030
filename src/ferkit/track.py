"""Faces across video frames: stable ids by box overlap, optional smoothing, and detection every few frames.

Detecting faces is the expensive step on a CPU (the Haar cascade costs several times the classifier on a
640x480 frame), so `FaceTracker` runs the detector on a downscaled copy of every `detect_every`-th frame and,
in between, follows each face with template matching in a small window around its last box. Every frame's
faces are still read (`Recognizer.faces_for`, as `analyze` does), so probabilities and face features are fresh on
every frame.

A face's box must not move unless the face did: the classifier's probabilities change with a shift of a pixel or
two, so a box that jumps between the followed and the detected position, or with the detector's own jitter, draws a
signal at the detection rate into every timeline. So following is precise (a coarse search at ~32 px across, then a
fine one at full resolution on the face's central part, against the face's patch at its last detection: no
resampling, so a still face stays to the pixel) and decides where the box is; at a
detection, a detected box within STILL x the face's side of where following puts the face (landmarks too) is the
detector's jitter and leaves the followed box and landmarks as they are, a larger difference takes the detector's.
A face that cannot be followed, or no longer looks like its track's person, is detected again on that frame.

One track is one person: a hard cut (the whole frame changes at once) ends every track, and a detected face whose
appearance no longer matches its track's (normalised correlation of a small, blurred, upright grey crop against the
track's running average) starts a new one. benchmarks/tracking.py measures both rules (docs/live-video.md).

    tracker = FaceTracker(load_recognizer(), detect_every=5, smoothing=0.5)
    for frame in frames:
        for face in tracker.process(frame):      # TrackedFace: .id, .box, .emotion, .probabilities ...
            ...
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import cv2
import numpy as np

from .detect import Detections, Detector, detector_input, find_faces
from .face import Face
from .recognizer import Recognizer

# Identity (benchmarks/tracking.py, on FER-2013 Training faces): a face against a strongly moved, turned and relit copy
# of itself correlates >= 0.6 always, and two people < 0.6 in 97 % of pairs; between two detections one person
# (small moves, a blink) stays >= 0.8 in 99.8 % of cases, two people fall below 0.8 in 99.9 %.
IDENTITY_THRESHOLD = 0.6  # against the track's running average look
JUMP_THRESHOLD = 0.8      # against its look at the last detection
CUT_THRESHOLD = 30.0      # grey levels; benchmarks/tracking.py measures cuts against motion and blinks
LOOK_SIDE = 24            # the appearance crop's side in pixels
# A detected box closer than this fraction of the face's side (centre, size, each landmark) to where following puts
# the face is the detector's own jitter, not a move (benchmarks/tracking.py measures it on FER-2013 faces in encoded
# clips: 0.042 at its 99th percentile, 0.062 at most): the followed box stays.
STILL = 0.05
FOLLOW_SIDE = 32.0  # the coarse search: the face ~32 px across (cheap, robust to small changes of expression)
REFINE_SIDE = 128   # the fine search, at full resolution: the face's central part at most this many pixels across
                    # (a 300 px face: ~1 ms against ~4 ms for all of it)


def iou(a, b) -> float:
    """Intersection over union of two x, y, w, h boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = min(ax + aw, bx + bw) - max(ax, bx)
    ih = min(ay + ah, by + bh) - max(ay, by)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / float(aw * ah + bw * bh - inter)


def match_boxes(old: list, new: list, threshold: float) -> list[tuple[int, int]]:
    """Greedy one-to-one matching, highest overlap first: (index in old, index in new) pairs with IoU >= threshold."""
    pairs = sorted(((iou(o, n), i, j) for i, o in enumerate(old) for j, n in enumerate(new)), reverse=True)
    used_old, used_new, out = set(), set(), []
    for overlap, i, j in pairs:
        if overlap < threshold:
            break
        if i in used_old or j in used_new:
            continue
        used_old.add(i)
        used_new.add(j)
        out.append((i, j))
    return out


@dataclass
class Track:
    """One face followed over frames. `probabilities` is the smoothed (K,) vector once the face was classified."""
    id: int
    box: tuple[int, int, int, int]
    score: float
    missed: int = 0                              # detections in a row that did not find this face
    frames: int = 0                              # frames this face was reported on
    probabilities: np.ndarray | None = field(default=None, repr=False)
    landmarks: np.ndarray | None = field(default=None, repr=False)  # (5, 2) at `box`, moved with it when followed
    source: str = ""                             # the detector that found the face


class IoUTracker:
    """Assigns stable ids to boxes by overlap with the previous boxes.

    `update(boxes, scores)` takes one frame's detections and returns the live tracks. A detection that overlaps
    a track by at least `iou_threshold` continues it; so does one left over whose centre is within a face's side of
    a track left over (it moved further between analysed frames than overlap allows; nearest first); others start
    new tracks (ids count up from 1, never reused); a track not matched for more than `max_missed` detections in a row is dropped.
    `smoothing` in [0, 1): each face's probabilities become smoothing * previous + (1 - smoothing) * new
    (0 turns it off).
    """

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 2, smoothing: float = 0.0):
        if not 0 < iou_threshold <= 1:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        if max_missed < 0:
            raise ValueError(f"max_missed must be >= 0, got {max_missed}")
        if not 0 <= smoothing < 1:
            raise ValueError(f"smoothing must be in [0, 1) (0 = off), got {smoothing}")
        self.iou_threshold, self.max_missed, self.smoothing = iou_threshold, max_missed, smoothing
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, boxes, scores=None) -> list[Track]:
        """One frame's detections (N, 4) x, y, w, h -> the tracks they belong to, in the order of `boxes`."""
        boxes = [tuple(int(v) for v in b) for b in np.asarray(boxes, np.int64).reshape(-1, 4)]
        scores = [1.0] * len(boxes) if scores is None else [float(s) for s in np.asarray(scores).reshape(-1)]
        matched = dict((j, i) for i, j in match_boxes([t.box for t in self.tracks], boxes, self.iou_threshold))
        matched.update(_match_near([t.box for t in self.tracks], boxes, set(matched.values()), set(matched)))
        seen, out = set(), []
        for j, box in enumerate(boxes):
            if j in matched:
                track = self.tracks[matched[j]]
                track.box, track.score, track.missed = box, scores[j], 0
            else:
                track = Track(self._next_id, box, scores[j])
                self._next_id += 1
                self.tracks.append(track)
            seen.add(track.id)
            out.append(track)
        for track in self.tracks:
            if track.id not in seen:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return out

    def restart(self, track: Track) -> None:
        """The face at this track is someone else: the track takes a new id and forgets its history."""
        track.id, track.frames, track.probabilities = self._next_id, 0, None
        self._next_id += 1

    def smooth(self, track: Track, probabilities: np.ndarray) -> np.ndarray:
        """Blend a new (K,) probability vector into the track's history; returns the vector to report."""
        p = np.asarray(probabilities, np.float64)
        if track.probabilities is not None and self.smoothing > 0:
            p = self.smoothing * track.probabilities + (1 - self.smoothing) * p
            p = p / p.sum()
        track.probabilities = p
        return p


def _match_near(old: list, new: list, used_old: set, used_new: set) -> dict[int, int]:
    """{index in new: index in old} for boxes overlap did not match, nearest centres first, each centre within the
    larger box's side of the other."""
    def centre(b):
        return b[0] + b[2] / 2, b[1] + b[3] / 2

    pairs = []
    for i, o in enumerate(old):
        for j, n in enumerate(new):
            if i in used_old or j in used_new:
                continue
            (ox, oy), (nx, ny) = centre(o), centre(n)
            d = ((ox - nx) ** 2 + (oy - ny) ** 2) ** 0.5
            if d < max(o[2], o[3], n[2], n[3]):
                pairs.append((d, i, j))
    out = {}
    for _, i, j in sorted(pairs):
        if i not in out.values() and j not in out:
            out[j] = i
    return out


@dataclass
class TrackedFace(Face):
    """A Face with the id of the track it belongs to; `detected` is False where the box was followed, not detected."""
    id: int = 0
    detected: bool = True

    @classmethod
    def of(cls, face: Face, id: int, detected: bool) -> "TrackedFace":
        return cls(**{f.name: getattr(face, f.name) for f in fields(Face)}, id=id, detected=detected)

    def to_dict(self, decimals: int | None = None) -> dict:
        return {"id": self.id, **super().to_dict(decimals), "detected": self.detected}


class FaceTracker:
    """Detect every `detect_every`-th frame, follow faces in between, classify every frame, keep ids stable.

    `detect_side`: the longest side of the copy the detector sees (None: the detector's own scaling); a smaller
    copy is cheaper to search but misses small faces (the smallest face found is about
    frame side / detect_side x the detector's 30 px minimum). `follow_min_score`: how similar (normalised
    cross-correlation of the face's appearance) a followed box must be to its last appearance to be kept.
    `identity_threshold`: a detected face whose appearance correlates less than this with its track's starts a new
    track (another person in the same place); `cut_threshold`: the mean absolute change of a 32x24 grey thumbnail
    between two frames (grey levels) above which the frame is a hard cut and every track ends. None turns either off.
    """

    def __init__(self, recognizer: Recognizer, *, detect_every: int = 5, detect_side: int | None = 320,
                 smoothing: float = 0.0, iou_threshold: float = 0.3, max_missed: int = 2,
                 follow_min_score: float = 0.5, detector: Detector | None = None,
                 identity_threshold: float | None = IDENTITY_THRESHOLD, cut_threshold: float | None = CUT_THRESHOLD):
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        if detect_side is not None and detect_side < 64:
            raise ValueError(f"detect_side must be >= 64 pixels (or None for the detector's own scaling), got {detect_side}")
        self.recognizer = recognizer
        self.detector = detector or recognizer.detector  # e.g. a faster detector for live video than for photos
        self.detect_every, self.detect_side, self.follow_min_score = detect_every, detect_side, follow_min_score
        self.tracker = IoUTracker(iou_threshold, max_missed, smoothing)
        self.frame_index = -1
        self._templates: dict[int, tuple] = {}       # track id -> its patch at its last detection (_template)
        self._live: list[tuple[Track, bool]] = []      # (track, detected this frame) reported last frame
        self.identity_threshold, self.cut_threshold = identity_threshold, cut_threshold
        self._looks: dict[int, tuple] = {}             # track id -> (running average look, last look) (appearance())
        self._thumb: np.ndarray | None = None          # the last frame's thumbnail, for hard cuts

    def reset(self) -> None:
        """Forget every face (for a new scene or source); ids keep counting up."""
        self.tracker.tracks.clear()
        self._templates.clear()
        self._looks.clear()
        self._live = []
        self._thumb = None
        self.frame_index = -1

    def detect(self, frame: np.ndarray) -> Detections:
        """The detector on a copy no larger than `detect_side`; boxes and landmarks come back in frame pixels."""
        if hasattr(self.detector, "long_side"):  # YuNet scales its input itself (enlarging too): tell it the side
            return self.detector.detect_faces(frame, long_side=self.detect_side)
        h, w = frame.shape[:2]
        scale = min(1.0, self.detect_side / max(h, w)) if self.detect_side else 1.0
        if scale >= 1.0:
            return find_faces(self.detector, frame)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))  # a 2000x1 frame stays 1 pixel tall
        return find_faces(self.detector, cv2.resize(frame, size, interpolation=cv2.INTER_AREA)).scaled(1 / scale)

    def process(self, frame: np.ndarray, *, features: bool = True) -> list[TrackedFace]:
        """One BGR (or grey) frame -> its faces, each with a stable id (one per person), left to right.
        `features=False`: without the face-features stage (Recognizer.add_features adds it later)."""
        self.frame_index += 1
        grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        cut = self._hard_cut(grey)
        if cut:  # another shot: nobody carries over, whoever looks alike
            index = self.frame_index
            self.reset()
            self.frame_index = index
            self._thumb = _thumbnail(grey)
        live = None
        if not cut and self.frame_index % self.detect_every and self._live:
            live = self._follow_step(grey)  # None: a face was lost or is someone else now
        if live is None:
            live = self._detect_step(frame, grey)
        self._live = live
        if not live:
            return []
        tracks = [t for t, _ in live]
        marks = [t.landmarks for t in tracks]
        found = Detections(np.array([t.box for t in tracks], np.int32).reshape(-1, 4),
                           np.array([t.score for t in tracks], np.float32),
                           None if any(m is None for m in marks) else np.stack(marks).astype(np.float32),
                           tuple(t.source for t in tracks))
        labels = self.recognizer.labels
        out = []
        for (track, detected), face in zip(live, self.recognizer.faces_for(frame, found, features=features)):
            p = self.tracker.smooth(track, [face.probabilities[k] for k in labels])
            track.frames += 1
            face = replace(face, probabilities={k: float(v) for k, v in zip(labels, p)}, emotion=labels[int(np.argmax(p))])
            out.append(TrackedFace.of(face, track.id, detected))
        out.sort(key=lambda f: f.box[0])
        return out

    def _hard_cut(self, grey: np.ndarray) -> bool:
        """Whether this frame starts another shot: its thumbnail differs from the last frame's by more than
        cut_threshold grey levels on average."""
        if self.cut_threshold is None:
            return False
        thumb, last = _thumbnail(grey), self._thumb
        self._thumb = thumb
        return last is not None and float(np.abs(thumb - last).mean()) > self.cut_threshold

    def _same_person(self, grey: np.ndarray, track: Track) -> bool:
        """Whether the face detected at `track.box` is still the track's person: its look correlates at least
        JUMP_THRESHOLD with the look at the last detection (one person changes little between two detections;
        another person replacing them, a lot) and at least identity_threshold with the track's running average (a
        slow drift to someone else). Updates both looks."""
        look = appearance(grey, track.box, track.landmarks)
        average, last = self._looks.get(track.id, (None, None))
        if self.identity_threshold is not None and last is not None and \
                (float(look @ last) < JUMP_THRESHOLD or float(look @ average) < self.identity_threshold):
            return False
        mixed = look if average is None else 0.8 * average + 0.2 * look  # follows turns and light
        self._looks[track.id] = (mixed / (np.linalg.norm(mixed) + 1e-9), look)
        return True

    def _detect_step(self, frame, grey) -> list[tuple[Track, bool]]:
        detections = self.detect(detector_input(self.detector, frame, grey))
        followed = {t.id: self._followed(grey, t) for t in self.tracker.tracks}  # where each face went, if found
        found = self.tracker.update(detections.boxes, detections.scores)
        for i, track in enumerate(found):
            track.landmarks = None if detections.landmarks is None else detections.landmarks[i]
            track.source = detections.sources[i]
            if not self._same_person(grey, track):  # another person where this track's was: a new track
                self._templates.pop(track.id, None)
                self._looks.pop(track.id, None)
                self.tracker.restart(track)
                self._same_person(grey, track)
            elif self.detect_every > 1 and followed.get(track.id) and \
                    _still(*followed[track.id], track.box, track.landmarks):
                # the detector's jitter, not a move: following decides (only where frames are followed between
                # detections; with detect_every 1 every box is the detector's, as `ferkit batch` gives it)
                track.box, track.landmarks = followed[track.id]
            self._templates[track.id] = self._template(grey, track.box)
        ids = {t.id for t in found}
        live = [(t, True) for t in found]
        # Faces the detector missed this time (cascades flicker) are followed for up to max_missed detections.
        for track in self.tracker.tracks:
            if track.id not in ids and followed.get(track.id):
                box = followed[track.id][0]
                if all(iou(box, t.box) < self.tracker.iou_threshold for t in found):
                    _move(track, box)
                    live.append((track, False))
        alive = {t.id for t in self.tracker.tracks}
        self._templates = {k: v for k, v in self._templates.items() if k in alive}
        self._looks = {k: v for k, v in self._looks.items() if k in alive}
        return live

    def _follow_step(self, grey) -> list[tuple[Track, bool]] | None:
        """Every face of the last frame followed into this one; None as soon as one is lost or no longer looks like
        its track's person at its last detection (someone else in its place): the caller detects instead."""
        live = []
        for track, _ in self._live:
            box = self._follow(grey, track)
            if box is None:
                return None
            _move(track, box)
            last = self._looks.get(track.id, (None, None))[1]
            if self.identity_threshold is not None and last is not None and \
                    float(appearance(grey, track.box, track.landmarks) @ last) < JUMP_THRESHOLD:
                return None
            live.append((track, False))
        return live

    def _followed(self, grey: np.ndarray, track: Track):
        """(box, landmarks) where following puts the track's face in this frame, or None when it cannot."""
        box = self._follow(grey, track)
        if box is None:
            return None
        shift = np.array(box[:2], np.float32) - np.array(track.box[:2], np.float32)
        return box, None if track.landmarks is None else track.landmarks + shift

    def _follow(self, grey: np.ndarray, track: Track):
        """The face's new box (its size kept) by template matching against its patch at the last detection: a coarse
        search within half a box around the current box, then a fine one around the coarse result; None when lost."""
        templates = self._templates.get(track.id)
        if templates is None:
            return None
        coarse, fine = templates
        x, y, w, h = track.box
        H, W = grey.shape
        x0, y0 = max(0, x - w // 2), max(0, y - h // 2)
        x1, y1 = min(W, x + w + w // 2), min(H, y + h + h // 2)
        if x1 - x0 < w or y1 - y0 < h or coarse.std() < 1e-3:
            return None
        found = _match(grey[y0:y1, x0:x1], coarse, _scale(w, h, FOLLOW_SIDE))
        if found is None or found[2] < self.follow_min_score:
            return None
        # the fine search: the face's central part, within the coarse step (1 / its scale) and a pixel either way
        # of the coarse result
        pad = int(np.ceil(1 / _scale(w, h, FOLLOW_SIDE))) + 1
        (cx, cy), (fh, fw) = _centre_offset(w, h), fine.shape
        gx, gy = int(round(x0 + found[0])) - pad, int(round(y0 + found[1])) - pad
        window = _patch(grey, (gx + cx, gy + cy, fw + 2 * pad, fh + 2 * pad))
        _, _, _, (fx, fy) = cv2.minMaxLoc(cv2.matchTemplate(window, fine, cv2.TM_CCOEFF_NORMED))
        return (gx + fx, gy + fy, w, h)

    @staticmethod
    def _template(grey: np.ndarray, box) -> tuple[np.ndarray, np.ndarray]:
        """The face's patch at `box` as `_follow` searches for it: resized to the coarse scale, and its central part
        at full resolution."""
        _, _, w, h = box
        patch = _patch(grey, box)
        (cx, cy), side = _centre_offset(w, h), REFINE_SIDE
        return _resized(patch, _scale(w, h, FOLLOW_SIDE)), patch[cy:cy + side, cx:cx + side].copy()


def appearance(grey: np.ndarray, box, landmarks=None) -> np.ndarray:
    """A face's look: its crop (turned upright from the eye line when landmarks are given), LOOK_SIDE x LOOK_SIDE,
    slightly blurred, zero mean and unit length -> (LOOK_SIDE * LOOK_SIDE,) float32; two looks' dot product is their
    normalised correlation."""
    x, y, w, h = (float(v) for v in box)
    side = max(w, h, 1.0)
    angle = 0.0
    if landmarks is not None:
        d = np.asarray(landmarks, np.float64)[1] - np.asarray(landmarks, np.float64)[0]
        angle = float(np.degrees(np.arctan2(d[1], d[0])))
    m = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), angle, LOOK_SIDE / side)
    m[:, 2] += (LOOK_SIDE / 2 - (x + w / 2), LOOK_SIDE / 2 - (y + h / 2))
    crop = cv2.warpAffine(grey, m, (LOOK_SIDE, LOOK_SIDE), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    f = cv2.GaussianBlur(crop.astype(np.float32), (0, 0), 0.7)
    f -= f.mean()
    return (f / (np.linalg.norm(f) + 1e-6)).ravel()


def _thumbnail(grey: np.ndarray) -> np.ndarray:
    return cv2.resize(grey, (32, 24), interpolation=cv2.INTER_AREA).astype(np.float32)


def _match(region: np.ndarray, template: np.ndarray, s: float) -> tuple[float, float, float] | None:
    """Where `template` (a patch resized by `s`) best matches `region` (full scale) once resized by `s`: the x, y
    offset in region pixels (through the resized copy's actual scale, after rounding) and the match's normalised
    correlation; None when the template does not fit."""
    small = _resized(region, s)
    if template.shape[0] > small.shape[0] or template.shape[1] > small.shape[1]:
        return None
    _, best, _, (bx, by) = cv2.minMaxLoc(cv2.matchTemplate(small, template, cv2.TM_CCOEFF_NORMED))
    return bx * region.shape[1] / small.shape[1], by * region.shape[0] / small.shape[0], float(best)


def _centre_offset(w: int, h: int) -> tuple[int, int]:
    """Where the fine search's central part (at most REFINE_SIDE square) starts inside a w x h box."""
    return max(0, (w - REFINE_SIDE) // 2), max(0, (h - REFINE_SIDE) // 2)


def _resized(image: np.ndarray, s: float) -> np.ndarray:
    if s >= 1.0:
        return image
    return cv2.resize(image, (max(1, round(image.shape[1] * s)), max(1, round(image.shape[0] * s))),
                      interpolation=cv2.INTER_AREA)


def _still(box, landmarks, new_box, new_landmarks) -> bool:
    """Whether `new_box` (and its landmarks, when both are known) is the same place as `box`: centre, width, height
    and every landmark within STILL x the face's side."""
    x, y, w, h = box
    nx, ny, nw, nh = new_box
    tolerance = STILL * max(w, h)
    if np.hypot(nx + nw / 2 - x - w / 2, ny + nh / 2 - y - h / 2) > tolerance or \
            abs(nw - w) > tolerance or abs(nh - h) > tolerance:
        return False
    if landmarks is None or new_landmarks is None:
        return True
    return float(np.linalg.norm(np.asarray(new_landmarks) - np.asarray(landmarks), axis=-1).max()) <= tolerance


def _move(track: Track, box) -> None:
    """A followed face's new box; its landmarks move with it (template matching finds shifts, not turns)."""
    if track.landmarks is not None:
        track.landmarks = track.landmarks + np.array(box[:2], np.float32) - np.array(track.box[:2], np.float32)
    track.box = box


def _scale(w: int, h: int, side: float) -> float:
    """The scale at which a w x h face is `side` pixels across (never enlarged)."""
    return min(1.0, side / max(w, h))


def _patch(grey: np.ndarray, box) -> np.ndarray:
    x, y, w, h = box
    H, W = grey.shape
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    patch = grey[y0:y1, x0:x1]
    if patch.shape != (h, w):  # box partly outside the frame: pad so the template keeps the box's size
        patch = cv2.copyMakeBorder(patch, y0 - y, (y + h) - y1, x0 - x, (x + w) - x1, cv2.BORDER_REPLICATE) \
            if patch.size else np.zeros((h, w), np.uint8)
    return patch
