"""`Face`, one detected face and what was read from it, and its one serialiser: `Face.to_dict()` for JSON (the
CLI's --json, the server, live) and `Face.to_row()` for flat, typed table rows (ferkit.records: batch, video).
Every surface goes through these two, so a new field is added here once."""
from __future__ import annotations

import functools
import json
import warnings
from dataclasses import dataclass, field, replace

import numpy as np

from .detect import LANDMARKS

POSE_KEYS = ("yaw", "pitch", "roll")
LANDMARK_COLUMNS = [f"lm{i}_{c}" for i in range(len(LANDMARKS)) for c in "xy"]


def _accepts_confidence_keyword(cls):
    """`Face(..., confidence=x)`, the keyword's name before `detector_score`: still accepted, with a
    DeprecationWarning, until 0.3. Wraps the dataclass's own __init__, so fields, repr and equality stay its."""
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        if "confidence" in kwargs:
            if "detector_score" in kwargs or len(args) > 3:
                raise TypeError("Face() got both detector_score and confidence, its deprecated alias")
            warnings.warn("Face(confidence=...) is the detector's score: use Face(detector_score=...)",
                          DeprecationWarning, stacklevel=2)
            kwargs["detector_score"] = kwargs.pop("confidence")
        init(self, *args, **kwargs)

    cls.__init__ = __init__
    return cls


@_accepts_confidence_keyword
@dataclass
class Face:
    """One detected face. `box` is x, y, w, h in image pixels (the square the classifier saw, before any turn);
    probabilities sum to 1; `score` is the emotion's probability, `detector_score` the detector's for the box.
    The face features (load_recognizer(features=...)) are None unless asked for: `mesh` (478, 3) image pixels,
    `blendshapes` (MediaPipe's 52 names -> [0, 1]), `action_units` ("AU12" -> estimate in [0, 1]), `head_pose`
    (yaw, pitch, roll in degrees; ferkit.mesh says the convention)."""
    box: tuple[int, int, int, int]
    probabilities: dict[str, float]
    emotion: str                      # the most probable label
    detector_score: float             # the detector's score for this box, in [0, 1] (not the emotion's confidence)
    cam: np.ndarray | None = field(default=None, repr=False)  # (48, 48) map in [0, 1] over the box, for `emotion`
    landmarks: tuple[tuple[float, float], ...] | None = None  # five (x, y) image points in detect.LANDMARKS order
    detector: str = ""                # the detector that found the face ("yunet", or "blazeface" as its fallback)
    mesh: np.ndarray | None = field(default=None, repr=False)  # (478, 3) float32 x, y, z in image pixels
    blendshapes: dict[str, float] | None = field(default=None, repr=False)
    action_units: dict[str, float] | None = None
    head_pose: dict[str, float] | None = None
    base_probabilities: dict[str, float] | None = None  # with an adapter: the base model's own probabilities
    adapter: str | None = None        # the adapter whose classes `probabilities` are over (None: the base model's)

    @property
    def score(self) -> float:
        """The probability of `emotion`."""
        return self.probabilities[self.emotion]

    @property
    def confidence(self) -> float:
        """Deprecated alias of `detector_score` (the name read as the emotion's confidence; `Face(confidence=...)`
        is accepted as well); goes in 0.3."""
        warnings.warn("Face.confidence is the detector's score: use Face.detector_score", DeprecationWarning, stacklevel=2)
        return self.detector_score

    def scaled(self, k: float) -> "Face":
        """The same face in pixels k times larger (a photo read reduced by k): box, landmarks and mesh scaled."""
        if k == 1:
            return self
        return replace(self, box=tuple(int(round(v * k)) for v in self.box),
                       landmarks=None if self.landmarks is None else tuple((x * k, y * k) for x, y in self.landmarks),
                       mesh=None if self.mesh is None else (np.asarray(self.mesh) * np.float32(k)).astype(np.float32))

    def to_dict(self, decimals: int | None = None) -> dict:
        """The face as JSON-ready data. `decimals` rounds the probabilities (None: as computed). Feature keys
        (mesh, blendshapes, action_units, head_pose) appear only when the features were computed."""
        x, y, w, h = self.box
        probs = self.probabilities if decimals is None else {k: round(v, decimals) for k, v in self.probabilities.items()}
        d = {"box": {"x": x, "y": y, "w": w, "h": h}, "emotion": self.emotion, "probabilities": probs,
             "detector": self.detector, "detector_score": round(self.detector_score, 4),
             "detector_confidence": round(self.detector_score, 4),  # deprecated key, same value; goes in 0.3
             "landmarks": None if self.landmarks is None else [[round(x, 1), round(y, 1)] for x, y in self.landmarks]}
        if self.adapter:
            base = self.base_probabilities
            d["adapter"] = self.adapter
            d["base_probabilities"] = base if decimals is None or base is None else \
                {k: round(v, decimals) for k, v in base.items()}
        if self.mesh is not None:
            d["mesh"] = np.round(np.asarray(self.mesh, np.float64), 1).tolist()
        if self.blendshapes is not None:
            d["blendshapes"] = {k: round(v, 4) for k, v in self.blendshapes.items()}
        if self.action_units is not None:
            d["action_units"] = {k: round(v, 4) for k, v in self.action_units.items()}
        if self.head_pose is not None:
            d["head_pose"] = {k: round(v, 1) for k, v in self.head_pose.items()}
        return d

    def to_row(self, mesh: bool = False) -> dict:
        """The face as one flat row of typed values (ferkit.records names the columns): box x, y, w, h; lm0_x ...
        lm4_y; detector, detector_score, emotion; prob_<label>; with an adapter, adapter and base_prob_<label> (the
        base model's); when computed, bs_<blendshape>, au_<AU>, yaw, pitch, roll; with `mesh` (asked for: 1,434
        numbers) and a mesh computed, "mesh": the points as one JSON text, as to_dict's. Missing values are None."""
        row = dict(zip("xywh", (int(v) for v in self.box)))
        points = [None] * len(LANDMARK_COLUMNS) if self.landmarks is None else \
            [float(v) for v in np.asarray(self.landmarks, np.float64).reshape(-1)[:len(LANDMARK_COLUMNS)]]
        row.update(zip(LANDMARK_COLUMNS, points))
        row.update(detector=self.detector or None, detector_score=float(self.detector_score), emotion=self.emotion)
        row.update((f"prob_{k}", float(v)) for k, v in self.probabilities.items())
        if self.adapter:
            row["adapter"] = self.adapter
            row.update((f"base_prob_{k}", float(v)) for k, v in (self.base_probabilities or {}).items())
        if self.blendshapes is not None:
            row.update((f"bs_{k}", float(v)) for k, v in self.blendshapes.items())
        if self.action_units is not None:
            row.update((f"au_{k}", float(v)) for k, v in self.action_units.items())
        if self.head_pose is not None:
            row.update((k, float(self.head_pose[k])) for k in POSE_KEYS)
        if mesh and self.mesh is not None:
            row["mesh"] = json.dumps(np.round(np.asarray(self.mesh, np.float64), 1).tolist())
        return row
