"""Recognizer: detect faces -> preprocess -> ONNX Runtime -> `Face` results. No torch needed."""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from .adapt import load_adapter
from .detect import (DEFAULT_DETECTOR, Detections, Detector, check_detect_side, create_detector, detector_input,
                     find_faces, roll_degrees)
from .images import load_image
from .labels import check_choice
from .modelfile import metadata_from_map
from .preprocess import IMAGE_SIZE, PREPROCESS_SPEC, to_model_input

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_MODEL = "fer2013"
# Names that once shipped and were retired because another model beats them on both test splits: the name still
# loads, as its replacement, with a FutureWarning, so code written against it keeps working (docs/quality.md).
RETIRED_MODELS = {"ferplus-accurate": "ferplus"}


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
    probabilities sum to 1; `score` is the emotion's probability, `detector_score` the detector's for the box."""
    box: tuple[int, int, int, int]
    probabilities: dict[str, float]
    emotion: str                      # the most probable label
    detector_score: float             # the detector's score for this box, in [0, 1] (not the emotion's confidence)
    cam: np.ndarray | None = field(default=None, repr=False)  # (48, 48) map in [0, 1] over the box, for `emotion`
    landmarks: tuple[tuple[float, float], ...] | None = None  # five (x, y) image points in detect.LANDMARKS order
    detector: str = ""                # the detector that found the face ("yunet", or "blazeface" as its fallback)
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

    def to_dict(self) -> dict:
        x, y, w, h = self.box
        return {"box": {"x": x, "y": y, "w": w, "h": h}, "emotion": self.emotion, "probabilities": self.probabilities,
                "detector": self.detector, "detector_score": round(self.detector_score, 4),
                "detector_confidence": round(self.detector_score, 4),  # deprecated key, same value; goes in 0.3
                "landmarks": None if self.landmarks is None else [[round(x, 1), round(y, 1)] for x, y in self.landmarks]} \
            | ({"adapter": self.adapter, "base_probabilities": self.base_probabilities} if self.adapter else {})


def available_models() -> list[str]:
    """Names of the models shipped in the package, for load_recognizer(name)."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.onnx"))


def describe_models() -> list[dict]:
    """One summary per shipped model, from its file's metadata and its published metrics (weights/NAME.metrics.json,
    written by `ferkit evaluate --model-card`): what `ferkit models` prints. Figures are PrivateTest, no TTA.
    `size_mb` is everything the model runs: its file and the shipped models an ensemble adds (see
    shipped_member_files), though those are on disk once for both."""
    rows = []
    for name in available_models():
        path = WEIGHTS_DIR / f"{name}.onnx"
        meta, metrics = read_metadata(path), read_metrics(path)
        members = meta.get("ensemble")
        files = [path] + [p for p, _ in shipped_member_files(path, meta, check=False)]
        rows.append({"name": name, "default": name == DEFAULT_MODEL, "labels": list(meta["labels"]),
                     "size_mb": round(sum(p.stat().st_size for p in files) / 1e6, 1),
                     "networks": len(members) if isinstance(members, list) else 1,
                     "test_set": metrics.get("test_set"), "test_accuracy": metrics.get("test_accuracy"),
                     "robustness_mean": metrics.get("robustness_mean")})
    return rows


def read_metrics(model_path: str | Path) -> dict:
    """A model's published figures (weights/NAME.metrics.json beside the .onnx, written by `ferkit evaluate
    --model-card`), or {} where none were published."""
    path = Path(model_path).with_suffix(".metrics.json")
    return json.loads(path.read_text()) if path.is_file() else {}


def shipped_member_files(model_path: str | Path, meta: dict, *, check: bool = True) -> list[tuple[Path, dict]]:
    """The shipped model files an ensemble runs beside its own graph, each with its `shipped_members` entry (name,
    member, weight, sha256): an ensemble whose members also ship alone (`fer2013-accurate` holds `fer2013` and
    `fer2013-robust`) can store each of those networks once, as the model file of that name in its own directory
    (store_once.py: the wheel's `fer2013-accurate` is stored so; the file in git is whole, docs/quality.md). [] for
    any other model. A missing file raises FileNotFoundError
    naming it; with `check`, a file that is not the one the ensemble was built with (its sha256) raises ValueError."""
    model_path = Path(model_path)
    if meta.get("shipped_members") and "class_offsets" in meta:  # offsets inside the graph would miss the added members
        raise ValueError(f"{model_path}: an ensemble with shipped members cannot also carry class offsets")
    out = []
    for entry in meta.get("shipped_members") or []:
        path = model_path.parent / f"{entry['name']}.onnx"
        what = f"the shipped model {entry['name']!r} (its member {entry.get('member')}, weight {entry['weight']})"
        if not path.is_file():
            raise FileNotFoundError(f"{model_path}: this ensemble runs {what} from {path}, which is missing; keep the "
                                    f"model files of one ferkit release together")
        if check and entry.get("sha256") and hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
            raise ValueError(f"{model_path}: this ensemble runs {what} from {path}, but that file is not the one it was "
                             f"built with (another sha256); keep the model files of one ferkit release together")
        out.append((path, entry))
    return out


