"""ferkit.images.decode_image: properties over generated inputs (hypothesis) and the hostile files of issue 19."""
from __future__ import annotations

import io
import random
import resource
import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from ferkit.images import (IMAGE_FORMATS, ImageTooLargeError, UnreadableImageError, UnsupportedImageFormatError,
                           decode_image, image_format)
from tests.server.fuzz_inputs import FOREIGN, mutate, png_with_size, seed_images

FAST = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _decoded_or_refused(data: bytes, max_pixels: int = 1_000_000) -> np.ndarray | None:
    """The one contract: a (H, W, 3) uint8 image within the pixel limit, or UnreadableImageError; nothing else."""
    try:
        img = decode_image(data, "x", max_pixels)
    except UnreadableImageError as e:
        assert str(e).startswith("x: "), e  # the message names the input
        return None
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.shape[0] * img.shape[1] <= max_pixels and img.flags.writeable
    return img


@FAST
@given(st.binary(max_size=2000))
def test_any_bytes_decode_or_raise_unreadable(data):
    _decoded_or_refused(data)


SEEDS = seed_images()


@FAST
@given(st.sampled_from(sorted(SEEDS)), st.integers(0, 2**32 - 1))
def test_mutated_images_decode_or_raise_unreadable(name, seed):
    family, data = mutate(random.Random(seed), SEEDS[name], name)
    _decoded_or_refused(data)


@FAST
@given(st.sampled_from(["PNG", "BMP", "WebP", "GIF"]), st.integers(1, 64), st.integers(1, 64), st.integers(0, 2**32 - 1))
def test_lossless_formats_round_trip(fmt, w, h, seed):
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    if fmt == "GIF":  # a palette format: grey levels survive exactly
        rgb[:] = rgb[..., :1]
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt, **({"lossless": True} if fmt == "WebP" else {}))
    img = decode_image(buf.getvalue())
    assert image_format(buf.getvalue()) == fmt
    np.testing.assert_array_equal(img, rgb[..., ::-1])


@FAST
@given(st.integers(1, 70_000), st.integers(1, 70_000), st.integers(1, 10_000_000))
def test_pixel_limit_is_judged_from_the_header(w, h, limit):
    """Any PNG header size: over the limit -> ImageTooLargeError naming WxH; never a decode of that size."""
    data = png_with_size(w, h)
    if w * h > limit:
        with pytest.raises(ImageTooLargeError, match=f"{w}x{h}"):
            decode_image(data, "x", limit)
    else:
        _decoded_or_refused(data, limit)


@pytest.mark.parametrize("kind", sorted(FOREIGN))
def test_foreign_formats_are_refused_before_any_decoder(kind):
    data = FOREIGN[kind]
    if image_format(data) is None:
        with pytest.raises(UnsupportedImageFormatError) as e:
            decode_image(data, "upload")
        assert "not an image" in str(e.value) and e.value.kind in str(e.value)
        assert ", ".join(IMAGE_FORMATS[:-1]) in str(e.value)
    else:  # magic bytes of an accepted format with nothing behind them
        with pytest.raises(UnreadableImageError):
            decode_image(data, "upload")


def test_eps_never_reaches_ghostscript(tmp_path, monkeypatch):
    """Pillow's EPS plugin writes the file to a temporary file and runs `gs`; a fake `gs` on PATH would notice."""
    marker = tmp_path / "gs-ran"
    gs = tmp_path / "gs"
    gs.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    gs.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    for data in (FOREIGN["eps"], FOREIGN["eps-binary"]):
        with pytest.raises(UnsupportedImageFormatError, match="EPS"):
            decode_image(data, "figure.eps")
    assert not marker.exists()


