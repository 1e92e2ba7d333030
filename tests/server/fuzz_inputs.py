"""Malformed inputs for the server, generated from a seed: the test suite runs a few hundred
(tests/server/test_fuzz.py), benchmarks/fuzz_server.py tens of thousands.

Each generator yields (label, payload); the label's first word is the family ("truncate", "bitflip",
"chunk-lie", ...), so results can be counted per family and one family (extreme aspects, until detection
handles them) can be singled out.
"""
from __future__ import annotations

import io
import json
import random
import struct
import zlib
from typing import Iterator

import cv2
import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- valid images to start from
def seed_images(face: np.ndarray | None = None) -> dict[str, bytes]:
    """Small valid files of every accepted format and of the variants their decoders branch on."""
    from PIL import Image

    rng = np.random.default_rng(0)
    if face is None:
        face = cv2.GaussianBlur(rng.integers(0, 256, (96, 96), dtype=np.uint8), (7, 7), 2)
    grey = cv2.resize(face, (96, 96))
    rgb = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    rgb[..., 0] = 255 - rgb[..., 0]

    def pil(image, fmt, **kw) -> bytes:
        buf = io.BytesIO()
        image.save(buf, fmt, **kw)
        return buf.getvalue()

    im_rgb, im_grey = Image.fromarray(rgb), Image.fromarray(grey)
    frames = [im_rgb.convert("P"), Image.fromarray(255 - rgb).convert("P")]
    out = {
        "png-grey": cv2.imencode(".png", grey)[1].tobytes(),
        "png-rgb": cv2.imencode(".png", rgb)[1].tobytes(),
        "png-rgba": pil(im_rgb.convert("RGBA"), "PNG"),
        "png-palette": pil(im_rgb.convert("P"), "PNG", transparency=0),
        "png-16bit": cv2.imencode(".png", grey.astype(np.uint16) * 257)[1].tobytes(),
        "jpeg": cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes(),
        "jpeg-progressive": pil(im_rgb, "JPEG", progressive=True, quality=80),
        "jpeg-grey": pil(im_grey, "JPEG"),
        "jpeg-cmyk": pil(im_rgb.convert("CMYK"), "JPEG"),
        "webp-lossy": pil(im_rgb, "WEBP", quality=80),
        "webp-lossless": pil(im_rgb, "WEBP", lossless=True),
        "bmp": pil(im_rgb, "BMP"),
        "bmp-grey": pil(im_grey, "BMP"),
        "gif": pil(frames[0], "GIF"),
        "gif-animated": pil(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0),
    }
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: exercises EXIF transposition
    out["jpeg-exif-rotated"] = pil(im_rgb, "JPEG", exif=exif.tobytes())
    return out


# ---------------------------------------------------------------- files that are not what they say
FOREIGN = {
    "eps": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto 10 10 lineto stroke\nshowpage\n",
    "eps-binary": b"\xc5\xd0\xd3\xc6" + struct.pack("<IIIIII", 30, 40, 0, 0, 0, 0) + b"%!PS-Adobe-3.0\nshowpage\n",
    "pdf": b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n",
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="99999" height="99999"><rect width="9" height="9"/></svg>',
    "xml-entities": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><x>&b;</x>',
    "html": b"<!doctype html><html><script>alert(1)</script></html>",
    "tiff": b"II*\x00\x08\x00\x00\x00\x01\x00\x00\x01\x03\x00\x01\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00",
    "ico": b"\x00\x00\x01\x00\x01\x00\x10\x10\x00\x00\x01\x00\x20\x00" + bytes(40),
    "heic": b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(32),
    "zip": b"PK\x03\x04" + bytes(40),
    "gzip": b"\x1f\x8b\x08" + bytes(30),
    "elf": b"\x7fELF\x02\x01\x01" + bytes(60),
    "json": json.dumps({"image": "data:image/png;base64,AAAA"}).encode(),
    "text": b"these are notes, not a picture\n" * 20,
    "nul": bytes(1000),
    "one-byte": b"\xff",
    "jpeg-magic-only": b"\xff\xd8\xff",
    "png-signature-only": PNG_SIGNATURE,
    "riff-not-webp": b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(16),
    "bm-text": b"BM this is not a bitmap",
    "gif-header-only": b"GIF89a",
}