def resolve_model(model: str | os.PathLike | None) -> Path:
    if model is None:
        model = DEFAULT_MODEL
    path = Path(model)
    if path.suffix == ".onnx":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such model file")
        return path
    name, shipped = str(model), available_models()
    if name in RETIRED_MODELS and name not in shipped:  # a file shipped again under the name wins over the alias
        warnings.warn(f"model {name!r} is retired: {RETIRED_MODELS[name]!r}, which beats it on both test splits, is "
                      f"loaded instead (see docs/quality.md)", FutureWarning, stacklevel=3)
        name = RETIRED_MODELS[name]
    if name in shipped:
        return WEIGHTS_DIR / f"{name}.onnx"
    raise ValueError(f"unknown model {name!r}; valid: {', '.join(shipped) or '(none shipped)'}, or a path to an .onnx file")


def read_metadata(path: str | Path) -> dict:
    """The facts ferkit's export writes into the ONNX file (labels, preprocessing, config, metrics)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return _metadata(_open_session(path, opts, run=False), path)


def _open_session(path: str | Path, opts: ort.SessionOptions, run: bool = True,
                  providers: list | None = None) -> ort.InferenceSession:
    """An ONNX Runtime session on the CPU; `run`: one that will compute, so an INT8 model gets exact kernels on CPUs
    whose own would saturate (see int8_saturates)."""
    try:
        model = uint8_weights(path) if run and int8_saturates() else None
        return ort.InferenceSession(model or str(path), opts, providers=providers or ["CPUExecutionProvider"])
    except Exception as e:  # ORT and protobuf raise their own exception types for files that are not ONNX
        raise ValueError(f"{path}: not a readable ONNX model ({e})") from e


@functools.lru_cache(maxsize=1)
def int8_saturates() -> bool:
    """Whether ONNX Runtime's INT8 convolutions lose accuracy on this CPU. On x86 without VNNI (AVX512-VNNI, AVX-VNNI,
    AMX) they multiply uint8 activations by int8 weights with an instruction that adds pairs of products into 16 bits
    and clips them: on an AVX2 EPYC the shipped `fer2013` scored 69.88 % on PublicTest instead of the 70.91 % it
    scores where the products are exact, `fer2013-accurate` 70.94 % instead of 72.39 %. ARM and VNNI CPUs are exact."""
    if platform.machine().lower() not in ("x86_64", "amd64", "x86", "i386", "i686"):
        return False
    try:  # numpy's own CPUID probe, on every OS
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features  # numpy < 2
        except ImportError:
            features = {}
    if features.get("AVX512VNNI"):
        return False
    try:  # AVX-VNNI (no AVX-512) and AMX are not in numpy's list; Linux names them
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    return not flags & {"avx_vnni", "avx512_vnni", "amx_int8"}


def uint8_weights(path: str | Path) -> bytes | None:
    """The model with each int8 weight tensor stored as uint8 (w + 128, its zero point + 128): the same numbers
    exactly, which ONNX Runtime multiplies with its u8u8 kernels, widening to 32 bits, so nothing saturates (and,
    measured on the AVX2 EPYC, faster than running the weights in float). None for a model without int8 weights.

    Done on the protobuf bytes with a small reader of the wire format, not the onnx package (importing it took
    seconds of load_recognizer's time): only initializers read by DequantizeLinear alone, and their explicit zero
    points, are re-encoded; every other byte of the file is copied as it is."""
    buf = Path(path).read_bytes()
    try:
        (graph_start, graph_end, graph_span), tensors, users, zero_points = _int8_initializers(buf)
        convert = set()
        for name in tensors:
            if users.get(name) == {"DequantizeLinear"} and zero_points.get(name) in tensors:
                convert |= {name, zero_points[name]}
        if not convert:
            return None
        graph = bytearray()
        for number, wire, value, start, end in _fields(buf, *graph_span):
            if number == 5 and wire == 2 and _tensor_name(buf, value) in convert:
                graph += _field_bytes(5, _tensor_as_uint8(buf, value))
            else:
                graph += buf[start:end]
        return bytes(buf[:graph_start] + _field_bytes(7, bytes(graph)) + buf[graph_end:])
    except (IndexError, ValueError):  # not a protobuf we can walk: ONNX Runtime reports it when it loads the file
        return None


_INT8, _UINT8 = 3, 2  # onnx.TensorProto.INT8, UINT8


def _varint(buf, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[i]
        value |= (b & 0x7F) << shift
        i += 1
        if b < 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int32s are sign-extended to 64 bits, as protobuf does
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        out.append(b | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def _fields(buf, start: int, end: int):
    """Protobuf wire format: (field number, wire type, value, field start, field end) for each field in
    buf[start:end]; the value is the varint for wire type 0, the payload's (start, end) for wire type 2."""
    i = start
    while i < end:
        field_start = i
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = None, i + 8
        elif wire == 5:
            value, i = None, i + 4
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = (i, i + n), i + n
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if i > end:
            raise ValueError("field runs past its message")
        yield number, wire, value, field_start, i


def _tensor_name(buf, span) -> str:
    return next((bytes(buf[v[0]:v[1]]).decode() for n, w, v, _, _ in _fields(buf, *span) if n == 8 and w == 2), "")


def _tensor_as_uint8(buf, span) -> bytes:
    """A TensorProto (data_type = 2, int32_data = 5, raw_data = 9) of int8 values re-encoded as uint8, v + 128."""
    out = bytearray()
    for number, wire, value, start, end in _fields(buf, *span):
        if number == 2 and wire == 0:
            out += _encode_varint(2 << 3) + _encode_varint(_UINT8)
        elif number == 9 and wire == 2:
            out += _field_bytes(9, bytes(np.frombuffer(buf[value[0]:value[1]], np.uint8) ^ 0x80))  # int8 + 128
        elif number == 5:  # int32_data, packed (wire 2) or one varint per value (wire 0)
            values = [value] if wire == 0 else _packed(buf, value)
            out += _field_bytes(5, b"".join(_encode_varint(((v + 2 ** 31) % 2 ** 32 - 2 ** 31) + 128) for v in values))
        else:
            out += buf[start:end]
    return bytes(out)


def _packed(buf, span) -> list[int]:
    values, i = [], span[0]
    while i < span[1]:
        v, i = _varint(buf, i)
        values.append(v)
    return values


def _int8_initializers(buf):
    """From a serialized ModelProto: its graph field as (field start, field end, payload (start, end)), the names of
    the graph's int8 initializers, {tensor name: op types of the nodes that read it} and {DequantizeLinear weight:
    its zero point}."""
    graph_field = next((start, end, value) for number, wire, value, start, end in _fields(buf, 0, len(buf))
                       if number == 7 and wire == 2)  # ModelProto.graph
    tensors, users, zero_points = set(), {}, {}
    for number, wire, span, _, _ in _fields(buf, *graph_field[2]):
        if wire != 2:
            continue
        if number == 1:  # NodeProto: input = 1, op_type = 4
            inputs, op = [], ""
            for n, w, v, _, _ in _fields(buf, *span):
                if n == 1 and w == 2:
                    inputs.append(bytes(buf[v[0]:v[1]]).decode())
                elif n == 4 and w == 2:
                    op = bytes(buf[v[0]:v[1]]).decode()
            for name in inputs:
                users.setdefault(name, set()).add(op)
            if op == "DequantizeLinear" and len(inputs) > 2 and inputs[2]:
                zero_points[inputs[0]] = inputs[2]
        elif number == 5:  # TensorProto: data_type = 2
            if any(n == 2 and w == 0 and v == _INT8 for n, w, v, _, _ in _fields(buf, *span)):
                tensors.add(_tensor_name(buf, span))
    return graph_field, tensors, users, zero_points


def _metadata(session: ort.InferenceSession, path: str | Path) -> dict:
    return metadata_from_map(session.get_modelmeta().custom_metadata_map, path)


class Recognizer:
    """Facial emotion recognition on ONNX Runtime.

    analyze(image) finds faces and classifies each; classify(faces) takes pre-cropped faces.
    Thread-safe: one instance can serve many threads (ONNX Runtime sessions are).
    """

    def __init__(self, model_path: str | Path, detector: Detector | str = DEFAULT_DETECTOR, *, threads: int | None = None,
                 tta: bool | str = False, margin: float = 0.0, align: bool = True, providers: list | None = None,
                 adapter: str | os.PathLike | None = None):
        if margin < 0 or margin > 1:
            raise ValueError(f"margin must be within 0-1 (a fraction of the box size), got {margin}")
        self.model_path = Path(model_path)
        self.providers = list(providers) if providers else ["CPUExecutionProvider"]
        opts = ort.SessionOptions()
        # Worker threads that spin-wait after a run steal the CPU from the detector that runs next (measured:
        # +11 ms per 640x480 frame on 2 cores); sleeping costs nothing measurable at these sizes.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        self._session = _open_session(self.model_path, opts, providers=self.providers)  # loaded once: the metadata comes from it too
        self.metadata = _metadata(self._session, self.model_path)
        if self.metadata.get("preprocess", {}).get("image_size") != PREPROCESS_SPEC["image_size"] or \
                self.metadata["preprocess"].get("scale") != PREPROCESS_SPEC["scale"]:
            raise ValueError(f"{self.model_path}: preprocessing {self.metadata.get('preprocess')} differs from this ferkit's")
        self.labels: tuple[str, ...] = tuple(self.metadata["labels"])
        # an ensemble's members that ship alone run from their own files: (session, weight), added in _run
        self._added: list[tuple[ort.InferenceSession, np.float32]] = []
        for path, entry in shipped_member_files(self.model_path, self.metadata):
            session = _open_session(path, opts, providers=self.providers)
            if tuple(_metadata(session, path)["labels"]) != self.labels:
                raise ValueError(f"{self.model_path}: the shipped model it runs, {path}, has other labels")
            self._added.append((session, np.float32(entry["weight"])))
        self.name: str = self.metadata.get("name", self.model_path.stem)
        self.detector = create_detector(detector, threads=threads) if isinstance(detector, str) else detector
        self.tta = check_choice("tta", {False: "none", True: "flip", None: "none"}.get(tta, tta), TTA_MODES)
        self.margin, self.align = margin, bool(align)
        self.metrics: dict = read_metrics(self.model_path)
        # adapter (ferkit adapt): a head over the model's outputs; `labels` are then its classes, `name` names it
        self.base_labels: tuple[str, ...] = self.labels
        self.adapter = None if adapter is None else load_adapter(adapter, self.model_path, self.labels)
        if self.adapter is not None:
            self.labels, self.name = self.adapter.classes, f"{self.name}+{self.adapter.name}"

    def __repr__(self) -> str:
        return (f"Recognizer(model={self.name!r}, labels={len(self.labels)}, detector={self.detector.name!r}, "
                f"tta={self.tta}, align={self.align})")

    # ------------------------------------------------------------ classification
    def classify(self, faces) -> np.ndarray:
        """Face crops (a list of grey/BGR arrays of any size, or an (N, H, W) array) -> (N, K) probabilities."""
        return self._classify_with_cams(faces)[0]

    def _classify_with_cams(self, faces) -> tuple[np.ndarray, np.ndarray]:
        """-> probabilities (N, K) and class activation maps (N, K, 6, 6) (raw, before any scaling)."""
        x = to_model_input(faces)                                     # (N, 1, 48, 48)
        if len(x) == 0:
            return np.zeros((0, len(self.base_labels)), np.float32), np.zeros((0, len(self.base_labels), 6, 6), np.float32)
        if self.tta == "none":
            return self._run(x)
        # test-time augmentation: average over views; the maps come from the unshifted views only
        views = [x, x[:, :, :, ::-1]]
        if self.tta == "crops":
            views += [v for s in _crop_views(x) for v in (s, s[:, :, :, ::-1])]
        n = len(x)
        probs, cams = self._run(np.concatenate(views))
        probs = probs.reshape(len(views), n, -1).mean(0)
        return probs, (cams[:n] + cams[n:2 * n, :, :, ::-1]) / 2

    def _run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The model alone on already preprocessed input, (N, 1, 48, 48) float32 in [-1, 1] (what
        preprocess.to_model_input returns, or a training batch) -> probabilities (N, K) and maps (N, K, 6, 6); no TTA.
        The file's graph, plus the weighted outputs of the shipped models an ensemble adds (shipped_member_files;
        their weights multiply in float32, as the graph's own members' do). Every path that runs the model comes here."""
        feed = {"input": np.ascontiguousarray(x, np.float32)}
        probs, cams = self._session.run(None, feed)
        for session, weight in self._added:
            p, c = session.run(None, feed)
            probs += weight * p
            cams += weight * c
        return probs, cams

    # ------------------------------------------------------------ full images
    def crop(self, image: np.ndarray, box, landmarks=None) -> np.ndarray:
        """The grey crop for a box (x, y, w, h), widened by `margin`. With `align` and the face's (5, 2) landmarks,
        the square is turned upright from the eye line (pixels beyond the image repeat its border); otherwise it is
        the box itself, clamped to the image."""
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        x, y, w, h = (int(v) for v in box)
        if self.align and landmarks is not None:
            roll = float(roll_degrees(np.asarray(landmarks, np.float32).reshape(1, 5, 2))[0])
            side = max(1, int(round(max(w, h) * (1 + self.margin))))
            cx, cy = x + w / 2, y + h / 2
            m = cv2.getRotationMatrix2D((cx, cy), roll, 1.0)  # OpenCV turns by +roll counter-clockwise: undoes it
            m[:, 2] += (side / 2 - cx, side / 2 - cy)
            return cv2.warpAffine(grey, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mx, my = int(round(w * self.margin / 2)), int(round(h * self.margin / 2))
        x0, y0 = max(0, x - mx), max(0, y - my)
        x1, y1 = min(grey.shape[1], x + w + mx), min(grey.shape[0], y + h + my)
        return grey[y0:y1, x0:x1]

    def detect(self, image) -> Detections:
        """The detector alone on an image (any input `analyze` takes): boxes, scores, landmarks, which detector."""
        img = load_image(image)
        return find_faces(self.detector, detector_input(self.detector, img, cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)))

    def analyze(self, image, *, detect: bool = True, explain: bool = False, color: str = "bgr") -> list[Face]:
        """Find the faces in `image` and recognise each one's emotion.

        `image`: a file path, encoded bytes, a NumPy array (BGR by default; `color="rgb"` for RGB; grey works)
        or a PIL image. `detect=False` treats the whole image as one pre-cropped face.
        `explain=True` fills `Face.cam` with the class activation map of the dominant emotion.
        Returns one Face per face found, left to right; an empty list when there is none.
        """
        if isinstance(image, (list, tuple)):
            raise TypeError("analyze takes one image; use analyze_many for a list of images")
        return self.analyze_many([image], detect=detect, explain=explain, color=color)[0]

    def analyze_many(self, images, *, detect: bool = True, explain: bool = False, color: str = "bgr") -> list[list[Face]]:
        """`analyze` for several images, their faces classified in one batch: one list of Faces per image."""
        greys, found = [], []
        for image in images:
            img = load_image(image, color=color)
            grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)  # once: grey detectors and the classifier share it
            if detect:
                found.append(find_faces(self.detector, detector_input(self.detector, img, grey)))
            else:
                found.append(Detections(np.array([[0, 0, img.shape[1], img.shape[0]]], np.int32), np.ones(1, np.float32),
                                        None, ("none",)))
            greys.append(grey)
        crops = [self.crop(g, b, None if d.landmarks is None else d.landmarks[i])
                 for g, d in zip(greys, found) for i, b in enumerate(d.boxes)]
        probs, cams = self._classify_with_cams(crops)
        out, k = [], 0
        for d in found:
            n = len(d)
            out.append([self._make_face(d.boxes[i], probs[k + i], d.scores[i], cams[k + i] if explain else None,
                                        landmarks=None if d.landmarks is None else d.landmarks[i], detector=d.sources[i])
                        for i in range(n)])
            k += n
        return out

    def analyze_boxes(self, image: np.ndarray, boxes, scores=None, *, explain: bool = False, landmarks=None,
                      detector: str = "") -> list[Face]:
        """Classify given boxes (N, 4) x, y, w, h in a BGR or grey image (with their (N, 5, 2) landmarks, if known):
        for callers that track faces."""
        boxes = np.asarray(boxes, np.int32).reshape(-1, 4)
        scores = np.ones(len(boxes), np.float32) if scores is None else np.asarray(scores, np.float32)
        if len(boxes) == 0:
            return []
        probs, cams = self._classify_boxes(image, boxes, landmarks)
        return [self._make_face(box, p, score, cam if explain else None,
                                landmarks=None if landmarks is None else landmarks[i], detector=detector)
                for i, (box, score, p, cam) in enumerate(zip(boxes, scores, probs, cams))]

    def _classify_boxes(self, image: np.ndarray, boxes, landmarks=None) -> tuple[np.ndarray, np.ndarray]:
        """The crops of boxes (N, 4) x, y, w, h in a BGR or grey image (aligned where (N, 5, 2) landmarks are given)
        -> probabilities (N, K) and raw maps (N, K, 6, 6)."""
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        return self._classify_with_cams([self.crop(grey, b, None if landmarks is None else landmarks[i])
                                         for i, b in enumerate(boxes)])

    def _make_face(self, box, probabilities: np.ndarray, detector_score: float, cam: np.ndarray | None = None, *,
                   landmarks=None, detector: str = "") -> Face:
        """A Face for a box from its (K,) probabilities; `cam`: its raw (K, 6, 6) maps, or None for no map."""
        top = int(np.argmax(probabilities))
        face = Face(box=tuple(int(v) for v in box),
                    probabilities={label: float(v) for label, v in zip(self.base_labels, probabilities)},
                    emotion=self.base_labels[top],
                    detector_score=float(np.float32(detector_score)),  # the detectors' float32, whichever caller
                    cam=None if cam is None else normalise_cam(cam[top]),
                    landmarks=None if landmarks is None else tuple((float(x), float(y)) for x, y in np.asarray(landmarks)),
                    detector=detector)
        return face if self.adapter is None else self.adapter.apply(face)  # after any stage that fills its features


TTA_MODES = ("none", "flip", "crops")
TTA_CROP = 44  # crops of 44x44 (corners and centre) enlarged back to 48x48, like the training zoom


def _crop_views(x: np.ndarray) -> list[np.ndarray]:
    """(N, 1, 48, 48) -> five zoomed views (4 corners + centre) of the same shape."""
    d = IMAGE_SIZE - TTA_CROP
    views = []
    for dy, dx in ((0, 0), (0, d), (d, 0), (d, d), (d // 2, d // 2)):
        crop = x[:, 0, dy:dy + TTA_CROP, dx:dx + TTA_CROP]
        views.append(np.stack([cv2.resize(c, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_LINEAR) for c in crop])[:, None])
    return views


def normalise_cam(cam: np.ndarray) -> np.ndarray:
    """(h, w) raw class map -> (48, 48) float32 in [0, 1], upsampled smoothly over the face."""
    cam = cv2.resize(cam.astype(np.float32), (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_CUBIC)
    cam -= cam.min()
    peak = cam.max()
    return cam / peak if peak > 0 else cam


def load_recognizer(model: str | os.PathLike | None = None, detector: Detector | str = DEFAULT_DETECTOR, *,
                    threads: int | None = None, tta: bool | str = False, margin: float = 0.0, align: bool = True,
                    providers: list | None = None, detect_side: int | None = None,
                    adapter: str | os.PathLike | None = None) -> Recognizer:
    """The front door. `model`: a shipped name (see available_models(); default "fer2013") or an .onnx path.
    `detector`: "yunet" (default), "blazeface", "haar", "haar-alt2", "none" (pre-cropped faces), or a Detector
    object (detect.DETECTOR_NOTES says when each helps).
    `threads`: ONNX Runtime threads for the classifier (None: its default). `tta`: "none", "flip" or "crops"
    (test-time augmentation). `margin`: widen each face box by this fraction. `align`: turn faces upright from their
    eye line before classifying (detectors with landmarks only). `providers`: ONNX Runtime execution providers
    (default CPU; e.g. ["CUDAExecutionProvider", "CPUExecutionProvider"] with onnxruntime-gpu).
    `detect_side`: yunet's working size, the longer side in pixels an image is scaled to before detection (None:
    640, faces from about a thirtieth of a photo's longer side; 1280 finds the small faces of large photos at about
    5x the detector's time); yunet only.
    `adapter`: a head file written by `ferkit adapt` (or an adapt.Head) fitted on this model: Face.probabilities
    are then over its classes, the model's own in Face.base_probabilities, and `labels`/`name` say so.
    """
    if detect_side is not None:
        check_detect_side(detector, detect_side)
        detector = create_detector("yunet", long_side=detect_side, threads=threads)
    return Recognizer(resolve_model(model), detector, threads=threads, tta=tta, margin=margin, align=align,
                      providers=providers, adapter=adapter)
