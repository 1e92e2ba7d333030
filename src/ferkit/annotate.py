"""Draw faces on images: a box, the landmarks, a light face mesh, the emotion and its probability, readable on any
background and at any face size.

Everything scales with the face, not only with the image: a 40 px face in a 1080p frame gets a thin box, no mesh and
a label outside it; a face that fills a close-up gets a thicker box, its mesh's outlines and a label above it (inside
its top only when there is no room above or below).
"""
from __future__ import annotations

import cv2
import numpy as np

from .face import Face

# One colour per emotion for boxes; the label text always names the emotion too (colour is never the only cue).
EMOTION_COLORS_BGR = {
    "angry": (40, 40, 220), "disgust": (60, 140, 40), "fear": (160, 60, 160), "happy": (0, 200, 255),
    "sad": (200, 120, 40), "surprise": (0, 140, 255), "neutral": (170, 170, 170), "contempt": (100, 100, 160),
}

# The face mesh drawn as its outlines (MediaPipe's face_mesh_connections: face oval, eyes, brows, lips; the subject's
# right first), not its 478 points, which cover a small face.
MESH_OUTLINES = (
    (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148, 176, 149, 150,
     136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109, 10),                              # face oval
    (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246, 33),            # right eye
    (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466, 263),        # left eye
    (46, 53, 52, 65, 55), (70, 63, 105, 66, 107),                                                # right brow
    (276, 283, 282, 295, 285), (300, 293, 334, 296, 336),                                        # left brow
    (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185, 61),  # lips, outer
    (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191, 78),  # lips, inner
)
MESH_MIN_FACE = 60     # px: below this the outlines would blur into the face; the box and label are enough
MESH_OPACITY = 0.5     # the outlines blended with the image: visible, the face still readable through them
MIN_TEXT_SCALE = 0.4   # OpenCV's font scale for ~9 px tall text: the smallest still readable
LABEL_INSIDE = 0.2     # a label may sit inside a face's top only when it is at most this share of the face's height


def draw_faces(image: np.ndarray, faces: list[Face], labels: list[str] | None = None) -> np.ndarray:
    """A copy of the BGR image with a box and 'emotion 87%' (or a given label per face) for each face."""
    out = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    _draw_boxes(out, faces, labels)
    return out


def draw_tracked(image: np.ndarray, faces, *, inplace: bool = False) -> np.ndarray:
    """Tracked faces (with `.id`) drawn with '#id emotion 87%' labels: a copy of the image, or with `inplace=True`
    the BGR image itself, drawn on and returned."""
    labels = [f"#{f.id} {f.emotion} {f.score:.0%}" for f in faces]
    if inplace and image.ndim == 3:
        _draw_boxes(image, faces, labels)
        return image
    return draw_faces(image, faces, labels)


def _draw_boxes(out: np.ndarray, faces: list[Face], labels: list[str] | None) -> None:
    """Boxes, meshes, landmarks and labels drawn into the BGR image `out`, in place."""
    image_scale = max(MIN_TEXT_SCALE, min(out.shape[:2]) / 900)  # what a face filling the frame gets
    for i, face in enumerate(faces):
        x, y, w, h = face.box
        side = max(1, min(w, h))
        scale = min(image_scale, max(MIN_TEXT_SCALE, side / 250))  # text ~ a tenth of the face, never unreadable
        thick = max(1, int(round(min(scale * 2, side / 60))))
        color = EMOTION_COLORS_BGR.get(face.emotion, (0, 255, 0))
        mesh = getattr(face, "mesh", None)
        if mesh is not None and side >= MESH_MIN_FACE:
            _draw_mesh(out, np.asarray(mesh)[:, :2])
        cv2.rectangle(out, (x, y), (x + w, y + h), color, thick)
        for px, py in face.landmarks or ():  # five small dots: eyes, nose, mouth corners
            centre = (int(round(px)), int(round(py)))
            cv2.circle(out, centre, thick + 1, color, -1, cv2.LINE_AA)      # a rim in the emotion's colour
            cv2.circle(out, centre, thick, (255, 255, 255), -1, cv2.LINE_AA)
        text = labels[i] if labels else f"{face.emotion} {face.score:.0%}"
        _draw_label(out, text, x, y, h, scale, max(1, int(round(scale * 2))))


def _draw_mesh(out: np.ndarray, points: np.ndarray) -> None:
    """The mesh's outlines (MESH_OUTLINES), one pixel wide, white blended at MESH_OPACITY over the face's region."""
    lines = [np.round(points[list(idx)]).astype(np.int32) for idx in MESH_OUTLINES]
    H, W = out.shape[:2]
    x0, y0 = np.clip(np.floor(points.min(0)).astype(int) - 1, 0, [W, H])
    x1, y1 = np.clip(np.ceil(points.max(0)).astype(int) + 2, 0, [W, H])
    if x1 <= x0 or y1 <= y0:
        return
    region = out[y0:y1, x0:x1]
    drawn = region.copy()
    cv2.polylines(drawn, [p - [x0, y0] for p in lines], False, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.addWeighted(drawn, MESH_OPACITY, region, 1 - MESH_OPACITY, 0, dst=region)


def _draw_label(out: np.ndarray, text: str, x: int, y: int, h: int, scale: float, thick: int) -> None:
    """White on black above the box, else below it; inside its top only when neither fits and the label is small
    beside the face (LABEL_INSIDE), else over the nearer edge of the image; shifted left and shrunk so that it stays
    within the image."""
    H, W = out.shape[:2]
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    while tw + 4 > W and scale > 0.25:
        scale *= 0.85
        (tw, th), base = cv2.getTextSize(text, font, scale, 1)
        thick = 1
    tall = th + base + 4
    if y - tall >= 0:
        ty = y - base - 2
    elif y + h + tall <= H:
        ty = y + h + th + 2
    elif tall <= LABEL_INSIDE * h or y + h >= H:
        ty = min(max(y, 0) + th + 4, H - base - 1)
    else:
        ty = H - base - 1
    tx = max(0, min(x, W - tw - 4))
    cv2.rectangle(out, (tx, ty - th - 2), (tx + tw + 4, ty + base), (0, 0, 0), -1)
    cv2.putText(out, text, (tx + 2, ty), font, scale, (255, 255, 255), thick, cv2.LINE_AA)