def png_chunks(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """[(offset, type, data)] of a well-formed PNG."""
    pos, out = 8, []
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        out.append((pos, kind, data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return out


def _chunk(kind: bytes, data: bytes, length: int | None = None) -> bytes:
    n = len(data) if length is None else length
    return struct.pack(">I", n) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_with_size(width: int, height: int, rows: bytes | None = None, idat_length: int | None = None) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = rows if rows is not None else bytes(min(width, 256) + 1)
    return PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw), idat_length) + _chunk(b"IEND", b"")


LIES = (0, 1, 12, 0x7FFFFFFF, 0x80000000, 0xF0000000, 0xFFFFFFFF, 10_000_000, 65_536)


def _header_lie(rng: random.Random, data: bytes, fmt: str) -> bytes:
    """The same file with its width/height fields replaced by extreme values."""
    b = bytearray(data)
    big = rng.choice([0, 1, 2, 16384, 30000, 65535, 0x7FFFFFFF, 0xFFFFFFFF, rng.randrange(1, 1 << 31)])
    if fmt == "png":
        b[16:24] = struct.pack(">II", big, rng.choice([big, 1, 0, 30000]))  # IHDR, CRC left stale or fixed
        if rng.random() < 0.5:
            b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])) & 0xFFFFFFFF)
    elif fmt == "jpeg":
        i = data.find(b"\xff\xc0")
        if i < 0:
            i = data.find(b"\xff\xc2")
        if i > 0:
            b[i + 5:i + 9] = struct.pack(">HH", big & 0xFFFF, rng.choice([big & 0xFFFF, 1, 0]))
    elif fmt == "bmp":
        b[18:26] = struct.pack("<ii", (big & 0x7FFFFFFF) * rng.choice([1, -1]), rng.choice([big & 0x7FFFFFFF, -30000, 1]))
    elif fmt == "gif":
        b[6:10] = struct.pack("<HH", big & 0xFFFF, rng.choice([big & 0xFFFF, 1]))
    elif fmt == "webp":
        j = rng.randrange(12, min(len(b), 40))
        b[j:j + 4] = struct.pack("<I", big)
    return bytes(b)


def mutate(rng: random.Random, data: bytes, name: str) -> tuple[str, bytes]:
    """One malformed variant of a valid file: (family, bytes)."""
    fmt = name.split("-")[0]
    family = rng.choice(["truncate", "bitflip", "bitflip", "splat", "insert", "header-lie", "chunk-lie",
                         "duplicate", "zeros-tail"])
    b = bytearray(data)
    if family == "truncate":
        return family, bytes(b[:rng.randrange(0, len(b))])
    if family == "bitflip":
        for _ in range(rng.choice([1, 1, 2, 4, 16])):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return family, bytes(b)
    if family == "splat":
        i = rng.randrange(len(b))
        n = rng.randrange(1, 64)
        b[i:i + n] = bytes(rng.choice([0, 0xFF, rng.randrange(256)]) for _ in range(n))
        return family, bytes(b)
    if family == "insert":
        i = rng.randrange(len(b))
        return family, bytes(b[:i] + rng.randbytes(rng.randrange(1, 200)) + b[i:])
    if family == "header-lie":
        return family, _header_lie(rng, data, fmt)
    if family == "chunk-lie" and fmt == "png":
        chunks = png_chunks(data)
        off, _, _ = rng.choice(chunks)
        b[off:off + 4] = struct.pack(">I", rng.choice(LIES))
        return family, bytes(b)
    if family == "duplicate":
        i, j = sorted(rng.randrange(len(b)) for _ in range(2))
        return family, bytes(b[:j] + b[i:j] * rng.randrange(2, 20) + b[j:])
    # zeros-tail (and chunk-lie for formats without chunks): a plausible head, then nothing real
    cut = rng.randrange(1, len(b))
    return "zeros-tail", bytes(b[:cut]) + bytes(rng.randrange(1, 5000))


