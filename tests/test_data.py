import gzip
import io
import lzma
import re

import cv2
import numpy as np
import pytest

from ferkit.data import (DataError, FaceDataset, ferplus_targets, load_dataset, read_fer2013_csv, read_ferplus_votes,
                         read_image_folders, with_ferplus)
from ferkit.labels import EMOTIONS


def write_csv(path, rows, header="emotion,pixels,Usage"):
    text = header + "\n" + "\n".join(rows) + "\n"
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def row(label=3, usage="Training", n=2304, value=7):
    return f'{label},"{" ".join([str(value)] * n)}",{usage}'


@pytest.mark.parametrize("name", ["fer.csv", "fer.csv.gz"])
def test_csv_plain_and_gzip(tmp_path, name):
    path = write_csv(tmp_path / name, [row(0), row(6, "PublicTest"), row(3, "PrivateTest", value=255)])
    ds = load_dataset(path)
    assert ds.pixels.shape == (3, 48, 48) and ds.pixels.dtype == np.uint8
    assert ds.labels.tolist() == [0, 6, 3]
    assert ds.usage.tolist() == ["Training", "PublicTest", "PrivateTest"]
    assert ds.pixels[2].max() == 255
    assert ds.counts()["Training"]["angry"] == 1
    assert "PrivateTest" in ds.summary()


@pytest.mark.parametrize("rows, header, message", [
    ([row()], "label,pixels,Usage", "expected columns emotion,pixels,Usage"),
    ([row(), row(n=2300)], "emotion,pixels,Usage", "row 3: 2300 pixel values, expected 2304"),
    ([row(label=7)], "emotion,pixels,Usage", "row 2: unknown label '7'"),
    ([row(label="x")], "emotion,pixels,Usage", "row 2: unknown label 'x'"),
    ([row(usage="Validation")], "emotion,pixels,Usage", "row 2: unknown Usage 'Validation'"),
    ([row(value=300)], "emotion,pixels,Usage", "row 2: pixel 1 is '300'; expected 2304 space-separated integers 0-255"),
    ([row(), row(value=99999999999)], "emotion,pixels,Usage", "row 3: pixel 1 is '99999999999'; expected 2304"),
    ([row(value="abc")], "emotion,pixels,Usage", "row 2: pixel 1 is 'abc'; expected 2304"),
    ([row(value="1.5")], "emotion,pixels,Usage", "row 2: pixel 1 is '1.5'; expected 2304"),
    ([row(value="0x10")], "emotion,pixels,Usage", "row 2: pixel 1 is '0x10'; expected 2304"),
    ([row(value="1\x00")], "emotion,pixels,Usage", "row 2: pixel 1 is '1\\x00'; expected 2304"),
    ([row(value="-1")], "emotion,pixels,Usage", "row 2: pixel 1 is '-1'; expected 2304"),
    ([row(value="1_0")], "emotion,pixels,Usage", "row 2: pixel 1 is '1_0'; expected 2304"),   # int() takes it
    ([row(value="\u0663")], "emotion,pixels,Usage", "row 2: pixel 1 is '\u0663'; expected 2304"),  # an Arabic 3
    ([row(label="\u00b2")], "emotion,pixels,Usage", "row 2: unknown label '\u00b2' (expected 0-6"),  # superscript 2
    ([row(label="+3")], "emotion,pixels,Usage", "row 2: unknown label '+3'"),
    ([row(), "3,1 2 3"], "emotion,pixels,Usage", "row 3: expected 3 fields, found 2"),
    ([], "emotion,pixels,Usage", "no data rows"),
])
def test_csv_errors_name_file_and_row(tmp_path, rows, header, message):
    path = write_csv(tmp_path / "bad.csv", rows, header)
    with pytest.raises(DataError) as e:
        read_fer2013_csv(path)
    assert message in str(e.value) and "bad.csv" in str(e.value)


@pytest.mark.parametrize("name", ["excel.csv", "excel.csv.gz"])
def test_a_byte_order_mark_before_the_header_is_accepted(tmp_path, name):
    """Excel writes UTF-8 CSV with a byte-order mark; it is not part of the first column's name."""
    text = "\ufeffemotion,pixels,Usage\n" + row(4) + "\n"
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    assert read_fer2013_csv(path).labels.tolist() == [4]


