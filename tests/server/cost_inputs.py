"""Tiny files that cost a decoder far more than their size (issue 26): each class of the campaign against
`ferkit serve`, built from scratch. `scale` < 1 gives the small versions the tests send; benchmarks/cost_campaign.py
sends them at full size. Every function returns the file's bytes."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from .conftest import png_chunk


def _riff(chunks: bytes) -> bytes:
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WEBP" + chunks


def _chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + (b"\0" if len(body) & 1 else b"")


def _small_vp8l() -> bytes:
    """The VP8L chunk (header included) of a 16x16 lossless WebP."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 100, 50)).save(buf, "WEBP", lossless=True)
    data = buf.getvalue()
    pos = data.index(b"VP8L")
    return data[pos:]


def webp_animation_canvas(frames: int = 1, w: int = 8000, h: int = 5000) -> bytes:
    """An animated WebP: an 8000x5000 canvas, `frames` frames of 16x16 (issue: 94 bytes -> +630 MB)."""
    vp8x = bytes([0x02 | 0x10, 0, 0, 0]) + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    anim = struct.pack("<IH", 0, 0)
    frame = _chunk(b"ANMF", (0).to_bytes(3, "little") * 2 + (15).to_bytes(3, "little") * 2
                   + (100).to_bytes(3, "little") + b"\0" + _small_vp8l())
    return _riff(_chunk(b"VP8X", vp8x) + _chunk(b"ANIM", anim) + frame * frames)


def webp_vp8l_patched(w: int = 16383, h: int = 2441) -> bytes:
    """A 16x16 lossless WebP whose VP8L header is patched to w x h (issue: 38 bytes -> +505 MB)."""
    chunk = bytearray(_small_vp8l())
    bits = int.from_bytes(chunk[9:13], "little")
    bits = (bits & ~0xFFFFFFF) | (w - 1) | ((h - 1) << 14)
    chunk[9:13] = bits.to_bytes(4, "little")
    return _riff(bytes(chunk))


def png_truncated_tall(h: int = 40_000_000) -> bytes:
    """A PNG whose IHDR says 1 x h, with a few bytes of IDAT and no IEND (issue: 67 bytes, +458 MB, answered 200)."""
    ihdr = struct.pack(">IIBBBBB", 1, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0\0" * 4))


def png_iccp_bomb(chunks: int = 8000, inflated: int = 1_000_000) -> bytes:
    """A 16x16 PNG with `chunks` iCCP chunks each inflating to `inflated` bytes (issue: 8 MB -> 14.9 s of CPU)."""
    ihdr = struct.pack(">IIBBBBB", 16, 16, 8, 0, 0, 0, 0)
    iccp = png_chunk(b"iCCP", b"icc\0\0" + zlib.compress(bytes(inflated), 9))
    idat = png_chunk(b"IDAT", zlib.compress(bytes(17 * 16)))
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + iccp * chunks + idat + png_chunk(b"IEND", b"")


def _jpeg(size=(64, 64), smooth: bool = False, **save) -> bytes:
    if smooth:  # a gradient: small scans
        pixels = np.broadcast_to(np.linspace(0, 255, size[0], dtype=np.uint8)[None, :, None], (size[1], size[0], 3))
    else:
        pixels = (np.random.default_rng(0).random((size[1], size[0], 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, "JPEG", **save)
    return buf.getvalue()


def jpeg_junk_then_exif(segments: int = 900_000) -> bytes:
    """A JPEG with a junk byte after its APP0 and then many tiny Exif APP1 segments (issue: 9.9 MB -> 6.2 s:
    an Exif stripper that stops at the junk leaves them to Pillow, which joins them one by one, quadratic)."""
    jpeg = _jpeg()
    app0_end = 4 + struct.unpack(">H", jpeg[4:6])[0]
    app1 = b"\xff\xe1" + struct.pack(">H", 8) + b"Exif\0\0"
    return jpeg[:app0_end] + b"\x00" + app1 * segments + jpeg[app0_end:]


def jpeg_fill_bytes(n: int = 10_000_000) -> bytes:
    """A JPEG padded with n FF fill bytes before its first segment (issue: 10 MB -> 2.2 s)."""
    jpeg = _jpeg()
    return jpeg[:2] + b"\xff" * n + jpeg[2:]


def jpeg_empty_app_segments(n: int = 2_400_000) -> bytes:
    """A JPEG with n empty APP15 segments (issue: 10 MB -> 2.3 s)."""
    jpeg = _jpeg()
    return jpeg[:2] + b"\xff\xef\x00\x02" * n + jpeg[2:]


def jpeg_many_scans(scans: int = 250, size=(2000, 2000)) -> bytes:
    """A progressive JPEG whose first (DC) scan is repeated up to `scans` scans (issue: 648 KB, 256 scans -> 4.3 s)."""
    jpeg = _jpeg(size, smooth=True, progressive=True, quality=95)
    first = jpeg.index(b"\xff\xda")
    second = jpeg.index(b"\xff\xda", first + 2)
    return jpeg[:second] + jpeg[first:second] * (scans - jpeg.count(b"\xff\xda")) + jpeg[second:]


def jpeg_progressive_cmyk(w: int = 6000, h: int = 6000) -> bytes:
    """A small progressive CMYK JPEG whose frame header is patched to w x h, cut after its first scan (issue:
    +417 MB: the decoder allocates every coefficient of the declared image first)."""
    buf = io.BytesIO()
    Image.new("CMYK", (64, 64), (10, 20, 30, 40)).save(buf, "JPEG", progressive=True)
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc2")
    data[sof + 5:sof + 9] = struct.pack(">HH", h, w)
    first = data.index(b"\xff\xda")
    second = data.index(b"\xff\xda", first + 2) if data.count(b"\xff\xda") > 1 else len(data)
    return bytes(data[:second])


def gif_comment_blocks(blocks: int = 4_900_000) -> bytes:
    """A 1x1 GIF with a comment extension of `blocks` one-byte sub-blocks before its frame (issue: 4.9 M -> +411 MB)."""
    head = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    comment = b"\x21\xfe" + b"\x01x" * blocks + b"\0"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return head + comment + frame + b"\x3b"


def bmp_rle8_line_ends(w: int = 6000, h: int = 6000, escapes: int = 10_000) -> bytes:
    """An RLE8 BMP of w x h whose data is end-of-line escapes (issue: 21 KB -> 2.2 s: Pillow pads each line in
    Python, one byte at a time)."""
    rle = b"\x01\x01\x00\x00" * escapes + b"\x00\x01"
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 1, len(rle), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(rle), 0, 0, offset) + info + palette + rle


# (label, function): every class the campaign sends; the tests send each at a small scale
BOMBS = {
    "webp-animation-canvas": webp_animation_canvas,
    "webp-vp8l-patched": webp_vp8l_patched,
    "png-truncated-tall": png_truncated_tall,
    "png-iccp-bomb": png_iccp_bomb,
    "jpeg-junk-then-exif": jpeg_junk_then_exif,
    "jpeg-fill-bytes": jpeg_fill_bytes,
    "jpeg-empty-app-segments": jpeg_empty_app_segments,
    "jpeg-many-scans": jpeg_many_scans,
    "jpeg-progressive-cmyk": jpeg_progressive_cmyk,
    "gif-comment-blocks": gif_comment_blocks,
    "bmp-rle8-line-ends": bmp_rle8_line_ends,
}