def special_files() -> Iterator[tuple[str, bytes]]:
    """Hand-made cases: bombs, extreme sizes and aspects, foreign formats."""
    yield "chunk-lie idat-4gb", png_with_size(1, 1, idat_length=0xF0000000)
    yield "bomb png-30000x30000", png_with_size(30000, 30000)
    yield "bomb png-65535x65535", png_with_size(65535, 65535)
    yield "bomb png-2500x2500-zeros", cv2.imencode(".png", np.zeros((2500, 2500), np.uint8))[1].tobytes()
    yield "bomb png-0x0", png_with_size(0, 0)
    yield "bomb jpeg-zeros-3000x3000", cv2.imencode(".jpg", np.zeros((3000, 3000), np.uint8))[1].tobytes()
    for w, h in ((1, 1), (2, 2), (3, 1), (48, 48)):
        yield f"tiny {w}x{h}", cv2.imencode(".png", np.full((h, w), 128, np.uint8))[1].tobytes()
    for kind, data in FOREIGN.items():
        yield f"foreign {kind}", data


def large_images(side: int = 6000) -> Iterator[tuple[str, bytes]]:
    """Valid images just under the default pixel limit (40 Mpx) and the default body limit (10 MB): the most
    memory an upload may legitimately take."""
    from PIL import Image

    ramp = np.tile(np.linspace(0, 255, side, dtype=np.float32), (side, 1)).astype(np.uint8)
    ramp[::64] = 0  # some structure, still small once compressed
    rgb = np.dstack([ramp, ramp.T, 255 - ramp])
    yield f"large jpeg-{side}x{side}", cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, 50])[1].tobytes()
    yield f"large png-{side}x{side}-rgb", cv2.imencode(".png", rgb)[1].tobytes()
    yield f"large png-{side}x{side}-grey", cv2.imencode(".png", ramp)[1].tobytes()
    buf = io.BytesIO()
    Image.fromarray(rgb[:4000, :4000]).save(buf, "WEBP", quality=30)
    yield "large webp-4000x4000", buf.getvalue()
    buf = io.BytesIO()
    Image.fromarray(ramp).convert("P").save(buf, "GIF")
    yield f"large gif-{side}x{side}", buf.getvalue()


def extreme_aspects() -> Iterator[tuple[str, bytes]]:
    """Valid images with one side far longer than the other (issue 19, item 1)."""
    for w, h in ((2000, 1), (1, 1300), (65535, 1), (1, 20000), (4000, 2), (3, 3000)):
        yield f"extreme-aspect {w}x{h}", cv2.imencode(".png", np.full((h, w), 200, np.uint8))[1].tobytes()


def image_inputs(seed: int, n: int, face: np.ndarray | None = None) -> Iterator[tuple[str, bytes]]:
    """special_files() once, then n mutations of the seed images, reproducibly from `seed`."""
    rng = random.Random(seed)
    seeds = seed_images(face)
    for name, data in seeds.items():
        yield f"valid {name}", data
    yield from special_files()
    names = sorted(seeds)
    for _ in range(n):
        name = rng.choice(names)
        family, data = mutate(rng, seeds[name], name)
        yield f"{family} {name}", data


# ---------------------------------------------------------------- requests around the bytes
CONTENT_TYPES = ("image/png", "image/jpeg", "application/octet-stream", "text/plain", "application/json",
                 "image/svg+xml", "application/postscript", "", "image/", "multipart/mixed", "image/png; charset=\xff")


def request_for(rng: random.Random, data: bytes) -> tuple[str, dict[str, bytes], bytes]:
    """(family, headers, body) for POST /api/v1/analyze: well-formed most of the time, broken some of the time."""
    family, headers, body = _request_for(rng, data)
    return family, {k: v.encode("latin-1") for k, v in headers.items()}, body


