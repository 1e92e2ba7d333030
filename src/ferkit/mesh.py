"""Face features: a 478-point 3-D face mesh, 52 expression blendshapes, action-unit estimates and head pose.

The stage runs two of Google's MediaPipe models (Face Mesh V2 and Blendshape V2, Apache-2.0), converted to ONNX
(scripts/convert_face_landmarker.py; weights/NOTICE.md), on ONNX Runtime like the rest of ferkit:

    image + the detector's box and five landmarks
      -> a square crop, 1.5x the face, turned upright from the eye line       (MediaPipe's own framing, see face_roi)
      -> Face Mesh V2 (256x256 RGB in [0, 1]) -> 478 (x, y, z), mapped back to image pixels
      -> 146 of them, (x, y) in image pixels -> Blendshape V2 -> 52 coefficients in [0, 1]
      -> action units: FACS estimates read from the blendshapes (ACTION_UNITS says which)
      -> head pose: the canonical face model fitted to the mesh (weighted Procrustes) -> yaw, pitch, roll
      -> embedding (for adapt heads): the mesh model's last shared feature map, 128x2x2 = 512 numbers, the tensor
         that feeds its three output heads, read from the same run (an extra output of the loaded graph)

Head pose convention (degrees, 0 = facing the camera upright): yaw > 0 when the face turns towards the image's right
(the person's left), pitch > 0 when the face tilts up (chin up), roll > 0 when the face is turned clockwise on screen
(as detect.roll_degrees). The fit is orthographic (no camera model): angles up to about 45 degrees are meaningful.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

FACE_WEIGHTS = Path(__file__).parent / "weights" / "face"
MESH_MODEL = FACE_WEIGHTS / "face_mesh_v2.onnx"
BLENDSHAPE_MODEL = FACE_WEIGHTS / "face_blendshapes_v2.onnx"
CANONICAL_FACE = FACE_WEIGHTS / "canonical_face.json"

FEATURES = ("mesh", "blendshapes", "pose")  # what load_recognizer(features=...) and --features take ("all": every one)
EMBEDDING = "embedding"  # also taken by parse_features, never part of "all": a feature for adapt heads (ferkit.adapt)
EMBEDDING_SIZE = 512     # the mesh model's last shared map, (128, 2, 2) flattened
MESH_POINTS = 478    # 468 face points + 10 iris points
MESH_INPUT = 256     # the mesh model's input side
ROI_SCALE = 1.5      # MediaPipe's crop: 1.5x the face's landmark box, square on its longer side

# The 52 blendshapes in the model's output order, MediaPipe's names (face_blendshapes_graph.cc); "_neutral" is the
# model's own first output, kept so indices match MediaPipe's.
BLENDSHAPES = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff",
    "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight",
    "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker",
    "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight")

# The 146 mesh points the blendshape model reads, in its input order (face_blendshapes_graph.cc)
BLENDSHAPE_INPUT_POINTS = (
    0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39, 40, 46, 52, 53, 54, 55, 58, 61, 63, 65, 66, 67, 70, 78, 80,
    81, 82, 84, 87, 88, 91, 93, 95, 103, 105, 107, 109, 127, 132, 133, 136, 144, 145, 146, 148, 149, 150, 152, 153,
    154, 155, 157, 158, 159, 160, 161, 162, 163, 168, 172, 173, 176, 178, 181, 185, 191, 195, 197, 234, 246, 249, 251,
    263, 267, 269, 270, 276, 282, 283, 284, 285, 288, 291, 293, 295, 296, 297, 300, 308, 310, 311, 312, 314, 317, 318,
    321, 323, 324, 332, 334, 336, 338, 356, 361, 362, 365, 373, 374, 375, 377, 378, 379, 380, 381, 382, 384, 385, 386,
    387, 388, 389, 390, 397, 398, 400, 402, 405, 409, 415, 454, 466, 468, 469, 470, 471, 472, 473, 474, 475, 476, 477)

# Mesh points with a fixed meaning (MediaPipe's topology): the subject's right is the image's left
EYE_OUTER_RIGHT, EYE_OUTER_LEFT, NOSE_TIP, MOUTH_RIGHT, MOUTH_LEFT = 33, 263, 1, 61, 291
IRIS_RIGHT, IRIS_LEFT = 468, 473  # iris centres

# FACS action units estimated from the blendshapes: AU -> (its name, the blendshapes averaged, left and right).
# These are estimates through ARKit-style blendshapes, not a FACS coder's intensities; docs/face-features.md gives the
# table and how well each separates the emotion it belongs to on labelled faces.
# No AU6 (cheek raiser) or AU9 (nose wrinkler): the blendshapes that would carry them, cheekSquintLeft/Right and
# noseSneerLeft/Right, never pass 0.001 in Blendshape V2 (0.0002 at most over 595 real faces, benchmarks/face_features.py
# --part auc; 0.0000 on the smiling sample photo; MediaPipe's own TFLite file gives the same,
# google-ai-edge/mediapipe#4450), and no other blendshape carries them alone (eyeSquint is AU7's, mouthUpperUp AU10's):
# an AU that cannot move would read as "absent" on every face.
ACTION_UNITS = {
    "AU1": ("inner brow raiser", ("browInnerUp",)),
    "AU2": ("outer brow raiser", ("browOuterUpLeft", "browOuterUpRight")),
    "AU4": ("brow lowerer", ("browDownLeft", "browDownRight")),
    "AU5": ("upper lid raiser", ("eyeWideLeft", "eyeWideRight")),
    "AU7": ("lid tightener", ("eyeSquintLeft", "eyeSquintRight")),
    "AU10": ("upper lip raiser", ("mouthUpperUpLeft", "mouthUpperUpRight")),
    "AU12": ("lip corner puller", ("mouthSmileLeft", "mouthSmileRight")),
    "AU14": ("dimpler", ("mouthDimpleLeft", "mouthDimpleRight")),
    "AU15": ("lip corner depressor", ("mouthFrownLeft", "mouthFrownRight")),
    "AU17": ("chin raiser", ("mouthShrugLower",)),
    "AU18": ("lip pucker", ("mouthPucker",)),
    "AU20": ("lip stretcher", ("mouthStretchLeft", "mouthStretchRight")),
    "AU22": ("lip funneler", ("mouthFunnel",)),
    "AU23": ("lip tightener", ("mouthPressLeft", "mouthPressRight")),  # Blendshape V2 has one press, for AU23 and AU24
    "AU25": ("lips part", ("jawOpen",)),  # less mouthClose (lips held together with the jaw open), see action_units
    "AU26": ("jaw drop", ("jawOpen",)),
    "AU28": ("lip suck", ("mouthRollLower", "mouthRollUpper")),
    "AU43": ("eyes closed", ("eyeBlinkLeft", "eyeBlinkRight")),
}
_BLENDSHAPE_INDEX = {name: i for i, name in enumerate(BLENDSHAPES)}


def parse_features(features) -> tuple[str, ...]:
    """None, "", "all", "mesh,pose", or an iterable of names -> the chosen names in FEATURES order. An unknown name
    raises ValueError listing the valid ones."""
    if features is None:
        return ()
    names = features.split(",") if isinstance(features, str) else list(features)
    names = [str(n).strip().lower() for n in names if str(n).strip()]
    names = ["pose" if n == "head_pose" else "blendshapes" if n == "action_units" else n for n in names]
    names = [*FEATURES, *names] if "all" in names else names
    unknown = sorted(set(names) - {*FEATURES, EMBEDDING, "all"})
    if unknown:
        raise ValueError(f"unknown face feature {', '.join(map(repr, unknown))}; valid: {', '.join(FEATURES)}, or all "
                         f"({EMBEDDING} for adapt heads)")
    return tuple(f for f in (*FEATURES, EMBEDDING) if f in names)


@dataclass(frozen=True)
class FaceFeatures:
    """What the stage found for N faces. mesh (N, 478, 3) float32: x, y in image pixels, z in pixels at the same
    scale (smaller: nearer the camera; 0 near the head's centre); presence (N,) the mesh model's probability that a
    face fills the crop; blendshapes (N, 52) in [0, 1] or None; pose (N, 3) yaw, pitch, roll in degrees or None;
    embedding (N, 512) float32, the mesh model's last shared feature map, or None."""
    mesh: np.ndarray
    presence: np.ndarray
    blendshapes: np.ndarray | None
    pose: np.ndarray | None
    embedding: np.ndarray | None = None


def action_units(blendshapes: np.ndarray) -> dict[str, float]:
    """(52,) blendshapes -> {"AU1": 0.12, ...}: each AU the mean of its blendshapes (ACTION_UNITS); AU25 (lips apart)
    is jawOpen less mouthClose, clipped to [0, 1]."""
    b = np.asarray(blendshapes, np.float32)
    out = {au: float(np.mean([b[_BLENDSHAPE_INDEX[n]] for n in names])) for au, (_, names) in ACTION_UNITS.items()}
    out["AU25"] = float(np.clip(b[_BLENDSHAPE_INDEX["jawOpen"]] - b[_BLENDSHAPE_INDEX["mouthClose"]], 0, 1))
    return out


# ---------------------------------------------------------------- the crop
def face_roi(points: np.ndarray, eyes: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, float, float]:
    """MediaPipe's framing of a face for the mesh model: the axis-aligned box of the face's points gives the centre,
    1.5x its longer side the square's side, and the line between the eyes its turn. points (K, 2) image x, y;
    eyes: (the subject's right eye, left eye) -> centre (2,), side, angle in radians (clockwise on screen)."""
    lo, hi = points.min(0), points.max(0)
    d = eyes[1] - eyes[0]
    return (lo + hi) / 2, float(ROI_SCALE * max(hi - lo)), float(np.arctan2(d[1], d[0]))


# A face's landmark box (all 478 points) from the detector's five points: measured by running the mesh twice on
# faces (the second crop from the first mesh, as MediaPipe tracks) and fitting, in the face's own upright frame, the
# box's centre and side to the eye-mouth distance: medians over 570 faces, FER-2013 Training faces in scenes and the
# sample photo's views (benchmarks/face_features.py --part calibrate; docs/benchmarks/face_features.txt).
FIVE_POINT_CENTRE = (0.0, 0.41)  # centre = eye midpoint + these x eye-mouth distance (right, down), face frame
FIVE_POINT_SIDE = 2.49          # landmark box's longer side / eye-mouth distance


def roi_from_five_points(five: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(5, 2) detector landmarks (detect.LANDMARKS order) -> centre (2,), side, angle: the crop MediaPipe would take
    for this face, estimated in one pass."""
    right_eye, left_eye, _, right_mouth, left_mouth = np.asarray(five, np.float64)
    d = left_eye - right_eye
    angle = float(np.arctan2(d[1], d[0]))
    c, s = np.cos(angle), np.sin(angle)
    eye_mid, mouth_mid = (right_eye + left_eye) / 2, (right_mouth + left_mouth) / 2
    down = np.array([-s, c])                      # the face's own down direction on screen
    right = np.array([c, s])
    scale = max(float(np.dot(mouth_mid - eye_mid, down)), 0.5 * float(np.hypot(*d)), 1.0)
    centre = eye_mid + FIVE_POINT_CENTRE[0] * scale * right + FIVE_POINT_CENTRE[1] * scale * down
    return centre, ROI_SCALE * FIVE_POINT_SIDE * scale, angle


def roi_from_box(box) -> tuple[np.ndarray, float, float]:
    """A box (x, y, w, h) with no landmarks: its centre, upright, 1.5x its longer side (a first look; see refine)."""
    x, y, w, h = (float(v) for v in box)
    return np.array([x + w / 2, y + h / 2]), ROI_SCALE * max(w, h, 1.0), 0.0


def crop_transform(centre: np.ndarray, side: float, angle: float) -> np.ndarray:
    """The 2x3 affine map from image pixels to the MESH_INPUT x MESH_INPUT crop: the square of `side` around
    `centre`, turned by -angle so the eye line is level."""
    k = MESH_INPUT / side
    c, s = np.cos(angle) * k, np.sin(angle) * k
    # crop = k R(-angle) (p - centre) + MESH_INPUT / 2
    return np.array([[c, s, MESH_INPUT / 2 - c * centre[0] - s * centre[1]],
                     [-s, c, MESH_INPUT / 2 + s * centre[0] - c * centre[1]]], np.float64)


# ---------------------------------------------------------------- the stage
class FaceMesh:
    """The face-features stage: `run(image, rois)` -> FaceFeatures. Composed by the Recognizer (features=...)."""

    def __init__(self, features=FEATURES, *, threads: int | None = None, providers: list | None = None):
        from .sessions import open_session

        self.features = parse_features(features) or FEATURES
        # the embedding is one more output of the same run: the shipped file stays as it is, the graph loaded from
        # it gains an output (measured: the same time a face, the other outputs bit-identical)
        model = with_shared_map_output(MESH_MODEL.read_bytes()) if EMBEDDING in self.features else MESH_MODEL
        self._mesh = open_session(model, threads=threads, providers=providers)
        self._blend = open_session(BLENDSHAPE_MODEL, threads=threads, providers=providers) \
            if "blendshapes" in self.features else None
        self._mesh_input = self._mesh.get_inputs()[0].name
        if "pose" in self.features:
            face = json.loads(CANONICAL_FACE.read_text())
            ids = np.asarray(face["pose_landmarks"], np.int64)
            self._pose_ids = ids
            self._pose_weights = np.asarray(face["pose_weights"], np.float64)
            self._pose_canonical = np.asarray(face["vertices"], np.float64)[ids]

    def __repr__(self) -> str:
        return f"FaceMesh(features={self.features})"

    def rois(self, boxes, landmarks=None) -> list[tuple[np.ndarray, float, float]]:
        """The crop for each detected face: from its five landmarks when the detector gives them, else its box."""
        boxes = np.asarray(boxes).reshape(-1, 4)
        if landmarks is None:
            return [roi_from_box(b) for b in boxes]
        return [roi_from_five_points(p) for p in np.asarray(landmarks).reshape(-1, 5, 2)]

    def run(self, image: np.ndarray, rois) -> FaceFeatures:
        """image: BGR (or grey) uint8; rois: (centre, side, angle) per face (see rois, face_roi) -> FaceFeatures."""
        n = len(rois)
        mesh = np.zeros((n, MESH_POINTS, 3), np.float32)
        presence = np.zeros(n, np.float32)
        embedding = np.zeros((n, EMBEDDING_SIZE), np.float32) if EMBEDDING in self.features else None
        if n:
            crops, maps = [], []
            for centre, side, angle in rois:
                m = crop_transform(centre, side, angle)
                crops.append(cv2.warpAffine(image, m, (MESH_INPUT, MESH_INPUT), flags=cv2.INTER_LINEAR,
                                            borderMode=cv2.BORDER_CONSTANT))
                maps.append((m, side))
            x = np.stack(crops).astype(np.float32) * np.float32(1 / 255)      # (N, 256, 256[, 3]) in [0, 1]
            # RGB for the model: the crops' channels turned, not the whole image's (a 256x256 copy, not a frame)
            x = np.repeat(x[..., None], 3, axis=-1) if image.ndim == 2 else np.ascontiguousarray(x[..., ::-1])
            out = self._mesh.run(None, {self._mesh_input: x})
            points = out[0].reshape(n, MESH_POINTS, 3).astype(np.float64)       # crop pixels
            presence[:] = 1 / (1 + np.exp(-out[1].reshape(n)))
            if embedding is not None:
                embedding[:] = out[3].reshape(n, EMBEDDING_SIZE)                # (N, 128, 2, 2) -> (N, 512)
            for i, (m, side) in enumerate(maps):
                inverse = cv2.invertAffineTransform(m)
                xy = points[i, :, :2] @ inverse[:, :2].T + inverse[:, 2]
                mesh[i] = np.column_stack([xy, points[i, :, 2] * side / MESH_INPUT])
        blend = self.blendshapes(mesh) if self._blend is not None else None
        pose = self.head_pose(mesh) if "pose" in self.features else None
        return FaceFeatures(mesh, presence, blend, pose, embedding)

    def refine(self, image: np.ndarray, rois, rounds: int = 1) -> tuple[FaceFeatures, list]:
        """Run, then crop again from the mesh found (MediaPipe's own tracking step) `rounds` times -> the last
        features and crops. For faces framed from a box alone (no landmarks) or to check a one-pass crop."""
        features = self.run(image, rois)
        for _ in range(rounds):
            rois = [face_roi(m[:468, :2], (m[EYE_OUTER_RIGHT, :2], m[EYE_OUTER_LEFT, :2])) for m in features.mesh]
            features = self.run(image, rois)
        return features, rois

    def blendshapes(self, mesh: np.ndarray) -> np.ndarray:
        """(N, 478, 3) image-pixel meshes -> (N, 52) blendshapes in [0, 1]."""
        n = len(mesh)
        if n == 0:
            return np.zeros((0, len(BLENDSHAPES)), np.float32)
        name = self._blend.get_inputs()[0].name
        pts = np.ascontiguousarray(mesh[:, BLENDSHAPE_INPUT_POINTS, :2], np.float32)  # (N, 146, 2)
        # the converted model takes one face at a time, (1, 146, 2) -> (52,)
        return np.stack([self._blend.run(None, {name: pts[i:i + 1]})[0].reshape(-1) for i in range(n)])

    def head_pose(self, mesh: np.ndarray) -> np.ndarray:
        """(N, 478, 3) meshes -> (N, 3) yaw, pitch, roll in degrees (module docstring: the convention): the rotation
        of the weighted least-squares similarity fit of MediaPipe's canonical face to the mesh."""
        out = np.zeros((len(mesh), 3), np.float32)
        w = self._pose_weights / self._pose_weights.sum()
        src = self._pose_canonical - w @ self._pose_canonical        # canonical face, x right, y up, z to the camera
        for i, m in enumerate(mesh):
            dst = m[self._pose_ids].astype(np.float64) * (1, -1, -1)  # image -> x right, y up, z to the camera
            dst -= w @ dst
            u, _, vt = np.linalg.svd((dst * w[:, None]).T @ src)     # Kabsch: R maps canonical onto observed
            r = u @ np.diag([1, 1, np.sign(np.linalg.det(u @ vt))]) @ vt
            out[i] = euler_degrees(r)
        return out


def with_shared_map_output(model: bytes) -> bytes:
    """The serialized mesh model with one more graph output: the tensor its three output heads share (walking back
    from each output through the first input of each node, the first tensor on all three paths; (N, 128, 2, 2) in
    Face Mesh V2). Edited on the protobuf bytes with sessions' wire-format reader: the onnx package is not a
    dependency of the base install."""
    from .sessions import _encode_varint, _field_bytes, _fields

    graph_start, graph_end, graph = next((s, e, v) for number, wire, v, s, e in _fields(model, 0, len(model))
                                         if number == 7 and wire == 2)            # ModelProto.graph
    producer, outputs = {}, []
    for number, wire, value, _, _ in _fields(model, *graph):
        if number == 1 and wire == 2:                                           # GraphProto.node
            node = [(n, bytes(model[v[0]:v[1]]).decode()) for n, w, v, _, _ in _fields(model, *value)
                    if n in (1, 2) and w == 2]                                  # its inputs and outputs, names
            first_input = next((name for n, name in node if n == 1), None)     # NodeProto.input
            producer.update((name, first_input) for n, name in node if n == 2)  # NodeProto.output
        elif number == 12 and wire == 2:                                        # GraphProto.output (ValueInfoProto)
            outputs.append(next(bytes(model[v[0]:v[1]]).decode() for n, w, v, _, _ in _fields(model, *value)
                                if n == 1))

    def path(tensor):
        out = []
        while producer.get(tensor) is not None:
            tensor = producer[tensor]
            out.append(tensor)
        return out

    paths = [path(o) for o in outputs]
    shared = next((t for t in paths[0] if all(t in p for p in paths[1:])), None)
    if shared is None:
        raise ValueError("the face-mesh model's outputs share no tensor: not Face Mesh V2")
    float_type = _field_bytes(1, _encode_varint(1 << 3) + _encode_varint(1))     # TypeProto{tensor_type{elem_type FLOAT}}
    info = _field_bytes(1, shared.encode()) + _field_bytes(2, float_type)         # ValueInfoProto{name, type}
    graph_bytes = bytes(model[graph[0]:graph[1]]) + _field_bytes(12, info)
    return bytes(model[:graph_start]) + _field_bytes(7, graph_bytes) + bytes(model[graph_end:])


def euler_degrees(r: np.ndarray) -> tuple[float, float, float]:
    """A rotation (x right, y up, z to the camera; canonical face -> observed) -> yaw, pitch, roll in degrees in
    ferkit's convention. R = Rz(-roll) Ry(yaw) Rx(-pitch): the face nods, then turns, then the whole head tilts in the
    image plane, so an in-plane turn of the photo changes the roll alone."""
    yaw = np.degrees(-np.arcsin(np.clip(r[2, 0], -1, 1)))
    pitch = -np.degrees(np.arctan2(r[2, 1], r[2, 2]))
    roll = -np.degrees(np.arctan2(r[1, 0], r[0, 0]))
    return float(yaw), float(pitch), float(roll)
