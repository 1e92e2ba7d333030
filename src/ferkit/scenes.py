"""FER-2013 faces placed in larger frames: what the detector benchmarks and the tests feed the full pipeline.

FER-2013 crops are tight 48x48 faces; a face detector needs context around a face to find it, so a face is
enlarged and given a margin by replicating its border pixels (no invented content), then put into a frame.
"""
from __future__ import annotations

import cv2
import numpy as np


def pad_face(face48: np.ndarray, size: int = 144, pad: float = 0.4) -> np.ndarray:
    """(48, 48) grey face -> (size + 2p, size + 2p) grey patch, the face enlarged to `size` px with a margin of
    p = pad * size replicated-border pixels on each side."""
    f = cv2.resize(face48, (size, size), interpolation=cv2.INTER_CUBIC)
    p = int(size * pad + 1e-9)  # 1e-9: pad=1/3 gives exactly size // 3
    return cv2.copyMakeBorder(f, p, p, p, p, cv2.BORDER_REPLICATE)


def scene(face48: np.ndarray, width: int = 320, height: int = 240, face_size: int = 110, *, pad: float = 0.4,
          x: int | None = None) -> np.ndarray:
    """A width x height grey frame holding one padded face, centred (or with its patch's left edge at x);
    the rest of the frame continues the patch's border pixels."""
    patch = pad_face(face48, face_size, pad)
    ph, pw = patch.shape
    if ph > height or pw > width:
        raise ValueError(f"a {face_size} px face with its margin ({pw}x{ph}) does not fit a {width}x{height} frame")
    x = (width - pw) // 2 if x is None else x
    y = (height - ph) // 2
    return cv2.copyMakeBorder(patch, y, height - ph - y, x, width - pw - x, cv2.BORDER_REPLICATE)