def test_damaged_gzip_names_the_file_and_the_row_being_read(tmp_path):
    good = gzip.compress(("emotion,pixels,Usage\n" + "\n".join([row()] * 50) + "\n").encode(), mtime=0)
    for name, offset in [("deflate.csv.gz", 20), ("crc.csv.gz", len(good) // 2)]:
        flipped = bytearray(good)
        flipped[offset] ^= 0xFF   # at 20: the deflate stream's code table; halfway: data that decodes, wrongly
        (tmp_path / name).write_bytes(bytes(flipped))
    (tmp_path / "cut.csv.gz").write_bytes(good[:len(good) // 2])
    (tmp_path / "text.csv.gz").write_text("emotion,pixels,Usage\n")   # not gzip at all
    for name, reason in [("deflate.csv.gz", "corrupt compressed data"), ("crc.csv.gz", "not a valid gzip file"),
                         ("cut.csv.gz", "truncated"), ("text.csv.gz", "not a valid gzip file")]:
        with pytest.raises(DataError) as e:
            read_fer2013_csv(tmp_path / name)
        assert re.search(rf"{name}, row \d+: cannot read \(.*{reason}.*\); expected a UTF-8 CSV with columns "
                         r"emotion,pixels,Usage, gzip-compressed", str(e.value)), str(e.value)


def test_bytes_that_are_not_utf8_name_the_file(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"emotion,pixels,Usage\n" + row().encode() + b"\n3,\xff\xfe,Training\n")
    with pytest.raises(DataError, match=r"latin1.csv, row \d+: cannot read \(bytes that are not UTF-8"):
        read_fer2013_csv(path)


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def compact(n=4, **changes) -> dict:
    arrays = {"pixels": np.arange(n * 2304, dtype=np.uint8).reshape(n, 48, 48), "emotion": np.arange(n, dtype=np.uint8) % 7,
              "usage": np.arange(n, dtype=np.uint8) % 3, "ferplus_votes": np.full((n, 10), 1, np.uint8)}
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


@pytest.mark.parametrize("name", ["c.npz", "c.npz.xz"])
def test_compact_npz_reads(tmp_path, name):
    raw = npz_bytes(**compact())
    (tmp_path / name).write_bytes(lzma.compress(raw) if name.endswith(".xz") else raw)
    ds = load_dataset(tmp_path / name)
    assert ds.pixels.shape == (4, 48, 48) and ds.pixels.dtype == np.uint8
    assert ds.labels.tolist() == [0, 1, 2, 3] and ds.usage.tolist() == ["Training", "PublicTest", "PrivateTest", "Training"]
    assert ds.ferplus_votes.shape == (4, 10)


@pytest.mark.parametrize("arrays, message", [
    (compact(usage=np.array([0, 1, 9, 0], np.uint8)), "row 2 (from 0) of 'usage' is 9; expected 0 Training, 1 PublicTest"),
    (compact(emotion=np.array([0, 99, 0, 0], np.uint8)), "row 1 (from 0) of 'emotion' is 99; expected 0-6 (angry"),
    (compact(n=3, pixels=np.zeros((3, 5), np.uint8), emotion=np.array([99, 0, 0], np.uint8)),
     "array 'pixels' has shape (3, 5); expected (3, 48, 48)"),
    (compact(pixels=np.full((4, 48, 48), 256, np.int32)), "row 0 (from 0) of 'pixels' is a value 256; expected grey values"),
    (compact(emotion=np.array([0.5, 1, 2, 3])), "array 'emotion' holds float64 values; expected integers"),
    (compact(ferplus_votes=np.zeros((4, 8), np.uint8)), "array 'ferplus_votes' has shape (4, 8); expected (4, 10)"),
    (compact(ferplus_votes=np.full((4, 10), -1, np.int8)), "row 0 (from 0) of 'ferplus_votes' is [-1"),
    (compact(usage=np.zeros(5, np.uint8)), "array 'usage' has shape (5,); expected (4,)"),
    (compact(usage=None), "missing array 'usage'; expected the compact FER-2013 .npz"),
])
def test_compact_npz_contents_are_checked(tmp_path, arrays, message):
    (tmp_path / "bad.npz").write_bytes(npz_bytes(**arrays))
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path / "bad.npz")
    assert str(e.value).startswith(str(tmp_path / "bad.npz") + ": ") and message in str(e.value), str(e.value)


def test_damaged_compact_npz_names_the_file(tmp_path):
    raw = npz_bytes(**compact())
    cases = {"cut.npz": raw[:300], "cut.npz.xz": lzma.compress(raw)[:200], "text.npz": b"hello",
             "plain.npz.xz": raw}  # an .npz that was never xz-compressed
    buf = io.BytesIO()
    np.save(buf, np.zeros(3))
    cases["single.npz"] = buf.getvalue()  # one .npy array, not an archive
    buf = io.BytesIO()
    np.savez(buf, pixels=np.array([{"a": 1}], dtype=object), emotion=np.zeros(1), usage=np.zeros(1))
    cases["objects.npz"] = buf.getvalue()
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError) as e:
            load_dataset(tmp_path / name)
        assert str(e.value).startswith(f"{tmp_path / name}: ") and "expected" in str(e.value), str(e.value)


def test_an_npz_header_declaring_more_than_it_holds_is_refused_before_allocating(tmp_path):
    """A flipped bit in an array's shape must not make the reader allocate terabytes."""
    buf = io.BytesIO()
    np.savez(buf, **compact())
    raw = buf.getvalue()
    assert raw.count(b"'shape': (4, 48, 48)") == 1
    (tmp_path / "lie.npz").write_bytes(raw.replace(b"'shape': (4, 48, 48)", b"'shape': (9, 48, 48)"))
    with pytest.raises(DataError, match=r"lie.npz: array 'pixels' declares shape \(9, 48, 48\) \(20,736 bytes\) but holds "
                                        r"9,344 bytes: truncated or corrupt"):
        load_dataset(tmp_path / "lie.npz")


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_dataset(tmp_path / "nope.csv")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(DataError, match="unsupported"):
        load_dataset(tmp_path / "x.txt")


@pytest.mark.parametrize("layout", ["train/test", "images/train|validation"])
def test_image_folders(tmp_path, layout):
    splits = ("train", "test") if layout == "train/test" else ("images/train", "images/validation")
    for split in splits:
        for emo in ("happy", "Sad"):
            d = tmp_path / split / emo
            d.mkdir(parents=True)
            cv2.imwrite(str(d / "a.jpg"), np.full((64, 64), 90, np.uint8))  # resized to 48x48 on read
            cv2.imwrite(str(d / "b.png"), np.full((48, 48, 3), 30, np.uint8))
    ds = load_dataset(tmp_path)
    assert len(ds) == 8 and ds.pixels.shape[1:] == (48, 48)
    assert set(ds.usage) == {"Training", "PrivateTest" if layout == "train/test" else "PublicTest"}
    assert set(ds.labels.tolist()) == {EMOTIONS.index("happy"), EMOTIONS.index("sad")}


def test_image_folder_errors(tmp_path):
    (tmp_path / "train" / "grumpy").mkdir(parents=True)
    with pytest.raises(DataError, match="unknown emotion folder 'grumpy'"):
        read_image_folders(tmp_path)
    (tmp_path / "train" / "grumpy").rmdir()
    (tmp_path / "train" / "happy").mkdir()
    (tmp_path / "train" / "happy" / "x.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="x.jpg: unreadable image"):
        read_image_folders(tmp_path)
    with pytest.raises(DataError, match="expected sub-folders"):
        read_image_folders(tmp_path / "train" / "happy")


def test_ferplus_majority_and_soft():
    votes = np.array([
        [8, 1, 1, 0, 0, 0, 0, 0, 0, 0],   # neutral majority; single votes dropped
        [4, 4, 2, 0, 0, 0, 0, 0, 0, 0],   # no majority: dropped in majority mode, kept soft
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],  # not a face
        [0, 0, 0, 0, 0, 0, 0, 0, 7, 3],   # unknown
        [0, 0, 0, 0, 0, 0, 0, 6, 2, 2],   # contempt
    ])
    keep, hard, soft = ferplus_targets(votes, "majority")
    assert keep.tolist() == [True, False, False, False, True]
    assert hard[0] == 0 and hard[4] == 7
    keep_s, _, soft_s = ferplus_targets(votes, "soft")
    assert keep_s.tolist() == [True, True, False, False, True]
    assert np.allclose(soft_s[1][:3], [0.4, 0.4, 0.2]) and np.allclose(soft_s[keep_s].sum(1), 1)
    with pytest.raises(ValueError, match="valid: majority, soft"):
        ferplus_targets(votes, "vote")


def test_ferplus_file_errors(tmp_path):
    p = tmp_path / "new.csv"
    p.write_text("Usage,Image name,neutral\nTraining,a.png,3\n")
    with pytest.raises(DataError, match="missing FER\\+ columns"):
        read_ferplus_votes(p)
    cols = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
    p.write_text(cols + "\nTraining,a.png,1,2,3,4,x,0,0,0,0,0\n")
    with pytest.raises(DataError, match="row 2: vote counts must be integers"):
        read_ferplus_votes(p)
    p.write_text(cols + "\nTraining,a.png,10,0,0,0,0,0,0,0,0,0\n")
    with pytest.raises(DataError, match="must be row-aligned"):
        read_ferplus_votes(p, n_rows=2)


FERPLUS_HEADER = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"


@pytest.mark.parametrize("body, message", [
    ("Training,a.png,1,2,3,4,\u00b2,0,0,0,0,0", "row 2: vote counts must be integers 0 or more; anger is '\u00b2'"),
    ("Training,a.png,1,2,3,4,-1,0,0,0,0,0", "row 2: vote counts must be integers 0 or more; anger is '-1'"),
    ("Training,a.png,1,2,3,4,1_0,0,0,0,0,0", "anger is '1_0'"),
    ("Training,a.png,1,2,3,4,99999999999,0,0,0,0,0", "anger is '99999999999'"),
    ("Training,a.png,10,0,0,0,0,0,0,0,0,0\nTraining,b.png,1,2", "row 3: expected 12 fields, found 4"),
])
def test_ferplus_values_are_checked(tmp_path, body, message):
    p = tmp_path / "new.csv"
    p.write_text(FERPLUS_HEADER + "\n" + body + "\n")
    with pytest.raises(DataError) as e:
        read_ferplus_votes(p)
    assert str(e.value).startswith(f"{p}, row ") and message in str(e.value), str(e.value)


def test_ferplus_damaged_or_binary_files_name_the_file(tmp_path):
    good = (FERPLUS_HEADER + "\n" + "\n".join(["Training,a.png,10,0,0,0,0,0,0,0,0,0"] * 20) + "\n").encode()
    (tmp_path / "cut.csv.gz").write_bytes(gzip.compress(good)[:60])
    (tmp_path / "binary.csv").write_bytes(bytes(range(256)) * 4)
    for name, reason in [("cut.csv.gz", "truncated"), ("binary.csv", "not UTF-8")]:
        with pytest.raises(DataError) as e:
            read_ferplus_votes(tmp_path / name)
        assert re.match(rf"{re.escape(str(tmp_path / name))}, row \d+: cannot read \(.*{reason}.*\); expected "
                        "fer2013new.csv: a UTF-8 CSV of FER\\+ vote counts", str(e.value)), str(e.value)
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + good)
    assert read_ferplus_votes(tmp_path / "bom.csv").shape == (20, 10)


@pytest.mark.data
def test_real_fer2013_counts_match_the_published_table(fer_dir):
    ds = read_fer2013_csv(fer_dir / "fer2013.csv.gz")
    counts = ds.counts()
    assert [sum(counts[s].values()) for s in ("Training", "PublicTest", "PrivateTest")] == [28709, 3589, 3589]
    assert [counts["Training"][c] for c in EMOTIONS] == [3995, 436, 4097, 7215, 4830, 3171, 4965]
    assert [counts["PrivateTest"][c] for c in EMOTIONS] == [491, 55, 528, 879, 594, 416, 626]
    votes = read_ferplus_votes(fer_dir / "fer2013new.csv", len(ds))
    fp = with_ferplus(ds, votes, "majority").split("PrivateTest")
    assert len(fp) == 3153  # 3,137 of them outside contempt, the set the 7-class model is scored on
    assert isinstance(fp, FaceDataset) and fp.classes[-1] == "contempt"


def test_no_default_folder_inside_a_development_tree(monkeypatch, tmp_path):
    """fer2013_file() reads $FERKIT_DATA and nothing else: without it, an error saying what to give."""
    from ferkit.data import fer2013_file

    monkeypatch.delenv("FERKIT_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no FER-2013 folder given.*FERKIT_DATA"):
        fer2013_file()
    (tmp_path / "fer2013.csv").write_text("emotion,pixels,Usage\n")
    monkeypatch.setenv("FERKIT_DATA", str(tmp_path))
    assert fer2013_file() == tmp_path / "fer2013.csv"
