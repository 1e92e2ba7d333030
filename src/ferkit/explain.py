"""Class activation maps from the ONNX model, drawn over the image.

The network ends in global average pooling + a linear layer, so the map of class c is exactly the
linear head applied at each of the 6x6 positions: no gradients, no second model, no extra pass.
`Recognizer.analyze(..., explain=True)` puts a (48, 48) map in [0, 1] on each `Face.cam`.
"""
from __future__ import annotations

import base64

import cv2
import numpy as np

from .face import Face


def colorize(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) map in [0, 1] -> (H, W, 3) BGR heat colours (blue = low, red = high), size = (W, H)."""
    return _heat(cam, size)[0]


def _heat(cam: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """-> the (H, W, 3) BGR colours and the (H, W) map resized to `size`, in [0, 1]."""
    resized = cv2.resize(cam.astype(np.float32), size, interpolation=cv2.INTER_CUBIC).clip(0, 1)
    return cv2.applyColorMap((resized * 255).astype(np.uint8), cv2.COLORMAP_JET), resized


def cam_to_png(cam: np.ndarray, size: int = 96, alpha: bool = True) -> bytes:
    """A face's map as PNG bytes, size x size; with `alpha`, low values fade out so it can be laid over the face."""
    bgr, resized = _heat(cam, (size, size))
    if alpha:
        bgr = np.dstack([bgr, (resized * 200).astype(np.uint8)])
    ok, buf = cv2.imencode(".png", bgr)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def cam_to_data_url(cam: np.ndarray, size: int = 96) -> str:
    """The map as a `data:image/png;base64,...` URL, for JSON answers and <img> tags."""
    return "data:image/png;base64," + base64.b64encode(cam_to_png(cam, size)).decode("ascii")


def overlay(image: np.ndarray, faces: list[Face], strength: float = 0.45) -> np.ndarray:
    """A copy of the BGR image with each face's map blended over its box (faces need `cam`, see explain=True)."""
    out = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    for face in faces:
        if face.cam is None:
            raise ValueError("face has no class activation map; call analyze(..., explain=True)")
        x, y, w, h = face.box
        x0, y0, x1, y1 = max(0, x), max(0, y), min(out.shape[1], x + w), min(out.shape[0], y + h)
        if x1 <= x0 or y1 <= y0:
            continue
        heat = colorize(face.cam, (w, h))[y0 - y:y1 - y, x0 - x:x1 - x]
        out[y0:y1, x0:x1] = cv2.addWeighted(out[y0:y1, x0:x1], 1 - strength, heat, strength, 0)
    return out
