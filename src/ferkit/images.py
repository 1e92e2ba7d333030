"""Turn what users hand us (a path, bytes, a NumPy array, a PIL image) into one BGR uint8 array.

Encoded bytes are decoded only if their first bytes say they are one of a few raster formats (JPEG, PNG,
WebP, BMP, GIF); anything else (PDF, PostScript/EPS, SVG, TIFF, ...) is refused before any decoder sees it,
so no decoder that writes temporary files or runs an interpreter (Pillow's EPS plugin runs Ghostscript) is
ever reached. Every format is decoded by Pillow with only that one format's plugin allowed; its decoders
work in memory, bound their reads by the data, and report errors as exceptions (OpenCV's PNG reader
allocates whatever a chunk header declares, and libpng/libjpeg print to the process's stderr).
Before decoding, every format's headers are checked, so that no decoder is handed a file that costs far more
than its size: width x height against a pixel limit (WebP's at half of it, an animated WebP's canvas at an
eighth, an RLE BMP's at MAX_BMP_RLE_PIXELS); a PNG's chunk lengths against the bytes actually there, its IEND and
enough IDAT bytes for the declared image (truncated files are errors), its chunk count and the inflated size of its
iCCP, zTXt and iTXt chunks together; a JPEG's segments, fill and junk bytes before the scan, its number of scans and,
when progressive, its coefficient memory and scans x pixels; a GIF's extension blocks before its first frame and
that frame's data; a WebP's frame count. All checks are linear in the input and stop at their caps.
Decoding a stranger's file should still happen out of process, with hard limits: ferkit.safe_decode.
"""
from __future__ import annotations

import io
import struct
from pathlib import Path

import cv2
import numpy as np

MAX_PIXELS = 40_000_000  # decoded-size limit: a 40-megapixel photo passes, a decompression bomb does not
MAX_JPEG_SCANS = 256     # a progressive JPEG has about 10; thousands of tiny scans make decoding crawl
MAX_JPEG_SEGMENTS = 1024  # segments before the first scan; a camera JPEG has a few dozen (an ICC profile split 255
                          # ways would be the most): each costs Pillow a pass of its Python marker loop
MAX_JPEG_STRAY_BYTES = 65_536  # fill (FF) and junk bytes between those segments: Pillow skips them one at a time
MAX_JPEG_COEFFICIENT_BYTES = 256_000_000  # a progressive JPEG is decoded into a buffer of all its DCT coefficients
                                           # (2 bytes each) before any pixel comes out: a 40 Mpx 4:2:0 photo needs 120 MB
MAX_JPEG_SCAN_PIXELS = 12 * 40_000_000  # scans x pixels of a progressive JPEG (each scan passes over the image;
                                        # a camera's progressive JPEG has about 10 scans)
MAX_PNG_CHUNKS = 10_000    # an encoder writes IDAT in 8 KB to 1 MB chunks: 10 MB in under 1,300
MAX_PNG_METADATA_BYTES = 8_000_000  # iCCP, zTXt and iTXt together, inflated (Pillow inflates each, up to 1 MB)
MAX_ANIMATION_FRAMES = 1_000   # frames of an animated WebP (its decoder indexes them all, though we use the first)
MAX_GIF_EXTENSION_BLOCKS = 4_096  # sub-blocks of the extensions before the first frame (Pillow reads them in Python)
MAX_BMP_RLE_PIXELS = 4_000_000  # Pillow decodes RLE BMPs in Python, pixel by pixel at line ends: 36 Mpx took 5.6 s
ZLIB_MAX_RATIO = 1032      # deflate's best: 258 bytes from about 2 bits; more inflated bytes than this can't be there
IMAGE_FORMATS = ("JPEG", "PNG", "WebP", "BMP", "GIF")  # what decode_image accepts (GIF: the first frame)
READ_FORMATS = IMAGE_FORMATS + ("TIFF",)  # what load_image reads: TIFF too (the first page); the server keeps the above
# File name suffixes of READ_FORMATS: what every command that walks folders or reads files picks up as images
# (analyze, batch, adapt's folder mode), one list from the decoder's own formats, so no command reads a file by name
# that the decoder refuses (.pgm) or skips one it reads (.tif).
FORMAT_SUFFIXES = {"JPEG": (".jpg", ".jpeg", ".jfif"), "PNG": (".png",), "WebP": (".webp",), "BMP": (".bmp",),
                   "GIF": (".gif",), "TIFF": (".tif", ".tiff")}
