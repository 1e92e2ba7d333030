"""Every file a user brings (issue 28, items 1-4): TIFF in the library, CLI and batch (the server keeps its
allow-list); big photos read reduced by the CLI; a folder's other files named; usage errors with exit 2; the data
folder itself; a label on a face that fills the image; `ferkit video` naming the [plot] extra. The astronaut photo in
examples/ is the real face throughout."""
from __future__ import annotations

import csv
import json
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ferkit.images import (ImageTooLargeError, UnreadableImageError, UnsupportedImageFormatError, decode_image,
                           load_image)

ASTRONAUT = Path(__file__).resolve().parents[1] / "examples" / "astronaut.png"


def ferkit(*args, **env):
    import os

    return subprocess.run([sys.executable, "-m", "ferkit", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return cv2.imread(str(ASTRONAUT))


def tiff_variants(image: np.ndarray) -> dict[str, np.ndarray]:
    """grey, RGB and RGBA, 8 and 16 bits: what OpenCV writes (BGR(A) order in memory)."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
    eight = {"grey8": grey, "rgb8": image, "rgba8": bgra}
    return {**eight, **{k[:-1] + "16": v.astype(np.uint16) * 257 for k, v in eight.items()}}


# ---------------------------------------------------------------- 1. TIFF
def test_tiff_first_page_8_and_16_bit_grey_rgb_rgba(astronaut, tmp_path):
    for name, pixels in tiff_variants(astronaut).items():
        path = tmp_path / f"{name}.tif"
        assert cv2.imwrite(str(path), pixels)
        want = (pixels >> 8 if pixels.dtype == np.uint16 else pixels).astype(np.uint8)
        want = cv2.cvtColor(want, cv2.COLOR_GRAY2BGR) if want.ndim == 2 else want[:, :, :3]
        assert np.array_equal(load_image(path), want), name
        assert np.array_equal(load_image(path.read_bytes()), want), name
    # two pages: the first is read
    ok, two = cv2.imencodemulti(".tiff", [astronaut, np.zeros_like(astronaut)])
    assert ok and np.array_equal(load_image(two.tobytes()), astronaut)


def test_the_server_keeps_its_allow_list(astronaut):
    ok, tiff = cv2.imencode(".tif", astronaut)
    with pytest.raises(UnsupportedImageFormatError, match="a TIFF image"):
        decode_image(tiff.tobytes(), "upload")   # decode_image's default formats: the server's


def ifd_tiff(entries: list[tuple[int, int, int, int]], order: str = "<", pixels: bytes = b"\x80" * 16) -> bytes:
    """A one-page TIFF: header, pixel bytes, then a directory of (tag, type, count, value-or-offset) entries."""
    head = (b"II*\x00" if order == "<" else b"MM\x00*")
    ifd_at = 8 + len(pixels)
    def entry(tag, kind, count, value):  # a single SHORT sits in the first 2 of the 4 value bytes
        return struct.pack(order + "HHIHH", tag, kind, count, value, 0) if kind == 3 and count == 1 else \
            struct.pack(order + "HHII", tag, kind, count, value)
    body = struct.pack(order + "H", len(entries)) + b"".join(entry(*e) for e in entries)
    return head + struct.pack(order + "I", ifd_at) + pixels + body + b"\x00" * 4


def test_tiff_tags_and_sizes_are_checked_before_decoding():
    good = [(256, 4, 1, 4), (257, 4, 1, 4), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1), (273, 4, 1, 8),
            (277, 3, 1, 1), (278, 4, 1, 4), (279, 4, 1, 16)]
    assert load_image(ifd_tiff(good)).shape == (4, 4, 3)
    assert load_image(ifd_tiff(good, ">")).shape == (4, 4, 3)
    cases = [
        ([(256, 4, 1, 100_000), (257, 4, 1, 100_000)] + good[2:], ImageTooLargeError, "over the limit"),
        (good[:5] + [(273, 4, 1, 10_000_000)] + good[6:], UnreadableImageError, "past the end"),
        (good[:8] + [(279, 4, 1, 1 << 30)], UnreadableImageError, "past the end"),
        (good + [(270, 2, 5000, 60)], UnreadableImageError, "tag 270 declares 5,000 bytes"),
        (good[:2] + [(258, 3, 1, 32)] + good[3:], UnreadableImageError, "32 bits per pixel"),
    ]
    for entries, error, message in cases:
        with pytest.raises(error, match=message):
            load_image(ifd_tiff(entries))
    with pytest.raises(UnreadableImageError, match="5,000 tags in the first page's directory"):
        load_image(b"II*\x00\x08\x00\x00\x00" + struct.pack("<H", 5000) + b"\x00" * 40)
    with pytest.raises(UnreadableImageError, match="the directory declares 900 tags but only 3 fit"):
        load_image(b"II*\x00\x08\x00\x00\x00" + struct.pack("<H", 900) + b"\x00" * 40)
    with pytest.raises(UnreadableImageError, match="corrupt or truncated TIFF"):
        load_image(b"II*\x00\xff\xff\x00\x00")


def test_analyze_reads_tiff_files_folders_and_its_own_annotated_tiff(astronaut, tmp_path):
    folder = tmp_path / "jaffe"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.tiff"), astronaut)
    cv2.imwrite(str(folder / "b.tif"), cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257)
    r = ferkit("analyze", folder / "a.tiff", "--annotate", tmp_path / "out.tif")
    assert r.returncode == 0 and "1 face" in r.stdout, r.stderr
    r = ferkit("analyze", folder, tmp_path / "out.tif", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [(Path(o["file"]).name, o["status"], len(o["faces"])) for o in rows] == \
        [("a.tiff", "ok", 1), ("b.tif", "ok", 1), ("out.tif", "ok", 1)]


def test_batch_reads_tiff(astronaut, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.tif"), astronaut)
    r = ferkit("batch", folder, "--out", tmp_path / "rows.jsonl", "--workers", "1", "--no-progress")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert rows and all(row.get("error") in (None, "") for row in rows), rows
    assert any(row.get("emotion") for row in rows), rows


# ---------------------------------------------------------------- 2. big photos
def test_a_big_photo_is_read_reduced_and_boxes_come_in_its_own_pixels(astronaut, tmp_path):
    side = 6500   # 42 MP: over the 40 MP limit, read at half size
    big = cv2.resize(astronaut, (side, side), interpolation=cv2.INTER_LINEAR)
    cv2.imwrite(str(tmp_path / "huge.png"), big, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    del big
    cv2.imwrite(str(tmp_path / "odd.jpg"), cv2.resize(astronaut, (9001, 5001)), [cv2.IMWRITE_JPEG_QUALITY, 80])
    from ferkit.images import read_photo

    image, k = read_photo(tmp_path / "odd.jpg")   # 45 MP, odd sides: half size through DCT scaling, not a quarter
    assert k == 2 and abs(image.shape[0] - 2500.5) < 1 and abs(image.shape[1] - 4500.5) < 1, image.shape
    with pytest.raises(ImageTooLargeError, match=r"over the limit of 40,000,000; resize it \(ferkit analyze reads"):
        load_image(tmp_path / "huge.png")                         # the library's (and the server's) limit stays

    small = json.loads(ferkit("analyze", ASTRONAUT, "--json").stdout)[0]["faces"][0]["box"]
    r = ferkit("analyze", tmp_path / "huge.png", "--json")
    assert r.returncode == 0, r.stderr
    box = json.loads(r.stdout)[0]["faces"][0]["box"]
    scale = side / 512
    for key in "xywh":   # the box of the 512-px photo, scaled to the file's pixels (within detection's jitter)
        assert abs(box[key] - small[key] * scale) < 0.06 * small["w"] * scale, (box, small)
    rows = tmp_path / "rows.csv"  # ferkit batch reads it reduced too, its rows in the file's pixels
    r = ferkit("batch", tmp_path / "odd.jpg", "--out", rows, "--no-progress", "--workers", "1")
    assert r.returncode == 0, r.stderr
    (row,) = list(csv.DictReader(rows.open()))
    assert row["status"] == "ok" and abs(int(row["x"]) - small["x"] * 9001 / 512) < 0.1 * 9001 / 512 * small["w"], row
    r = ferkit("analyze", tmp_path / "odd.jpg", "--json", "--features", "mesh")  # the mesh comes in them too
    face = json.loads(r.stdout)[0]["faces"][0]
    b, nose = face["box"], face["mesh"][1]
    assert b["x"] < nose[0] < b["x"] + b["w"] and b["y"] < nose[1] < b["y"] + b["h"], (b, nose)


# ---------------------------------------------------------------- 3. files a folder holds that are not images
def test_a_folders_other_files_are_named_not_dropped(astronaut, tmp_path):
    cv2.imwrite(str(tmp_path / "face.png"), astronaut)
    (tmp_path / "notes.txt").write_text("not a photo")
    r = ferkit("analyze", tmp_path, "--json")
    assert r.returncode == 0, r.stderr
    assert f"{tmp_path / 'notes.txt'}: skipped" in r.stderr
    rows = {Path(o["file"]).name: o for o in json.loads(r.stdout)}
    assert rows["face.png"]["status"] == "ok" and rows["notes.txt"]["status"] == "skipped"
    assert "not an image" in rows["notes.txt"]["reason"]


# ---------------------------------------------------------------- 4. usage, data folder, labels, hints
@pytest.mark.parametrize("args, message", [
    (["analyze", ASTRONAUT, "--detect-side", "100000"], "detect_side must be at most 4096 pixels, got 100000"),
    (["batch", ASTRONAUT, "--out", "never.csv", "--detect-side", "100000"], "at most 4096 pixels"),
    (["serve", "--detect-side", "100000"], "at most 4096 pixels"),
    (["analyze", ASTRONAUT, "--model", "nope"], "unknown model 'nope'"),
    (["video", "x.mp4", "--model", "nope"], "unknown model 'nope'"),
    (["analyze", ASTRONAUT, "--detector", "nope"], "invalid choice: 'nope'"),
])
def test_bad_usage_exits_2(args, message, tmp_path):
    r = subprocess.run([sys.executable, "-m", "ferkit", *map(str, args)], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_bad_detect_side_in_the_library():
    from ferkit import load_recognizer

    with pytest.raises(ValueError, match="at most 4096 pixels, got 100000"):
        load_recognizer(detect_side=100_000)


def test_data_finds_the_csv_in_the_data_folder_itself(tmp_path):
    rows = ["emotion,pixels,Usage"] + [f"{i % 7},{' '.join(['9'] * 2304)},{u}"
                                      for i, u in enumerate(["Training"] * 3 + ["PublicTest", "PrivateTest"])]
    (tmp_path / "fer2013.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "README.md").write_text("FER-2013")
    r = ferkit("data", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Training" in r.stdout and "5" in r.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    r = ferkit("data", empty)
    assert r.returncode == 1 and "expected sub-folders train/ and test/" in r.stderr


def test_a_face_filling_the_image_keeps_its_label():
    from ferkit import EMOTIONS
    from ferkit.annotate import draw_faces
    from ferkit.recognizer import Face

    image = np.full((79, 83, 3), 128, np.uint8)
    face = Face(box=(1, 0, 81, 79), probabilities={e: 1 / 7 for e in EMOTIONS}, emotion=EMOTIONS[3],
                detector_score=0.9)
    out = draw_faces(image, [face])
    label = np.all(out == 0, axis=2)               # the label's black background
    rows, cols = np.where(label.any(1))[0], np.where(label.any(0))[0]
    assert label.sum() > 300 and rows.max() - rows.min() >= 9 and cols.max() < 83
    white = np.all(out > 200, axis=2)               # and its (anti-aliased) text
    assert white[rows.min():rows.max() + 1].sum() > 30


def test_video_names_the_plot_extra(tmp_path):
    """A base install (no matplotlib) is run by hiding it: an import of a module mapped to None fails."""
    frames = [cv2.resize(cv2.imread(str(ASTRONAUT)), (320, 320))] * 6
    writer = cv2.VideoWriter(str(tmp_path / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 6, (320, 320))
    for f in frames:
        writer.write(f)
    writer.release()
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from ferkit.cli import main\nmain(sys.argv[1:])")
    r = subprocess.run([sys.executable, "-c", code, "video", str(tmp_path / "clip.mp4"), "--no-progress",
                        "--no-annotate", "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert r.returncode in (0, 3), r.stderr
    assert 'pip install "ferkit[plot]"' in r.stderr and "emotions.png" in r.stderr


def test_the_parquet_hint_names_the_parquet_extra():
    """Without pyarrow, a .parquet --out names the extra that brings it: [parquet], not [ray]."""
    code = ("import sys; sys.modules['pyarrow'] = None\n"
            "from pathlib import Path\nfrom ferkit.records import output_format\n"
            "try:\n    output_format(Path('r.parquet'))\nexcept ValueError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert 'pip install "ferkit[parquet]"' in r.stdout and "[ray]" not in r.stdout, r.stdout + r.stderr
