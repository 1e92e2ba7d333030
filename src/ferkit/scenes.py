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


def background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A face-free (height, width, 3) BGR backdrop: smooth random colour blobs over a gradient, plus fine noise."""
    coarse = rng.uniform(0, 255, (max(2, height // 60), max(2, width // 60), 3)).astype(np.float32)
    img = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    ramp = np.linspace(-40, 40, width, dtype=np.float32)[None, :, None] * rng.uniform(-1, 1)
    img = img + ramp + rng.normal(0, rng.uniform(2, 12), (height, width, 3)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def place_face(frame: np.ndarray, face48: np.ndarray, size: float, centre: tuple[float, float], roll: float = 0.0,
               gain: float = 1.0, tint: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """`frame` (H, W, 3) BGR with a FER-2013 face drawn in: the 48x48 crop enlarged to `size` px, centred at
    `centre`, turned `roll` degrees (positive: clockwise on screen, as detect.roll_degrees measures), with a margin of
    replicated border pixels (the context a detector needs) faded into the frame. The face's own crop is then the
    square of side `size` at `centre`, turned by `roll`: the truth the benchmarks and tests compare against."""
    patch = cv2.copyMakeBorder(face48, 24, 24, 24, 24, cv2.BORDER_REPLICATE).astype(np.float32)  # (96, 96)
    alpha = np.zeros((96, 96), np.float32)
    cv2.circle(alpha, (48, 48), 36, 1.0, -1)  # the face and a little of its border: less smear for the detector
    alpha = cv2.GaussianBlur(alpha, (0, 0), 4)
    s = size / 48.0
    m = cv2.getRotationMatrix2D((48.0, 48.0), -roll, s)  # OpenCV turns counter-clockwise for positive angles
    m[:, 2] += np.array(centre, np.float64) - (48.0, 48.0)
    h, w = frame.shape[:2]
    face = cv2.warpAffine(patch, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    a = cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)[:, :, None]
    colour = face[:, :, None] * gain * np.asarray(tint, np.float32)
    return np.clip(frame * (1 - a) + colour * a, 0, 255).astype(np.uint8)
