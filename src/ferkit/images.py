"""Turn what users hand us (a path, bytes, a NumPy array, a PIL image) into one BGR uint8 array.

Encoded bytes are decoded only if their first bytes say they are one of a few raster formats (JPEG, PNG,
WebP, BMP, GIF); anything else (PDF, PostScript/EPS, SVG, TIFF, ...) is refused before any decoder sees it,
so no decoder that writes temporary files or runs an interpreter (Pillow's EPS plugin runs Ghostscript) is
ever reached. Every format is decoded by Pillow with only that one format's plugin allowed; its decoders
work in memory, bound their reads by the data, and report errors as exceptions (OpenCV's PNG reader
allocates whatever a chunk header declares, and libpng/libjpeg print to the process's stderr).
Before decoding, the header's width x height is checked against a pixel limit, a PNG's chunk lengths
against the bytes actually there, and a JPEG's number of scans against a bound.
"""
from __future__ import annotations

import io
import struct
from pathlib import Path

import cv2
import numpy as np

MAX_PIXELS = 40_000_000  # decoded-size limit: a 40-megapixel photo passes, a decompression bomb does not
MAX_JPEG_SCANS = 256     # a progressive JPEG has about 10; thousands of tiny scans make decoding crawl
IMAGE_FORMATS = ("JPEG", "PNG", "WebP", "BMP", "GIF")  # what decode_image accepts (GIF: the first frame)
READ_FORMATS = IMAGE_FORMATS + ("TIFF",)  # what load_image reads: TIFF too (the first page); the server keeps the above
MAX_TIFF_TAGS = 1024      # entries in a TIFF's first directory; real files have 10-40
MAX_LOCAL_PIXELS = 178_000_000  # read_photo refuses larger even reduced (Pillow's own bomb limit; 100-MP cameras pass)


class UnreadableImageError(ValueError):
    """The input is not an image we can decode; the message names it and says why."""


class UnsupportedImageFormatError(UnreadableImageError):
    """The bytes are not one of IMAGE_FORMATS (a PDF, an EPS, an SVG, a TIFF, text ...); `kind` says what they are."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


class ImageTooLargeError(UnreadableImageError):
    """The image decodes to more pixels than allowed (a guard against decompression bombs)."""


# ---------------------------------------------------------------- what the bytes are
def image_format(data: bytes) -> str | None:
    """The format named by the first bytes if it is one of READ_FORMATS, else None."""
    head = bytes(data[:16])
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head.startswith(b"BM"):
        return "BMP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    return None


# (prefix, what it is) for the refusal message; the first match wins.
_OTHER_KINDS = (
    (b"%PDF", "a PDF document"), (b"%!PS", "a PostScript/EPS file"), (b"\xc5\xd0\xd3\xc6", "an EPS file"),
    (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"), (b"II+\x00", "a BigTIFF image"),
    (b"MM\x00+", "a BigTIFF image"), (b"\x00\x00\x01\x00", "an ICO icon"), (b"8BPS", "a Photoshop PSD file"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"), (b"\xffO\xffQ", "a JPEG 2000 codestream"),
    (b"\xff\n", "a JPEG XL image"), (b"\x00\x00\x00\x0cJXL ", "a JPEG XL image"), (b"qoif", "a QOI image"),
    (b"PK\x03\x04", "a ZIP archive"), (b"\x1f\x8b", "a gzip file"), (b"\x7fELF", "an executable"),
    (b"gimp xcf", "a GIMP XCF file"), (b"\x00\x00\x02\x00", "a CUR cursor"), (b"DDS ", "a DDS texture"),
)


def _kind(data: bytes) -> str:
    """What the bytes look like, for a message: 'a PDF document', 'text', 'data'."""
    head = bytes(data[:64])
    for prefix, kind in _OTHER_KINDS:
        if head.startswith(prefix):
            return kind
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return ("a HEIC/HEIF image" if brand[:3] in (b"hei", b"hev", b"mif", b"msf") else
                "an AVIF image" if brand[:3] == b"avi" else "an MP4/QuickTime file")
    if head[:2] == b"P1" or head[:1] == b"P" and head[1:2] in b"234567" and head[2:3].isspace():
        return "a PNM image"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if stripped.startswith((b"<svg", b"<?xml", b"<!doctype", b"<html")):
        return "SVG/XML/HTML text"
    try:
        head.decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        return "data"


def _describe(data: bytes) -> str:
    return f"starts with {bytes(data[:8])!r}" if data else "is empty"


# ---------------------------------------------------------------- checks before decoding
def _check_png(data: bytes, name: str, max_pixels: int) -> None:
    """IHDR's size within `max_pixels`; every chunk's declared length within the bytes that follow it
    (OpenCV's reader allocates what a chunk declares: 4 GB for a 69-byte file)."""
    pos, end = 8, len(data)
    first = True
    while pos < end:
        if end - pos < 12:
            raise UnreadableImageError(f"{name}: corrupt or truncated PNG: {end - pos} stray bytes after the last chunk")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        label = kind.decode("latin-1").encode("unicode_escape").decode()
        if first and (kind != b"IHDR" or length != 13):
            raise UnreadableImageError(f"{name}: corrupt PNG: the first chunk is {label!r} of {length} bytes, not IHDR of 13")
        if length > 0x7FFFFFFF or 12 + length > end - pos:
            raise UnreadableImageError(f"{name}: corrupt or truncated PNG: chunk {label!r} declares {length:,} bytes "
                                       f"but only {max(end - pos - 12, 0):,} follow")
        if first:
            _check_size(*struct.unpack(">II", data[pos + 8:pos + 16]), name, max_pixels)
        first = False
        pos += 12 + length
        if kind == b"IEND":
            return


# TIFF field types -> bytes per value (BYTE, ASCII, SHORT, LONG, RATIONAL, SBYTE, UNDEFINED, SSHORT, SLONG,
# SRATIONAL, FLOAT, DOUBLE, IFD)
_TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}


