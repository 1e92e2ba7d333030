"""Corruptions of face crops (camera and network damage, detector misalignment): one implementation for the
robustness evaluation (`corrupt`, fixed levels) and for training's augmentation (`train.corrupt_batch` draws a
kind's strength per face and applies the same function)."""
from __future__ import annotations

import numpy as np


def _affine(img: np.ndarray, angle: float = 0.0, shift: float = 0.0, zoom: float = 1.0) -> np.ndarray:
    import cv2

    s = img.shape[0]
    m = cv2.getRotationMatrix2D((s / 2, s / 2), angle, zoom)
    m[:, 2] += shift * s
    return cv2.warpAffine(img, m, (s, s), borderMode=cv2.BORDER_REPLICATE)


def corrupt(pixels: np.ndarray, kind: str, level: float, seed: int = 0) -> np.ndarray:
    """(N, 48, 48) uint8 -> corrupted copy. Deterministic for a seed."""
    import cv2

    rng = np.random.default_rng(seed)
    x = pixels.astype(np.float32)
    if kind == "brightness":          # add a constant (negative: darker)
        out = x + level
    elif kind == "contrast":          # scale around the mean by `level` (< 1 flattens)
        m = x.mean(axis=(1, 2), keepdims=True)
        out = (x - m) * level + m
    elif kind == "gamma":             # > 1 darkens mid-tones, < 1 over-exposes
        out = 255.0 * (x / 255.0) ** level
    elif kind == "noise":             # Gaussian noise, sigma in grey levels
        out = x + rng.normal(0, level, x.shape)
    elif kind == "blur":              # Gaussian blur, sigma in pixels
        out = np.stack([cv2.GaussianBlur(p, (0, 0), level) for p in pixels]).astype(np.float32)
    elif kind == "jpeg":              # JPEG quality
        out = np.stack([cv2.imdecode(cv2.imencode(".jpg", p, [cv2.IMWRITE_JPEG_QUALITY, int(level)])[1], cv2.IMREAD_GRAYSCALE)
                        for p in pixels]).astype(np.float32)
    elif kind == "occlusion":         # a grey square covering `level` of the face area, at a random place
        out = x.copy()
        s = pixels.shape[1]
        side = int(round(s * level ** 0.5))
        for i in range(len(out)):
            y0, x0 = rng.integers(0, s - side + 1, 2)
            out[i, y0:y0 + side, x0:x0 + side] = 128
    elif kind == "rotation":          # degrees, sign alternating per face
        out = np.stack([_affine(p, angle=level * (1 if i % 2 else -1)) for i, p in enumerate(pixels)]).astype(np.float32)
    elif kind == "misalignment":      # detector box shifted by `level` of the face size, in a random direction
        dirs = rng.uniform(0, 2 * np.pi, len(pixels))
        out = np.stack([_affine(p) if level == 0 else _shift(p, level * np.cos(a), level * np.sin(a))
                        for p, a in zip(pixels, dirs)]).astype(np.float32)
    elif kind == "scale":             # detector box too tight (> 1) or too loose (< 1)
        out = np.stack([_affine(p, zoom=level) for p in pixels]).astype(np.float32)
    else:
        raise ValueError(f"unknown corruption {kind!r}; valid: {', '.join(CORRUPTIONS)}")
    return np.clip(out, 0, 255).round().astype(np.uint8)


def _shift(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    import cv2

    s = img.shape[0]
    m = np.float32([[1, 0, dx * s], [0, 1, dy * s]])
    return cv2.warpAffine(img, m, (s, s), borderMode=cv2.BORDER_REPLICATE)


# Three strengths each, mild to severe.
CORRUPTIONS: dict[str, tuple] = {
    "brightness": (-60, 60, -100),
    "contrast": (0.6, 0.4, 0.25),
    "gamma": (2.0, 0.5, 3.0),
    "noise": (8, 16, 32),
    "blur": (0.8, 1.5, 2.5),
    "jpeg": (50, 20, 8),
    "occlusion": (0.1, 0.2, 0.35),
    "rotation": (10, 20, 30),
    "misalignment": (0.05, 0.1, 0.2),
    "scale": (1.15, 0.85, 0.7),
}
