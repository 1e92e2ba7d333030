"""Recognizer: detect faces -> preprocess -> ONNX Runtime -> `Face` results, with the optional face-features stage
(ferkit.mesh) composed beside the classifier like the detector. No torch needed."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import cv2
import numpy as np

from .head import load_adapter
from .detect import (DEFAULT_DETECTOR, Detections, Detector, check_detect_side, create_detector, detector_input,
                     find_faces, roll_degrees)
from .face import Face
from .images import load_image
from .labels import check_choice
from .mesh import BLENDSHAPES, FaceMesh, action_units, parse_features
from .preprocess import IMAGE_SIZE, PREPROCESS_SPEC, to_model_input
# The registry and the session helpers lived here once; their names stay importable from this module.
from .registry import (DEFAULT_MODEL, RETIRED_MODELS, WEIGHTS_DIR, available_models, describe_models,  # noqa: F401
                       read_metadata, read_metrics, resolve_model, session_metadata, shipped_member_files)
from .sessions import int8_saturates, open_session, uint8_weights  # noqa: F401


class Recognizer:
    """Facial emotion recognition on ONNX Runtime.

    analyze(image) finds faces and classifies each; classify(faces) takes pre-cropped faces; faces_for(image,
    detections) reads faces the caller found (a tracker). With `features`, each Face also carries the face mesh,
    blendshapes, action units and head pose (ferkit.mesh).
    Thread-safe: one instance can serve many threads (ONNX Runtime sessions are).
    """

    def __init__(self, model_path: str | Path, detector: Detector | str = DEFAULT_DETECTOR, *, threads: int | None = None,
                 tta: bool | str = False, margin: float = 0.0, align: bool = True, providers: list | None = None,
                 features=None, adapter: str | os.PathLike | None = None):
        if margin < 0 or margin > 1:
            raise ValueError(f"margin must be within 0-1 (a fraction of the box size), got {margin}")
        self.model_path = Path(model_path)
        self.providers = list(providers) if providers else ["CPUExecutionProvider"]
        self._session = open_session(self.model_path, threads=threads, providers=self.providers)  # the metadata comes from it too
        self.metadata = session_metadata(self._session, self.model_path)
        if self.metadata.get("preprocess", {}).get("image_size") != PREPROCESS_SPEC["image_size"] or \
                self.metadata["preprocess"].get("scale") != PREPROCESS_SPEC["scale"]:
            raise ValueError(f"{self.model_path}: preprocessing {self.metadata.get('preprocess')} differs from this ferkit's")
        self.labels: tuple[str, ...] = tuple(self.metadata["labels"])
        # an ensemble's members that ship alone run from their own files: (session, weight), added in _run
        self._added: list = []
        for path, entry in shipped_member_files(self.model_path, self.metadata):
            session = open_session(path, threads=threads, providers=self.providers)
            if tuple(session_metadata(session, path)["labels"]) != self.labels:
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
        # a head fitted on face features needs them: they are turned on with it
        wanted = [*parse_features(features), *getattr(self.adapter, "stage_features", ())]
        self.features: tuple[str, ...] = parse_features(wanted)
        self.face_mesh = FaceMesh(self.features, threads=threads, providers=self.providers) if self.features else None

    def __repr__(self) -> str:
        extra = f", features={self.features}" if self.features else ""
        return (f"Recognizer(model={self.name!r}, labels={len(self.labels)}, detector={self.detector.name!r}, "
                f"tta={self.tta}, align={self.align}{extra})")

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
        loaded, found = [], []
        for image in images:
            img = load_image(image, color=color)
            grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)  # once: grey detectors and the classifier share it
            if detect:
                found.append(find_faces(self.detector, detector_input(self.detector, img, grey)))
            else:
                found.append(Detections(np.array([[0, 0, img.shape[1], img.shape[0]]], np.int32), np.ones(1, np.float32),
                                        None, ("none",)))
            loaded.append((img, grey))
        return self._faces(loaded, found, explain=explain)

    def faces_for(self, image: np.ndarray, detections: Detections, *, explain: bool = False,
                  features: bool = True) -> list[Face]:
        """The Faces for faces already found in a BGR or grey image (a tracker's boxes, with their landmarks where
        known): classified, and with the face features when the Recognizer has them, exactly as `analyze` does.
        `features=False` leaves the face-features stage for `add_features` (ferkit.video runs it in a second
        thread); refused when the adapter reads the features, since it is applied here."""
        if not features and self.face_mesh is not None and getattr(self.adapter, "stage_features", ()):
            raise ValueError(f"the adapter {self.adapter.name} reads face features: they cannot be added later")
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        return self._faces([(image, grey)], [detections], explain=explain, features=features)[0]

    def add_features(self, image: np.ndarray, faces: list[Face]) -> list[Face]:
        """Faces made by faces_for(image, ..., features=False) -> copies with the face-features stage's fields,
        read from their boxes and landmarks as faces_for reads them (the same values)."""
        if self.face_mesh is None or not faces:
            return list(faces)
        marks = [f.landmarks for f in faces]
        found = Detections(np.array([f.box for f in faces], np.int32).reshape(-1, 4),
                           np.array([f.detector_score for f in faces], np.float32),
                           None if any(m is None for m in marks) else np.array(marks, np.float32).reshape(-1, 5, 2),
                           tuple(f.detector for f in faces))
        return [dataclasses.replace(f, **extra) for f, extra in zip(faces, self._features(image, found))]

    def analyze_boxes(self, image: np.ndarray, boxes, scores=None, *, explain: bool = False, landmarks=None,
                      detector: str = "") -> list[Face]:
        """Classify given boxes (N, 4) x, y, w, h in a BGR or grey image (with their (N, 5, 2) landmarks, if known)."""
        boxes = np.asarray(boxes, np.int32).reshape(-1, 4)
        scores = np.ones(len(boxes), np.float32) if scores is None else np.asarray(scores, np.float32)
        lm = None if landmarks is None else np.asarray(landmarks, np.float32).reshape(-1, 5, 2)
        return self.faces_for(image, Detections(boxes, scores, lm, (detector,) * len(boxes)), explain=explain)

    def _faces(self, images: list[tuple[np.ndarray, np.ndarray]], found: list[Detections], *,
               explain: bool, features: bool = True) -> list[list[Face]]:
        """(image, grey) pairs and what was found in each -> their Faces: every face of every image classified in one
        batch, then the face features per image. The one place Faces are made."""
        crops = [self.crop(grey, b, None if d.landmarks is None else d.landmarks[i])
                 for (_, grey), d in zip(images, found) for i, b in enumerate(d.boxes)]
        probs, cams = self._classify_with_cams(crops)
        out, k = [], 0
        for (image, _), d in zip(images, found):
            n = len(d)
            extras = self._features(image, d) if features and self.face_mesh is not None and n else [{}] * n
            out.append([self._make_face(d.boxes[i], probs[k + i], d.scores[i], cams[k + i] if explain else None,
                                        landmarks=None if d.landmarks is None else d.landmarks[i],
                                        detector=d.sources[i], **extras[i])
                        for i in range(n)])
            k += n
        return out

    def _features(self, image: np.ndarray, d: Detections) -> list[dict]:
        """The face-features stage on one image's faces -> per face the Face fields it fills. Faces go through the
        mesh model MESH_BATCH at a time: its activations for one 256x256 crop take tens of MB, so a photo of
        hundreds of faces in one batch took gigabytes (and ONNX Runtime's arena kept them)."""
        out = []
        for start in range(0, len(d), MESH_BATCH):
            out += self._features_batch(image, d.boxes[start:start + MESH_BATCH],
                                        None if d.landmarks is None else d.landmarks[start:start + MESH_BATCH])
        return out

    def _features_batch(self, image: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray | None) -> list[dict]:
        mesh = self.face_mesh
        rois = mesh.rois(boxes, landmarks)
        if landmarks is None:  # a box alone frames the face loosely: crop again from the first mesh, as MediaPipe does
            result, _ = mesh.refine(image, rois)
        else:
            result = mesh.run(image, rois)
        out = []
        for i in range(len(boxes)):
            f = {}
            if "mesh" in self.features:
                f["mesh"] = result.mesh[i]
            if result.blendshapes is not None:
                b = result.blendshapes[i]
                f["blendshapes"] = {name: float(v) for name, v in zip(BLENDSHAPES, b)}
                f["action_units"] = action_units(b)
            if result.pose is not None:
                f["head_pose"] = dict(zip(("yaw", "pitch", "roll"), (float(v) for v in result.pose[i])))
            if result.embedding is not None:
                f["mesh_embedding"] = result.embedding[i]
            out.append(f)
        return out

    def _make_face(self, box, probabilities: np.ndarray, detector_score: float, cam: np.ndarray | None = None, *,
                   landmarks=None, detector: str = "", **features) -> Face:
        """A Face for a box from its (K,) probabilities; `cam`: its raw (K, 6, 6) maps, or None for no map."""
        top = int(np.argmax(probabilities))
        face = Face(box=tuple(int(v) for v in box),
                    probabilities={label: float(v) for label, v in zip(self.base_labels, probabilities)},
                    emotion=self.base_labels[top],
                    detector_score=float(np.float32(detector_score)),  # the detectors' float32, whichever caller
                    cam=None if cam is None else normalise_cam(cam[top]),
                    landmarks=None if landmarks is None else tuple((float(x), float(y)) for x, y in np.asarray(landmarks)),
                    detector=detector, **features)
        return face if self.adapter is None else self.adapter.apply(face)  # after the stage that fills its features


TTA_MODES = ("none", "flip", "crops")
MESH_BATCH = 4  # faces per run of the mesh model: bounds its memory; larger batches were no faster per face here
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
                    providers: list | None = None, detect_side: int | None = None, features=None,
                    adapter: str | os.PathLike | None = None) -> Recognizer:
    """The front door. `model`: a shipped name (see available_models(); default "ferplus", the one that agrees best
    with people, docs/quality.md) or an .onnx path.
    `detector`: "yunet" (default), "blazeface", "haar", "haar-alt2", "none" (pre-cropped faces), or a Detector
    object (detect.DETECTOR_NOTES says when each helps).
    `threads`: ONNX Runtime threads for the classifier (None: its default). `tta`: "none", "flip" or "crops"
    (test-time augmentation). `margin`: widen each face box by this fraction. `align`: turn faces upright from their
    eye line before classifying (detectors with landmarks only). `providers`: ONNX Runtime execution providers
    (default CPU; e.g. ["CUDAExecutionProvider", "CPUExecutionProvider"] with onnxruntime-gpu).
    `detect_side`: yunet's working size, the longer side in pixels an image is scaled to before detection (None:
    640, faces from about a thirtieth of a photo's longer side; 1280 finds the small faces of large photos at about
    5x the detector's time); yunet only.
    `features`: face features to read beside the emotion, any of "mesh" (478 3-D points), "blendshapes" (52
    expression coefficients and the action-unit estimates read from them), "pose" (yaw, pitch, roll), as a tuple or
    a comma-separated string, or "all" (None: none, today's speed).
    `adapter`: a head file written by `ferkit adapt` (or a head.Head) fitted on this model: Face.probabilities
    are then over its classes, the model's own in Face.base_probabilities, and `labels`/`name` say so.
    """
    if detect_side is not None:
        check_detect_side(detector, detect_side)
        detector = create_detector("yunet", long_side=detect_side, threads=threads)
    return Recognizer(resolve_model(model), detector, threads=threads, tta=tta, margin=margin, align=align,
                      providers=providers, features=features, adapter=adapter)