def _request_for(rng: random.Random, data: bytes) -> tuple[str, dict[str, str], bytes]:
    boundary = "fuzz" + "".join(rng.choice("abcdef0123456789") for _ in range(16))
    part_type = rng.choice(["image/png", "image/jpeg", "application/octet-stream"] * 4 + list(CONTENT_TYPES))

    def form(body: bytes, field: str = "file", filename: str = "x.png", ptype: str = part_type, end: bool = True) -> bytes:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        if ptype:
            head += f"Content-Type: {ptype}\r\n"
        return head.encode("utf-8", "surrogateescape") + b"\r\n" + body + (f"\r\n--{boundary}--\r\n".encode() if end else b"")

    mp = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    kind = rng.choices(["multipart", "raw", "raw-type", "no-boundary", "wrong-boundary", "unterminated",
                        "other-field", "two-files", "odd-filename", "garbage-multipart", "json"],
                       weights=[40, 15, 8, 3, 3, 4, 3, 3, 4, 4, 3])[0]
    if kind == "multipart":
        return kind, mp, form(data)
    if kind == "raw":
        return kind, {"Content-Type": rng.choice(["image/png", "image/jpeg", "image/webp", "application/octet-stream"])}, data
    if kind == "raw-type":
        return kind, {"Content-Type": rng.choice(CONTENT_TYPES)} if rng.random() < 0.9 else {}, data
    if kind == "no-boundary":
        return kind, {"Content-Type": "multipart/form-data"}, form(data)
    if kind == "wrong-boundary":
        return kind, {"Content-Type": "multipart/form-data; boundary=other"}, form(data)
    if kind == "unterminated":
        return kind, mp, form(data, end=False)[: rng.randrange(1, len(data) + 200)]
    if kind == "other-field":
        return kind, mp, form(data, field=rng.choice(["photo", "", "FILE", "file\x00"]))
    if kind == "two-files":
        return kind, mp, form(data)[: -4] + b"\r\n" + form(data)
    if kind == "odd-filename":
        name = rng.choice(["../../etc/passwd", "a" * 5000, "\udcff\udcfe.png", "x\r\nX-Injected: 1", "", "%00.png"])
        return kind, mp, form(data, filename=name)
    if kind == "garbage-multipart":
        return kind, mp, rng.randbytes(rng.randrange(0, 3000))
    return kind, {"Content-Type": "application/json"}, json.dumps({"file": data[:100].hex()}).encode()


# ---------------------------------------------------------------- WebSocket messages
def ws_messages(seed: int, n: int, face: np.ndarray | None = None) -> Iterator[tuple[str, str | bytes]]:
    """Binary frames (broken images) and text messages (not JSON, wrong JSON, deep nesting, floods of text)."""
    rng = random.Random(seed)
    seeds = seed_images(face)
    names = sorted(seeds)
    specials = list(special_files())
    texts = ["", "ping", "{", "null", "[]", "{}", '{"type": null}', '{"type": ["ping"]}', '{"type": "ping"}',
             '{"type": "ping", "extra": 1e999}', '"\\ud800"', "[" * 1000 + "]" * 1000, "{" * 5000,
             '{"a":' * 900 + "1" + "}" * 900, "x" * 100_000, "\u0000\u202e\ufffd", json.dumps({"type": "ping" * 300})]
    for _ in range(n):
        r = rng.random()
        if r < 0.55:
            name = rng.choice(names)
            family, data = mutate(rng, seeds[name], name)
            yield f"frame-{family}", data
        elif r < 0.65:
            label, data = rng.choice(specials)
            yield f"frame-{label.split()[0]}", data
        elif r < 0.75:
            yield "frame-random", rng.randbytes(rng.randrange(0, 2000))
        elif r < 0.9:
            yield "text-fixed", rng.choice(texts)
        else:
            yield "text-random", "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0x80, 0xD7FF)]))
                                         for _ in range(rng.randrange(0, 300)))
