"""Face crop -> network input. The one preprocessing path shared by training, export checks and inference.

Training data (FER-2013) is already 48x48 grey; a detected face crop is any size and may be colour.
Both go through `to_model_input`, so the model never sees pixels prepared two different ways.
"""
from __future__ import annotations

import cv2
import numpy as np

IMAGE_SIZE = 48          # FER-2013 faces are 48x48
PIXEL_SCALE = 1 / 127.5  # uint8 [0, 255] -> [-1, 1]: x * PIXEL_SCALE + PIXEL_OFFSET
PIXEL_OFFSET = -1.0

# Written into every model file, so inference never guesses the normalisation.
PREPROCESS_SPEC = {
    "image_size": IMAGE_SIZE,
    "color": "grey",
    "resize": "area when shrinking, linear when enlarging",
    "scale": PIXEL_SCALE,
    "offset": PIXEL_OFFSET,
    "layout": "NCHW",
}


def to_grey(image: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) BGR or (H, W, 4) BGRA -> (H, W) uint8 grey."""
    if image.ndim == 2:
        grey = image
    elif image.ndim == 3 and image.shape[2] == 1:
        grey = image[:, :, 0]
    elif image.ndim == 3 and image.shape[2] == 3:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif image.ndim == 3 and image.shape[2] == 4:
        grey = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    else:
        raise ValueError(f"expected an (H, W) or (H, W, 1|3|4) image, got shape {image.shape}")
    if grey.dtype != np.uint8:
        if np.issubdtype(grey.dtype, np.floating) and grey.size and grey.max() <= 1.0:
            grey = grey * 255.0  # float images in [0, 1]
        grey = np.clip(grey, 0, 255).astype(np.uint8)
    return grey


def resize_face(grey: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """(H, W) uint8 -> (size, size) uint8; area interpolation when shrinking avoids aliasing."""
    h, w = grey.shape
    if (h, w) == (size, size):
        return grey
    if h == 0 or w == 0:
        raise ValueError(f"empty face crop of shape {grey.shape}")
    interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR
    return cv2.resize(grey, (size, size), interpolation=interp)


def to_model_input(faces) -> np.ndarray:
    """Face crops -> (N, 1, 48, 48) float32 in [-1, 1].

    `faces`: an (N, H, W) uint8 array, or a sequence of crops of any size, each grey or BGR/BGRA.
    """
    if isinstance(faces, np.ndarray) and faces.ndim == 3 and faces.dtype == np.uint8 \
            and faces.shape[1:] == (IMAGE_SIZE, IMAGE_SIZE):
        batch = faces  # the training fast path: already (N, 48, 48) grey
    else:
        if isinstance(faces, np.ndarray) and faces.ndim == 2:
            raise ValueError("expected a batch of faces; wrap a single face in a list")
        batch = np.stack([resize_face(to_grey(np.asarray(f))) for f in faces]) if len(faces) else \
            np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    x = batch.astype(np.float32) * PIXEL_SCALE + PIXEL_OFFSET
    return x[:, None, :, :]
