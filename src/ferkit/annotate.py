"""Draw faces on images: a box, the landmarks, the emotion and its probability, readable on any background."""
from __future__ import annotations

import cv2
import numpy as np

from .face import Face

# One colour per emotion for boxes; the label text always names the emotion too (colour is never the only cue).
EMOTION_COLORS_BGR = {
    "angry": (40, 40, 220), "disgust": (60, 140, 40), "fear": (160, 60, 160), "happy": (0, 200, 255),
    "sad": (200, 120, 40), "surprise": (0, 140, 255), "neutral": (170, 170, 170), "contempt": (100, 100, 160),
}


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
    """Boxes and labels drawn into the BGR image `out`, in place."""
    scale = max(0.4, min(out.shape[:2]) / 900)
    thick = max(1, int(round(scale * 2)))
    for i, face in enumerate(faces):
        x, y, w, h = face.box
        color = EMOTION_COLORS_BGR.get(face.emotion, (0, 255, 0))
        cv2.rectangle(out, (x, y), (x + w, y + h), color, thick)
        mesh = getattr(face, "mesh", None)
        if mesh is not None:  # the face mesh's 478 points, one pixel each
            pts = np.round(np.asarray(mesh)[:, :2]).astype(np.int64)
            keep = (pts[:, 0] >= 0) & (pts[:, 1] >= 0) & (pts[:, 0] < out.shape[1]) & (pts[:, 1] < out.shape[0])
            out[pts[keep, 1], pts[keep, 0]] = (255, 255, 255)
        for px, py in face.landmarks or ():  # five small dots: eyes, nose, mouth corners
            centre = (int(round(px)), int(round(py)))
            cv2.circle(out, centre, thick + 1, color, -1, cv2.LINE_AA)      # a rim in the emotion's colour
            cv2.circle(out, centre, thick, (255, 255, 255), -1, cv2.LINE_AA)
        text = labels[i] if labels else f"{face.emotion} {face.score:.0%}"
        _draw_label(out, text, x, y, h, scale, thick)


def _draw_label(out: np.ndarray, text: str, x: int, y: int, h: int, scale: float, thick: int) -> None:
    """White on black above the box, else below it, else inside its top (a face that fills the image); shifted
    left and shrunk so that it stays within the image."""
    H, W = out.shape[:2]
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    while tw + 4 > W and scale > 0.25:
        scale *= 0.85
        (tw, th), base = cv2.getTextSize(text, font, scale, 1)
        thick = 1
    if y - th - base - 4 >= 0:
        ty = y - 4
    elif y + h + th + base + 4 <= H:
        ty = y + h + th + 4
    else:
        ty = min(max(y, 0) + th + 4, H - base - 1)
    tx = max(0, min(x, W - tw - 4))
    cv2.rectangle(out, (tx, ty - th - base), (tx + tw + 4, ty + base), (0, 0, 0), -1)
    cv2.putText(out, text, (tx + 2, ty), font, scale, (255, 255, 255), thick, cv2.LINE_AA)
