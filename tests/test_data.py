import gzip

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
    ([row(value=300)], "emotion,pixels,Usage", "row 2: pixel values outside 0-255"),
    ([], "emotion,pixels,Usage", "no data rows"),
])
def test_csv_errors_name_file_and_row(tmp_path, rows, header, message):
    path = write_csv(tmp_path / "bad.csv", rows, header)
    with pytest.raises(DataError) as e:
        read_fer2013_csv(path)
    assert message in str(e.value) and "bad.csv" in str(e.value)


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