IMAGE_SUFFIXES = tuple(suffix for f in READ_FORMATS for suffix in FORMAT_SUFFIXES[f])
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
    """How the bytes begin, in words for people (no Python bytes literal): text as text, else hexadecimal."""
    if not data:
        return "the file is empty"
    head = bytes(data[:8])
    if all(32 <= b < 127 for b in head):
        return f'starts with "{head.decode("ascii")}"'
    return "starts with the bytes " + " ".join(f"{b:02X}" for b in head)


# ---------------------------------------------------------------- checks before decoding
def _check_png(data: bytes, name: str, max_pixels: int) -> None:
    """IHDR's size within `max_pixels`; every chunk's declared length within the bytes that follow it (OpenCV's
    reader allocates what a chunk declares: 4 GB for a 69-byte file); an IEND, and enough IDAT bytes to inflate to
    the image IHDR declares (a truncated PNG is an error, not a partly grey photo); at most MAX_PNG_CHUNKS chunks and
    MAX_PNG_METADATA_BYTES of inflated iCCP, zTXt and iTXt together (each inflated once here, with a running budget)."""
    pos, end = 8, len(data)
    first = True
    idat = chunks = 0
    metadata = [0]  # inflated so far, shared by all compressed metadata chunks
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
            w, h, depth, color = struct.unpack(">IIBB", data[pos + 8:pos + 18])
            _check_size(w, h, name, max_pixels)
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            raise UnreadableImageError(f"{name}: PNG with more than {MAX_PNG_CHUNKS:,} chunks; re-save it")
        if kind == b"IDAT":
            idat += length
        elif kind in (b"iCCP", b"zTXt", b"iTXt"):
            _inflate_metadata(data[pos + 8:pos + 8 + length], kind, metadata, name)
        first = False
        pos += 12 + length
        if kind == b"IEND":
            break
    else:
        raise UnreadableImageError(f"{name}: truncated PNG: it ends before its IEND chunk")
    # the filtered rows IHDR declares, at the least (no filter bytes, no interlacing): deflate cannot make them
    # from fewer than 1/ZLIB_MAX_RATIO as many bytes
    samples = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(color, 1)
    rows = h * ((w * samples * depth + 7) // 8)
    if idat * ZLIB_MAX_RATIO + 1024 < rows:
        raise UnreadableImageError(f"{name}: truncated PNG: {idat:,} bytes of image data cannot hold the {w}x{h} "
                                   "image its header declares")


def _inflate_metadata(chunk: bytes, kind: bytes, used: list, name: str) -> None:
    """Inflate one iCCP/zTXt/iTXt chunk's text or profile against the budget left in used[0], never past it."""
    import zlib

    if kind == b"iTXt":  # keyword\0, compression flag, method, language\0, translated keyword\0, text
        key_end = chunk.find(b"\0")
        if key_end < 0 or key_end + 2 >= len(chunk) or chunk[key_end + 1] == 0:
            return  # uncompressed text: its bytes are there, counted in the upload's size
        rest = chunk[key_end + 3:]
        lang_end = rest.find(b"\0")
        tkey_end = rest.find(b"\0", lang_end + 1) if lang_end >= 0 else -1
        if tkey_end < 0:
            return
        stream = rest[tkey_end + 1:]
    else:  # keyword\0, method, compressed data
        key_end = chunk.find(b"\0")
        if key_end < 0:
            return
        stream = chunk[key_end + 2:]
    inflater = zlib.decompressobj()
    left = MAX_PNG_METADATA_BYTES - used[0]
    try:
        out = inflater.decompress(stream, left + 1)
    except zlib.error:
        return  # Pillow ignores (or refuses) a broken stream itself; nothing was inflated past the budget
    used[0] += len(out)
    if used[0] > MAX_PNG_METADATA_BYTES:
        raise UnreadableImageError(f"{name}: PNG whose compressed metadata (iCCP, zTXt, iTXt) inflates to more than "
                                   f"{MAX_PNG_METADATA_BYTES:,} bytes")


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


def _check_jpeg(data: bytes, name: str, max_pixels: int) -> None:
    # 0xFF in entropy-coded data is always followed by 0x00, so FF DA counts the scans (SOS markers)
    scans = bytes(data).count(b"\xff\xda")
    if scans > MAX_JPEG_SCANS:
        raise UnreadableImageError(f"{name}: JPEG with {scans:,} scans, over the limit of {MAX_JPEG_SCANS}")
    frame = _jpeg_segments(data, name)[1]
    if frame is None:
        return  # no frame header before the first scan: Pillow refuses it
    w, h, progressive, components = frame
    _check_size(w, h, name, max_pixels)
    if progressive and components:
        hmax = max(c[0] for c in components) or 1
        vmax = max(c[1] for c in components) or 1
        blocks = sum(-(-w * hs // hmax // 8) * -(-h * vs // vmax // 8) for hs, vs in components)
        if blocks * 128 > MAX_JPEG_COEFFICIENT_BYTES:
            raise ImageTooLargeError(f"{name}: a progressive {w}x{h} JPEG with {len(components)} components needs "
                                     f"{blocks * 128:,} bytes of coefficients, over the limit of "
                                     f"{MAX_JPEG_COEFFICIENT_BYTES:,}; save it as a baseline JPEG")
        if scans * w * h > MAX_JPEG_SCAN_PIXELS:
            raise UnreadableImageError(f"{name}: a progressive {w}x{h} JPEG with {scans} scans (scans x pixels over "
                                       f"{MAX_JPEG_SCAN_PIXELS:,}); save it as a baseline JPEG")


def _jpeg_segments(data: bytes, name: str) -> tuple[list[tuple[int, int]], tuple | None]:
    """Walk the markers before the first scan as Pillow does (skipping junk and fill bytes), within the caps.
    -> ([(start, stop) of every Exif APP1 segment], (width, height, progressive, [(h, v) sampling per component])
    of the frame header or None). Linear in the bytes: junk is skipped with find(), fill bytes are capped."""
    pos, end, exif, frame = 2, len(data), [], None
    segments = stray = 0
    while pos < end:
        if data[pos] != 0xFF:  # junk: Pillow skips it byte by byte
            nxt = data.find(b"\xff", pos)
            nxt = end if nxt < 0 else nxt
            stray += nxt - pos
            pos = nxt
        elif pos + 1 < end and data[pos + 1] in (0xFF, 0x00):  # fill byte, or an escaped FF out of place
            stray += 1
            pos += 1
        elif pos + 1 >= end:
            break
        else:
            marker = data[pos + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
                pos += 2
            elif marker in (0xDA, 0xD9):  # start of scan, end of image
                break
            else:
                if pos + 4 > end:
                    break
                length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
                segments += 1
                if segments > MAX_JPEG_SEGMENTS:
                    raise UnreadableImageError(f"{name}: JPEG with more than {MAX_JPEG_SEGMENTS:,} segments before "
                                               "its image data; re-save it")
                if marker == 0xE1 and data[pos + 4:pos + 10] == b"Exif\x00\x00":
                    exif.append((pos, min(pos + 2 + length, end)))
                elif marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF) \
                        and frame is None and pos + 10 <= end:
                    h, w, n = struct.unpack(">HHB", data[pos + 5:pos + 10])
                    comps = [(data[i] >> 4, data[i] & 15) for i in range(pos + 11, min(pos + 10 + 3 * n, end), 3)]
                    frame = (w, h, marker in (0xC2, 0xC6, 0xCA, 0xCE), comps)
                pos += 2 + length
        if stray > MAX_JPEG_STRAY_BYTES:
            raise UnreadableImageError(f"{name}: JPEG with more than {MAX_JPEG_STRAY_BYTES:,} fill or junk bytes "
                                       "between its segments; re-save it")
    return exif, frame


def _check_webp(data: bytes, name: str, max_pixels: int) -> None:
    """The RIFF chunks within the bytes present; the canvas (VP8X) and the first frame's VP8/VP8L dimensions within
    half of `max_pixels`; an animation's canvas within an eighth of it (its decoder keeps two 4-byte canvases and
    Pillow a third) and at most MAX_ANIMATION_FRAMES frames."""
    end = len(data)
    if end < 20:
        raise UnreadableImageError(f"{name}: truncated WebP: {end} bytes")
    # WebP's decoder and Pillow each hold a 4-byte RGBA copy (a 16383x2441 VP8L of 38 bytes took 610 MB): half
    # the pixels of other formats, still more than any camera writes as WebP
    max_pixels = max_pixels // 2
    pos, frames, canvas, animated = 12, 0, None, False
    while pos + 8 <= end:
        kind, length = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = pos + 8
        if length > end - body:
            raise UnreadableImageError(f"{name}: corrupt or truncated WebP: chunk {bytes(kind)!r} declares "
                                       f"{length:,} bytes but only {end - body:,} follow")
        if kind == b"VP8X" and length >= 10:
            animated = bool(data[body] & 0x02)
            w = 1 + int.from_bytes(data[body + 4:body + 7], "little")
            h = 1 + int.from_bytes(data[body + 7:body + 10], "little")
            _check_size(w, h, name, max_pixels // 4 if animated else max_pixels)
            canvas = (w, h)
        elif kind == b"ANMF":
            frames += 1
            if frames > MAX_ANIMATION_FRAMES:
                raise UnreadableImageError(f"{name}: animated WebP with more than {MAX_ANIMATION_FRAMES:,} frames")
            if frames == 1 and length >= 16:  # the frame we decode: its bitstream's own header too
                _check_webp_bitstream(data[body + 16:body + length], name, max_pixels)
        elif kind in (b"VP8 ", b"VP8L"):
            frames += 1
            _check_webp_bitstream(data[pos:body + length], name, max_pixels)
        pos = body + length + (length & 1)
    if frames == 0:
        raise UnreadableImageError(f"{name}: truncated WebP: no image data")
    if canvas is None and animated:
        raise UnreadableImageError(f"{name}: corrupt WebP: an animation without a canvas")


def _check_webp_bitstream(chunk: bytes, name: str, max_pixels: int) -> None:
    """One VP8 or VP8L chunk (header included): its own width x height, which the decoder allocates."""
    kind, body = chunk[:4], chunk[8:]
    if kind == b"VP8 " and len(body) >= 10 and body[3:6] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", body[6:10])
        _check_size(w & 0x3FFF, h & 0x3FFF, name, max_pixels)
    elif kind == b"VP8L" and len(body) >= 5 and body[0] == 0x2F:
        bits = int.from_bytes(body[1:5], "little")
        _check_size(1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF), name, max_pixels)


def _check_gif(data: bytes, name: str, max_pixels: int) -> None:
    """The screen and the first frame within `max_pixels`; at most MAX_GIF_EXTENSION_BLOCKS extension sub-blocks
    before that frame; the frame's data present up to its terminator (a truncated GIF is an error). Only the first
    frame is walked: it is all Pillow reads."""
    end = len(data)
    if end < 13:
        raise UnreadableImageError(f"{name}: truncated GIF: {end} bytes")
    w, h, flags = struct.unpack("<HHB", data[6:11])
    _check_size(w, h, name, max_pixels)
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    blocks = 0
    while pos < end:
        if data[pos] == 0x21:  # extension: label, then sub-blocks up to an empty one
            pos += 2
            while pos < end and data[pos]:
                blocks += 1
                if blocks > MAX_GIF_EXTENSION_BLOCKS:
                    raise UnreadableImageError(f"{name}: GIF with more than {MAX_GIF_EXTENSION_BLOCKS:,} extension "
                                               "blocks before its first frame")
                pos += 1 + data[pos]
            pos += 1
        elif data[pos] == 0x2C:  # the first frame: descriptor, local colour table, LZW size, data sub-blocks
            if pos + 10 > end:
                break
            fw, fh, fflags = struct.unpack("<HHB", data[pos + 5:pos + 10])
            _check_size(fw, fh, name, max_pixels)
            pos += 10 + (3 << ((fflags & 7) + 1) if fflags & 0x80 else 0) + 1
            while pos < end and data[pos]:
                pos += 1 + data[pos]
            if pos < end:
                return
            break
        else:
            raise UnreadableImageError(f"{name}: corrupt GIF: unexpected byte {data[pos]:#04x} before the first frame")
    raise UnreadableImageError(f"{name}: truncated GIF: it ends before its first frame's data does")


def _check_bmp(data: bytes, name: str, max_pixels: int) -> None:
    """width x height within `max_pixels`, and an RLE-compressed bitmap within MAX_BMP_RLE_PIXELS."""
    if len(data) < 26:
        raise UnreadableImageError(f"{name}: truncated BMP: {len(data)} bytes")
    header = struct.unpack("<I", data[14:18])[0]
    if header == 12:  # OS/2 1.x: 16-bit sizes, never compressed
        w, h = struct.unpack("<HH", data[18:22])
        _check_size(w, h, name, max_pixels)
        return
    if len(data) < 34:
        raise UnreadableImageError(f"{name}: truncated BMP: {len(data)} bytes")
    w, h, _, _, compression = struct.unpack("<iiHHI", data[18:34])
    _check_size(abs(w), abs(h), name, max_pixels)
    if compression in (1, 2) and abs(w) * abs(h) > MAX_BMP_RLE_PIXELS:
        raise ImageTooLargeError(f"{name}: an RLE-compressed {abs(w)}x{abs(h)} BMP, over the limit of "
                                 f"{MAX_BMP_RLE_PIXELS:,} pixels for RLE; save it uncompressed or as PNG")


_CHECKS = {"JPEG": _check_jpeg, "PNG": _check_png, "WebP": _check_webp, "GIF": _check_gif, "BMP": _check_bmp,
           "TIFF": _check_tiff}


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
    check = _CHECKS.get(fmt)
    if check is not None:
        check(data, name, max_pixels)
    exif = None
    if fmt == "JPEG":
        data, exif = _jpeg_without_exif(data, name)  # Pillow would parse it on open, warning about any flaw
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
    except (UnreadableImageError, MemoryError):  # MemoryError: a decoder process's limit (safe_decode), not a flaw
        raise
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(f"{name}: over the limit of {max_pixels:,} pixels ({e})") from None
    except Exception as e:  # Pillow's errors vary (OSError, SyntaxError, ValueError, struct.error, EOFError ...)
        raise UnreadableImageError(f"{name}: corrupt or truncated {fmt} ({str(e)[:200] or type(e).__name__})") from None
    return _orient(img, orientation)


def _jpeg_without_exif(data: bytes, name: str = "image") -> tuple[bytes, bytes | None]:
    """(the JPEG without its APP1 Exif segments, the first one's payload or None), from the markers before the scan.
    All of them go, wherever junk bytes put them (Pillow would join every one into info["exif"], quadratic)."""
    cuts = _jpeg_segments(data, name)[0]
    if not cuts:
        return data, None
    start, stop = cuts[0]
    exif = bytes(data[start + 4:stop])
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
