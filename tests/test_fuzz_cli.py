"""Fuzzing `ferkit analyze` (issue #19): one run of the real command over seeded broken image files (cuts, bit flips,
header lies, extreme sizes and aspects, other formats under image names) with faceless controls among them. Every
file gets its own entry in the JSON array, in order; failures are one line each on stderr naming the file; no
traceback; the exit status follows the entries; memory stays bounded."""
from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

MAX_RSS_MB = 1500  # the whole run, model included; a header that makes a decoder allocate gigabytes fails here
# `ferkit ARGS...` as `python -m ferkit` runs it, writing its own peak RSS (kB) to $RSS_OUT on the way out. VmHWM,
# not getrusage's ru_maxrss: Linux carries ru_maxrss across exec, so a child of a big pytest process would report
# the parent's size (2.2 GB late in a full run) rather than its own.
RUN_RECORDING_PEAK_RSS = ("import atexit, os, re, sys; atexit.register(lambda: open(os.environ['RSS_OUT'], 'w')"
                          ".write(re.search(r'VmHWM:\\s*(\\d+)', open('/proc/self/status').read()).group(1))); "
                          "from ferkit.cli import main; main(sys.argv[1:])")


def encoded(fmt: str, image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt)
    return buf.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int) -> bytes:
    """A valid-looking PNG whose header declares width x height grey pixels, with one tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + png_chunk(b"IEND", b""))


def broken_images(d: Path, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    scene = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    originals = {f"{fmt.lower()}.{ext}": encoded(fmt, scene) for fmt, ext in
                 (("PNG", "png"), ("JPEG", "jpg"), ("GIF", "gif"), ("BMP", "bmp"), ("WEBP", "webp"))}
    files: dict[str, bytes] = {}
    for name, data in originals.items():
        for k in range(3):
            files[f"cut{k}-{name}"] = data[:int(rng.integers(0, len(data)))]
            flipped = bytearray(data)
            for pos in rng.integers(0, len(data), int(rng.integers(1, 6))):
                flipped[pos] ^= 1 << int(rng.integers(0, 8))
            files[f"flip{k}-{name}"] = bytes(flipped)
    grey = lambda h, w: encoded("PNG", np.full((h, w), 127, np.uint8))  # noqa: E731
    files.update({
        "wide-2000x1.png": grey(1, 2000), "tall-1x1300.png": grey(1300, 1), "dot-1x1.png": grey(1, 1),
        "wide-65535x1.png": grey(1, 65535), "strip-3000x2.png": grey(2, 3000),
        "lie-30000x30000.png": png_declaring(30000, 30000), "lie-0x0.png": png_declaring(0, 0),
        "lie-65535x65535.png": png_declaring(65535, 65535),
        "empty.jpg": b"", "text.png": b"hello, not an image\n", "pdf.jpg": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
        "eps.png": b"%!PS-Adobe-3.0 EPSF-3.0\n", "svg.png": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        "zip.gif": b"PK\x03\x04" + bytes(40), "tiff.jpg": b"II*\x00" + bytes(40),
    })
    paths = []
    for name, data in files.items():
        (d / name).write_bytes(data)
        paths.append(d / name)
    return paths


def control(d: Path, name: str) -> Path:
    path = d / name
    cv2.imwrite(str(path), np.full((120, 160, 3), 127, np.uint8))  # readable, faceless
    return path


@pytest.mark.parametrize("flags", [[], ["--no-detect"]], ids=["default-detector", "no-detect"])
def test_analyze_survives_broken_images_one_entry_each(tmp_path, flags):
    broken = broken_images(tmp_path)
    inputs = [control(tmp_path, "first.png"), *broken[:len(broken) // 2], control(tmp_path, "middle.jpg"),
              *broken[len(broken) // 2:], tmp_path / "missing.png", control(tmp_path, "last.png")]
    rss = tmp_path / "peak-rss-kb"
    r = subprocess.run([sys.executable, "-c", RUN_RECORDING_PEAK_RSS, "analyze", "--json", *flags, *map(str, inputs)],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "RSS_OUT": str(rss)})
    peak_mb = int(rss.read_text()) / 1024
    assert "Traceback" not in r.stderr, r.stderr
    out = json.loads(r.stdout)
    assert [o["file"] for o in out] == list(map(str, inputs))
    errors = [o for o in out if o["status"] == "error"]
    for o in out:
        assert o["status"] in ("ok", "no_face", "error"), o
        assert ("error" in o) == (o["status"] == "error") and ("faces" in o) == (o["status"] != "error"), o
        assert o["status"] != "no_face" or o["faces"] == []
    for o in errors:
        assert o["error"].startswith(o["file"]), o  # names its file ...
        assert f"ferkit: {o['error']}\n" in r.stderr  # ... and is said on stderr, one line
    hints = [line for line in r.stderr.splitlines() if "no face found in" in line]  # one closing hint, with faceless images
    assert len(hints) == any(o["status"] == "no_face" for o in out) * ("--no-detect" not in flags), r.stderr
    assert len(r.stderr.splitlines()) == len(errors) + len(hints), r.stderr
    assert {o["file"]: o["status"] for o in out if Path(o["file"]).stem in ("first", "middle", "last")} == {
        str(p): "ok" if "--no-detect" in flags else "no_face" for p in (inputs[0], inputs[len(broken) // 2 + 1], inputs[-1])}
    assert out[-2]["status"] == "error" and "no such file" in out[-2]["error"]
    assert any(o["file"].endswith("lie-30000x30000.png") and o["status"] == "error" for o in out)
    assert r.returncode == 1  # some files failed; the others were analysed
    assert peak_mb < MAX_RSS_MB, f"peak RSS {peak_mb:.0f} MB"