def test_png_chunk_length_lie_is_refused_without_allocating_it():
    """The 69-byte PNG whose IDAT declares 0xF0000000 bytes (OpenCV's reader allocated 4 GB for it)."""
    lie = png_with_size(1, 1, idat_length=0xF0000000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(UnreadableImageError, match="IDAT.*4,026,531,840"):
        decode_image(lie, "lie.png")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # kB: no allocation of the lie


def test_truncated_and_corrupt_files_say_so():
    png = SEEDS["png-rgb"]
    with pytest.raises(UnreadableImageError, match="cut.png: corrupt or truncated PNG"):
        decode_image(png[: len(png) // 2], "cut.png")
    jpeg = SEEDS["jpeg"]
    with pytest.raises(UnreadableImageError, match="half.jpg: corrupt or truncated JPEG"):
        decode_image(jpeg[: len(jpeg) // 2], "half.jpg")
    bad_crc = bytearray(png)
    bad_crc[40] ^= 0xFF  # inside IDAT: the CRC no longer matches
    with pytest.raises(UnreadableImageError, match="broken.png"):
        decode_image(bytes(bad_crc), "broken.png")


def test_variants_decode_like_opencv():
    """Grey, alpha, palette, 16-bit, CMYK and progressive files give the pixels OpenCV's reader gives."""
    for name in ("png-grey", "png-rgb", "png-rgba", "png-16bit", "jpeg", "jpeg-progressive", "bmp"):
        ours = decode_image(SEEDS[name]).astype(int)
        theirs = cv2.imdecode(np.frombuffer(SEEDS[name], np.uint8), cv2.IMREAD_COLOR).astype(int)
        assert ours.shape == theirs.shape and np.abs(ours - theirs).max() <= 2, name
    animated = decode_image(SEEDS["gif-animated"])  # the first frame
    assert np.array_equal(animated, decode_image(SEEDS["gif"]))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WebP"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_opencv_does(fmt, orientation):
    rgb = np.random.default_rng(orientation).integers(0, 256, (20, 40, 3), dtype=np.uint8)
    rgb[:10, :20] = 255  # a corner to follow
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt, exif=exif.tobytes(), **({"lossless": True} if fmt == "WebP" else {}))
    ours = decode_image(buf.getvalue())
    theirs = ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue())))  # Pillow's reading of the same file
    np.testing.assert_array_equal(ours, np.asarray(theirs.convert("RGB"))[..., ::-1])
    if fmt == "JPEG":
        assert np.array_equal(ours, cv2.imdecode(np.frombuffer(buf.getvalue(), np.uint8), cv2.IMREAD_COLOR))


def test_corrupt_exif_is_ignored_silently(recwarn):
    jpeg = SEEDS["jpeg-exif-rotated"]
    i = jpeg.index(b"Exif\x00\x00")
    broken = jpeg[:i + 14] + b"\xff\xff\xff\x7f" + jpeg[i + 18:]  # the first IFD's offset points past the end
    assert decode_image(broken).shape == (96, 96, 3)
    assert len(recwarn) == 0


def test_jpeg_with_too_many_scans_is_refused():
    jpeg = SEEDS["jpeg-progressive"]
    sos = jpeg.index(b"\xff\xda")
    many = jpeg[:sos] + jpeg[sos:sos + 2] * 300 + jpeg[sos:]
    with pytest.raises(UnreadableImageError, match="scans"):
        decode_image(many, "scans.jpg")


def test_ihdr_is_checked_first():
    body = struct.pack(">IIBBBBB", 10, 10, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    with pytest.raises(UnreadableImageError, match="not IHDR"):
        decode_image(b"\x89PNG\r\n\x1a\n" + chunk, "x.png")


# ---------------------------------------------------------------- issue 26: files that cost far more than their size
def _cost_of(data: bytes, max_pixels: int = 40_000_000):
    """(what decode_image raised or returned, CPU seconds, peak RSS growth in MB) for one file, in this process."""
    import time

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.process_time()
    try:
        outcome = decode_image(data, "bomb", max_pixels)
    except UnreadableImageError as e:
        outcome = e
    return outcome, time.process_time() - t0, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024


@pytest.mark.parametrize("label, make, error, words", [
    ("webp-animation-canvas", lambda B: B["webp-animation-canvas"](), ImageTooLargeError, "8000x5000"),
    ("webp-many-frames", lambda B: B["webp-animation-canvas"](frames=1500, w=64, h=64), UnreadableImageError, "frames"),
    ("webp-vp8l-patched", lambda B: B["webp-vp8l-patched"](), ImageTooLargeError, "16383x2441"),
    ("png-truncated-tall", lambda B: B["png-truncated-tall"](), UnreadableImageError, "truncated PNG"),
    ("png-iccp-bomb", lambda B: B["png-iccp-bomb"](chunks=40), UnreadableImageError, "inflates to more than"),
    ("jpeg-junk-then-exif", lambda B: B["jpeg-junk-then-exif"](segments=5000), UnreadableImageError, "segments"),
    ("jpeg-fill-bytes", lambda B: B["jpeg-fill-bytes"](n=100_000), UnreadableImageError, "fill or junk"),
    ("jpeg-empty-app-segments", lambda B: B["jpeg-empty-app-segments"](n=5000), UnreadableImageError, "segments"),
    ("jpeg-many-scans", lambda B: B["jpeg-many-scans"](), UnreadableImageError, "250 scans"),
    ("jpeg-progressive-cmyk", lambda B: B["jpeg-progressive-cmyk"](), ImageTooLargeError, "coefficients"),
    ("gif-comment-blocks", lambda B: B["gif-comment-blocks"](blocks=10_000), UnreadableImageError, "extension blocks"),
    ("bmp-rle8-line-ends", lambda B: B["bmp-rle8-line-ends"](), ImageTooLargeError, "RLE"),
])
def test_cost_bombs_are_refused_from_their_headers(label, make, error, words):
    """Each was decoded (some answered 200) at up to 15 s of CPU or +630 MB before the header checks (issue 26)."""
    from tests.server.cost_inputs import BOMBS

    outcome, cpu, grew = _cost_of(make(BOMBS))
    assert isinstance(outcome, error) and words in str(outcome), outcome
    assert cpu < 0.2 and grew < 20, (cpu, grew)


def test_truncated_png_is_an_error_not_a_grey_image():
    png = png_with_size(64, 64)
    cut = png[:png.index(b"IEND") - 4]
    with pytest.raises(UnreadableImageError, match="truncated PNG"):
        decode_image(cut, "cut.png")
    tall = struct.pack(">IIBBBBB", 200, 200_000, 8, 0, 0, 0, 0)  # IEND present, far too little IDAT
    chunk = lambda k, d: struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))  # noqa: E731
    lie = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", tall) + chunk(b"IDAT", zlib.compress(bytes(201))) + chunk(b"IEND", b"")
    with pytest.raises(UnreadableImageError, match="cannot hold"):
        decode_image(lie, "lie.png")


def test_legitimate_metadata_and_exif_still_decode():
    """The caps leave real files alone: an ICC profile and text in a PNG, Exif (orientation applied) in a JPEG."""
    from PIL import ImageCms, PngImagePlugin

    img = Image.fromarray(np.arange(48 * 64 * 3, dtype=np.uint8).reshape(48, 64, 3))
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "x" * 100_000, zip=True)
    info.add_itxt("note", "y" * 50_000, zip=True)
    buf = io.BytesIO()
    img.save(buf, "PNG", pnginfo=info, icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    assert decode_image(buf.getvalue(), "meta.png").shape == (48, 64, 3)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes())
    jpeg = buf.getvalue()
    app0_end = 4 + struct.unpack(">H", jpeg[4:6])[0]
    junk_before_exif = jpeg[:app0_end] + b"\x00" + jpeg[app0_end:]  # Pillow skips junk; so does the Exif stripper
    for data in (jpeg, junk_before_exif):
        assert decode_image(data, "rotated.jpg").shape == (64, 48, 3)
