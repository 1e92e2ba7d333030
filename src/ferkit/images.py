"""Turn what users hand us (a path, bytes, a NumPy array, a PIL image) into one BGR uint8 array."""
from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np

MAX_PIXELS = 40_000_000  # decoded-size limit: a 40-megapixel photo passes, a decompression bomb does not


class UnreadableImageError(ValueError):
    """The input is not an image we can decode; the message names it and says why."""


class ImageTooLargeError(UnreadableImageError):
    """The image decodes to more pixels than allowed (a guard against decompression bombs)."""


def _describe(data: bytes) -> str:
    return f"starts with {bytes(data[:8])!r}" if data else "is empty"


def decode_image(data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Encoded bytes -> (H, W, 3) BGR uint8. EXIF orientation is applied."""
    if not data:
        raise UnreadableImageError(f"{name}: empty file")
    try:  # read the header only, to refuse huge images before decoding them
        from PIL import Image

        with Image.open(io.BytesIO(data)) as probe:
            w, h = probe.size
        if w * h > max_pixels:
            raise ImageTooLargeError(f"{name}: {w}x{h} is {w * h:,} pixels, over the limit of {max_pixels:,}")
    except ImportError:
        pass
    except ImageTooLargeError:
        raise
    except Exception as e:  # PIL's errors for unknown formats vary (UnidentifiedImageError, OSError, ...)
        raise UnreadableImageError(f"{name}: not an image ({_describe(data)})") from e
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        img = _decode_with_pil(data, name)
    return img


def _decode_with_pil(data: bytes, name: str) -> np.ndarray:
    """Fallback for formats OpenCV lacks (GIF, some WebP/TIFF) and truncated files PIL reports clearly."""
    try:
        from PIL import Image, ImageOps

        with Image.open(io.BytesIO(data)) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            return cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2BGR)
    except Exception as e:
        raise UnreadableImageError(f"{name}: corrupt or truncated image ({e})") from e


def load_image(source, *, color: str = "bgr", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A path, bytes, NumPy array or PIL image -> (H, W, 3) BGR uint8.

    `color` says how to read a 3-channel NumPy array: "bgr" (OpenCV's order, the default) or "rgb".
    Grey (H, W) and BGRA arrays are converted. Strings are file paths, never URLs.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise UnreadableImageError(f"{path}: no such file")
        return decode_image(path.read_bytes(), str(path), max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode_image(source, "image bytes", max_pixels)
    if isinstance(source, np.ndarray):
        return _from_array(source, color)
    if type(source).__module__.startswith("PIL."):
        return cv2.cvtColor(np.asarray(source.convert("RGB")), cv2.COLOR_RGB2BGR)
    raise TypeError(f"expected a path, bytes, a NumPy array or a PIL image, got {type(source).__name__}")


def _from_array(a: np.ndarray, color: str) -> np.ndarray:
    if color not in ("bgr", "rgb"):
        raise ValueError(f"unknown color order {color!r}; valid: bgr, rgb")
    if a.size == 0:
        raise UnreadableImageError(f"empty image array of shape {a.shape}")
    if a.dtype != np.uint8:
        a = np.clip(a * 255.0 if np.issubdtype(a.dtype, np.floating) and a.max() <= 1.0 else a, 0, 255).astype(np.uint8)
    if a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 1):
        return cv2.cvtColor(a.reshape(a.shape[:2]), cv2.COLOR_GRAY2BGR)
    if a.ndim == 3 and a.shape[2] == 3:
        return np.ascontiguousarray(a[:, :, ::-1]) if color == "rgb" else a
    if a.ndim == 3 and a.shape[2] == 4:
        return cv2.cvtColor(a, cv2.COLOR_RGBA2BGR if color == "rgb" else cv2.COLOR_BGRA2BGR)
    raise UnreadableImageError(f"expected an (H, W), (H, W, 3) or (H, W, 4) array, got shape {a.shape}")
