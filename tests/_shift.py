"""A camera domain shift built from public data, for `ferkit adapt`'s tests and benchmark: FER-2013 faces under one
strong corruption (blur, then a colour cast on the BGR image, then JPEG at low quality) with a class mix unlike
FER-2013's (more neutral and sad, fewer happy). Its strength was picked among four by 5-fold cross-validation on 1,000
Training faces alone, never by looking at PublicTest or PrivateTest."""
from __future__ import annotations

import cv2
import numpy as np

# The shifted class mix, over FER-2013's labels (angry, disgust, fear, happy, sad, surprise, neutral).
CLASS_MIX = {"angry": 0.15, "disgust": 0.04, "fear": 0.12, "happy": 0.08, "sad": 0.22, "surprise": 0.09, "neutral": 0.30}
BLUR_SIGMA = 1.0                  # pixels, on the 48x48 face
COLOUR_CAST = (0.35, 0.55, 0.8)   # B, G, R gains: a warm, dim cast (tungsten light on a cheap sensor)
JPEG_QUALITY = 20


def shift_faces(pixels: np.ndarray) -> list[np.ndarray]:
    """(N, 48, 48) grey faces -> N shifted (48, 48, 3) BGR images."""
    out = []
    for p in pixels:
        blurred = cv2.GaussianBlur(p, (0, 0), BLUR_SIGMA)
        bgr = np.clip(cv2.cvtColor(blurred, cv2.COLOR_GRAY2BGR) * np.float32(COLOUR_CAST), 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        out.append(cv2.imdecode(buf, cv2.IMREAD_COLOR))
    return out


def shifted_sample(split, n: int, seed: int, classes=None) -> tuple[np.ndarray, np.ndarray]:
    """n row indices of a FaceDataset split drawn with CLASS_MIX (each class's share, as many as it has), and their
    labels as names."""
    rng = np.random.default_rng(seed)
    idx = []
    for i, name in enumerate(split.classes):
        rows = np.flatnonzero(split.labels == i)
        idx += list(rng.choice(rows, min(len(rows), int(round(CLASS_MIX[name] * n))), replace=False))
    idx = np.array(sorted(idx))
    return idx, np.array(split.classes)[split.labels[idx]]