def _check_tiff(data: bytes, name: str, max_pixels: int) -> None:
    """The first directory (page) within the bytes and at most MAX_TIFF_TAGS entries; each tag's values within
    the bytes; width x height within `max_pixels`; 1-16 bits and 1-4 samples per pixel; the strips or tiles
    within the bytes. (Pillow would seek to whatever a tag declares.)"""
    order = "<" if data[:2] == b"II" else ">"
    end = len(data)

    def corrupt(why: str) -> UnreadableImageError:
        return UnreadableImageError(f"{name}: corrupt or truncated TIFF: {why}")

    if end < 8:
        raise corrupt(f"{end} bytes, not even a header")
    ifd = struct.unpack(order + "I", data[4:8])[0]
    if ifd < 8 or ifd + 2 > end:
        raise corrupt(f"the first page's directory is at byte {ifd:,} of {end:,}")
    count = struct.unpack(order + "H", data[ifd:ifd + 2])[0]
    if count > MAX_TIFF_TAGS:
        raise corrupt(f"{count:,} tags in the first page's directory (at most {MAX_TIFF_TAGS})")
    if ifd + 2 + 12 * count > end:
        raise corrupt(f"the directory declares {count} tags but only {(end - ifd - 2) // 12} fit in the file")
    tags = {}
    for i in range(count):
        entry = ifd + 2 + 12 * i
        tag, kind, n = struct.unpack(order + "HHI", data[entry:entry + 8])
        size = _TIFF_TYPE_SIZES.get(kind, 1) * n
        where = entry + 8 if size <= 4 else struct.unpack(order + "I", data[entry + 8:entry + 12])[0]
        if where + size > end:
            raise corrupt(f"tag {tag} declares {size:,} bytes at byte {where:,}, past the end ({end:,})")
        if tag in (256, 257, 258, 277, 273, 279, 324, 325) and kind in (3, 4):
            fmt = order + ("H" if kind == 3 else "I") * n
            tags[tag] = struct.unpack(fmt, data[where:where + size])
    if 256 not in tags or 257 not in tags:
        raise corrupt("the first page has no width or height")
    _check_size(tags[256][0], tags[257][0], name, max_pixels)
    bits, samples = max(tags.get(258, (1,))), tags.get(277, (1,))[0]
    if not 1 <= bits <= 16 or not 1 <= samples <= 4:
        raise UnreadableImageError(f"{name}: a TIFF with {samples} samples of {bits} bits per pixel; ferkit reads "
                                   "grey, RGB and RGBA of 8 or 16 bits")
    for offsets, counts in ((273, 279), (324, 325)):  # strips, tiles
        for offset, length in zip(tags.get(offsets, ()), tags.get(counts, ())):
            if offset + length > end:
                raise corrupt(f"image data of {length:,} bytes at byte {offset:,}, past the end ({end:,})")


def _check_size(w: int, h: int, name: str, max_pixels: int) -> None:
    if w * h > max_pixels:
        raise ImageTooLargeError(f"{name}: {w}x{h} is {w * h:,} pixels, over the limit of {max_pixels:,}; "
                                 f"resize it (ferkit analyze reads photos up to {MAX_LOCAL_PIXELS // 10**6} MP, reduced)")


def _check_jpeg(data: bytes, name: str) -> None:
    # 0xFF in entropy-coded data is always followed by 0x00, so FF DA counts the scans (SOS markers)
    scans = bytes(data).count(b"\xff\xda")
    if scans > MAX_JPEG_SCANS:
        raise UnreadableImageError(f"{name}: JPEG with {scans:,} scans, over the limit of {MAX_JPEG_SCANS}")


