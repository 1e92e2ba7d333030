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
    """(N, 48, 48) uint8 -> corrupted copy, every face at strength `level`. Deterministic for a seed."""
    return corrupt_faces(pixels, kind, np.full(len(pixels), level, np.float64), np.random.default_rng(seed))


def corrupt_faces(pixels: np.ndarray, kind: str, levels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, 48, 48) uint8 and (N,) strengths, one per face -> corrupted copy (uint8). The meaning of a strength per
    kind is CORRUPTIONS' comment; random parts (noise, the place of an occlusion, a shift's direction) come from
    `rng`."""
    import cv2

    x = pixels.astype(np.float32)
    lv = np.asarray(levels, np.float64)
    per_face = lv[:, None, None]
    if kind == "brightness":          # add a constant (negative: darker)
        out = x + per_face
    elif kind == "contrast":          # scale around the mean by `level` (< 1 flattens)
        m = x.mean(axis=(1, 2), keepdims=True)
        out = (x - m) * per_face + m
    elif kind == "gamma":             # > 1 darkens mid-tones, < 1 over-exposes
        out = 255.0 * (x / 255.0) ** per_face
    elif kind == "noise":             # Gaussian noise, sigma in grey levels
        out = x + rng.normal(0, 1, x.shape) * per_face
    elif kind == "blur":              # Gaussian blur, sigma in pixels
        out = np.stack([cv2.GaussianBlur(p, (0, 0), s) for p, s in zip(pixels, lv)]).astype(np.float32)
    elif kind == "jpeg":              # JPEG quality
        out = np.stack([cv2.imdecode(cv2.imencode(".jpg", p, [cv2.IMWRITE_JPEG_QUALITY, int(q)])[1], cv2.IMREAD_GRAYSCALE)
                        for p, q in zip(pixels, lv)]).astype(np.float32)
    elif kind == "occlusion":         # a grey square covering `level` of the face area, at a random place
        out = x.copy()
        s = pixels.shape[1]
        for i in range(len(out)):
            side = int(round(s * lv[i] ** 0.5))
            y0, x0 = rng.integers(0, s - side + 1, 2)
            out[i, y0:y0 + side, x0:x0 + side] = 128
    elif kind == "rotation":          # degrees, sign alternating per face
        out = np.stack([_affine(p, angle=a * (1 if i % 2 else -1)) for i, (p, a) in enumerate(zip(pixels, lv))]
                       ).astype(np.float32)
    elif kind == "misalignment":      # detector box shifted by `level` of the face size, in a random direction
        dirs = rng.uniform(0, 2 * np.pi, len(pixels))
        out = np.stack([_affine(p) if d == 0 else _shift(p, d * np.cos(a), d * np.sin(a))
                        for p, a, d in zip(pixels, dirs, lv)]).astype(np.float32)
    elif kind == "scale":             # detector box too tight (> 1) or too loose (< 1)
        out = np.stack([_affine(p, zoom=z) for p, z in zip(pixels, lv)]).astype(np.float32)
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