# ---------------------------------------------------------------- decoding
def decode_image(data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS,
                 formats: tuple[str, ...] = IMAGE_FORMATS, reduce: int = 1) -> np.ndarray:
    """Encoded bytes -> (H, W, 3) BGR uint8. EXIF orientation is applied; a GIF gives its first frame, a TIFF its
    first page. `formats`: those accepted (the server's IMAGE_FORMATS by default; load_image passes READ_FORMATS).
    `reduce` > 1 decodes at 1/reduce of the size (read_photo's big photos): a JPEG through its DCT scaling, the
    others converted in strips; `max_pixels` then bounds the reduced size.

    Raises UnsupportedImageFormatError (not one of `formats`, judged from the bytes),
    ImageTooLargeError (over `max_pixels`, judged from the header) or UnreadableImageError (corrupt or truncated).
    """
    if not data:
        raise UnreadableImageError(f"{name}: empty file")
    fmt = image_format(data)
    if fmt not in formats:
        kind = _kind(data)
        raise UnsupportedImageFormatError(
            f"{name}: not an image in a format we read: {kind} ({_describe(data)}); send {_format_list(formats)}", kind)
    if reduce > 1:
        max_pixels *= reduce * reduce
    if fmt == "TIFF":
        _check_tiff(data, name, max_pixels)
    if fmt == "PNG":
        _check_png(data, name, max_pixels)
    exif = None
    if fmt == "JPEG":
        _check_jpeg(data, name)
        data, exif = _jpeg_without_exif(data)  # Pillow would parse it on open, warning about any flaw
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as im:
            w, h = im.size
            _check_size(w, h, name, max_pixels)
            if w < 1 or h < 1:
                raise UnreadableImageError(f"{name}: {fmt} declares an empty {w}x{h} image")
            if reduce > 1 and fmt == "JPEG":
                im.draft("RGB", (-(-w // reduce), -(-h // reduce)))  # DCT scaling: decodes at 1/2, 1/4 or 1/8
                reduce //= max(1, round(w / im.size[0]))  # what is left for the strips (powers of 2 both)
            im.load()
            orientation = _exif_orientation(exif or im.info.get("exif"))
            img = _to_bgr(im) if reduce == 1 else _to_bgr_reduced(im, reduce)
    except UnreadableImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(f"{name}: over the limit of {max_pixels:,} pixels ({e})") from None
    except Exception as e:  # Pillow's errors vary (OSError, SyntaxError, ValueError, struct.error, EOFError ...)
        raise UnreadableImageError(f"{name}: corrupt or truncated {fmt} ({str(e)[:200] or type(e).__name__})") from None
    return _orient(img, orientation)


def _jpeg_without_exif(data: bytes) -> tuple[bytes, bytes | None]:
    """(the JPEG without its APP1 Exif segments, the first one's payload or None), from the markers before the scan."""
    pos, end, cuts, exif = 2, len(data), [], None
    while pos + 4 <= end and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan, end of image
            break
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if marker == 0xE1 and data[pos + 4:pos + 10] == b"Exif\x00\x00":
            exif = exif or bytes(data[pos + 4:pos + 2 + length])
            cuts.append((pos, pos + 2 + length))
        pos += 2 + length
    if not cuts:
        return data, None
    kept, prev = bytearray(), 0
    for start, stop in cuts:
        kept += data[prev:start]
        prev = stop
    kept += data[prev:]
    return bytes(kept), exif


def _exif_orientation(exif: bytes | None) -> int:
    """The EXIF Orientation tag (1-8; 1 = upright) read from the first IFD. Our own few lines, not Pillow's
    getexif(), which warns (to stderr) about every corrupt EXIF block it meets."""
    if not exif:
        return 1
    tiff = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return 1
    ifd = struct.unpack(order + "I", tiff[4:8])[0]
    if ifd + 2 > len(tiff):
        return 1
    count = struct.unpack(order + "H", tiff[ifd:ifd + 2])[0]
    for i in range(min(count, 512)):
        entry = ifd + 2 + 12 * i
        if entry + 12 > len(tiff):
            break
        tag, kind = struct.unpack(order + "HH", tiff[entry:entry + 4])
        if tag == 0x0112 and kind == 3:  # Orientation, SHORT
            value = struct.unpack(order + "H", tiff[entry + 8:entry + 10])[0]
            return value if 1 <= value <= 8 else 1
    return 1


def _orient(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn a BGR image upright as its EXIF orientation says (what Pillow's exif_transpose and OpenCV do)."""
    if orientation == 2:
        return cv2.flip(img, 1)
    if orientation == 3:
        return cv2.rotate(img, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(img, 0)
    if orientation == 5:
        return np.ascontiguousarray(img.transpose(1, 0, 2))
    if orientation == 6:
        return cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return np.ascontiguousarray(img[::-1, ::-1].transpose(1, 0, 2))
    if orientation == 8:
        return cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return img


def _format_list(formats: tuple[str, ...] = IMAGE_FORMATS) -> str:
    return ", ".join(formats[:-1]) + " or " + formats[-1]


def _to_bgr(im) -> np.ndarray:
    """A decoded PIL image -> writable (H, W, 3) BGR uint8, with as few full-size copies as it takes."""
    w, h = im.size
    if im.mode.startswith("I;16") or im.mode == "I":  # 16-bit grey: keep the top 8 bits, as OpenCV does
        grey = (np.asarray(im).astype(np.uint32) >> 8).astype(np.uint8)
        return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    if im.mode == "1":
        im = im.convert("L")
    if im.mode == "L":
        return cv2.cvtColor(np.asarray(im), cv2.COLOR_GRAY2BGR)
    if im.mode != "RGB":
        if im.mode in ("P", "PA") and "transparency" in im.info:
            im = im.convert("RGBA")  # the direct route warns about palette transparency
        im = im.convert("RGB")  # alpha is dropped, as OpenCV's IMREAD_COLOR does
    # Pillow holds RGB as 4 bytes a pixel; copying it out in strips of ~4 MB keeps the peak at that plus the
    # 3-byte result (one tobytes() of the whole image would add a third full-size buffer)
    out = np.empty((h, w, 3), np.uint8)
    rows = max(1, (4 << 20) // (3 * w))
    for y in range(0, h, rows):
        strip = im.crop((0, y, w, min(h, y + rows))).tobytes("raw", "BGR")
        out[y:y + rows] = np.frombuffer(strip, np.uint8).reshape(-1, w, 3)
    return out


def _to_bgr_reduced(im, k: int) -> np.ndarray:
    """A decoded PIL image -> (H // k, W // k, 3) BGR uint8, each pixel the mean of a k x k block: converted in
    strips of k-row multiples, so no full-size BGR copy is ever made (only Pillow's own buffer is full size)."""
    w, h = im.size
    out = np.empty((h // k, w // k, 3), np.uint8)
    rows = max(1, (4 << 20) // (3 * w * k)) * k
    for y in range(0, h - h % k, rows):
        strip = im.crop((0, y, w, min(h - h % k, y + rows))).convert("RGB").tobytes("raw", "BGR")
        strip = np.frombuffer(strip, np.uint8).reshape(-1, w, 3)
        out[y // k:(y + len(strip)) // k] = cv2.resize(strip, (w // k, len(strip) // k), interpolation=cv2.INTER_AREA)
    return out


def read_photo(path: str | Path, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, int]:
    """A local photo file -> (BGR image, k): a photo over `max_pixels` (a 50-100 MP camera's) is decoded at
    1/k of its size, k the smallest power of 2 that brings it within `max_pixels` (plenty for detection: faces are
    found on a 640-pixel copy); multiply the image's coordinates by k for the file's. Memory: a JPEG is decoded
    reduced (DCT scaling); other formats are decoded once at full size by Pillow and converted in strips. Larger
    than MAX_LOCAL_PIXELS: ImageTooLargeError. The CLI and batch read files through this; the server does not."""
    path = Path(path)
    if not path.is_file():
        raise UnreadableImageError(f"{path}: no such file")
    import warnings

    from PIL import Image

    data = path.read_bytes()
    with warnings.catch_warnings():  # Pillow warns from 89 MP on; MAX_LOCAL_PIXELS is the bound here
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        size = _declared_size(data)
        k = 1
        if size is not None:
            w, h = size
            _check_size(w, h, str(path), MAX_LOCAL_PIXELS)
            while -(-w // k) * -(-h // k) > max_pixels:
                k *= 2
        return decode_image(data, str(path), max_pixels, READ_FORMATS, k), k


def _declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) that the header declares, without decoding; None when it cannot be told (decode_image will
    check it then, against max_pixels)."""
    from PIL import Image

    fmt = image_format(data)
    if fmt is None:
        return None
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as im:
            return im.size
    except Image.DecompressionBombError:
        return None
    except Exception:  # corrupt: decode_image says so, naming the file
        return None


def load_image(source, *, color: str = "bgr", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A path, bytes, NumPy array or PIL image -> (H, W, 3) BGR uint8.

    `color` says how to read a 3-channel NumPy array: "bgr" (OpenCV's order, the default) or "rgb".
    Grey (H, W) and BGRA arrays are converted. Strings are file paths, never URLs.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise UnreadableImageError(f"{path}: no such file")
        return decode_image(path.read_bytes(), str(path), max_pixels, READ_FORMATS)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode_image(source, "image bytes", max_pixels, READ_FORMATS)
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
