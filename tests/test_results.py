"""ferkit.read_results: the real outputs of `ferkit video` and `ferkit batch` (every format) read back as one schema."""
from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from tests._videos import make_grid_video, pick_faces

import ferkit
from ferkit import ACTION_UNITS
from ferkit.batch import run as batch_run
from ferkit.records import read_rows
from ferkit.face import LANDMARK_COLUMNS
from ferkit.results import Results, ResultsError, read_results
from ferkit.video import analyze_video

pd = pytest.importorskip("pandas")
ROOT = Path(__file__).resolve().parents[1]
HAPPY, SURPRISE = 3, 5
pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def clip(tmp_path_factory, detectable_faces) -> Path:
    """Two real faces, 12 frames at 10 fps."""
    path = tmp_path_factory.mktemp("clip") / "two.mp4"
    make_grid_video(path, pick_faces(detectable_faces, [HAPPY, SURPRISE]), [HAPPY, SURPRISE], n_frames=12, fps=10)
    return path


@pytest.fixture(scope="module")
def featured():
    return ferkit.load_recognizer(features="all")


@pytest.fixture(scope="module")
def video_outs(clip, featured, tmp_path_factory) -> dict[str, Path]:
    """The clip through the real ferkit.video, its timeline in each format."""
    outs = {}
    for suffix in (".csv", ".jsonl", ".parquet"):
        outs[suffix] = tmp_path_factory.mktemp(f"video{suffix}")
        analyze_video(clip, featured, outs[suffix], annotate=False, timeline=f"timeline{suffix}")
    return outs


@pytest.fixture(scope="module")
def video_out(video_outs) -> Path:
    return video_outs[".csv"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory, clip) -> list[str]:
    """A real photo, a broken file (an error row) and the clip (video rows)."""
    folder = tmp_path_factory.mktemp("photos")
    (folder / "astronaut.png").write_bytes((ROOT / "examples" / "astronaut.png").read_bytes())
    (folder / "broken.jpg").write_bytes(b"not an image at all")
    return [str(folder / "astronaut.png"), str(folder / "broken.jpg"), str(clip)]


@pytest.fixture(scope="module")
def batch_outs(photos, tmp_path_factory) -> dict[str, Path]:
    """The same inputs through the real `ferkit batch` into each format."""
    folder = tmp_path_factory.mktemp("batch")
    outs = {}
    for suffix in (".csv", ".jsonl", ".parquet"):
        outs[suffix] = folder / f"results{suffix}"
        batch_run(photos, out=outs[suffix], workers=1, features="all", fps=5)
    return outs


def _same(a, b) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)) or a is pd.NA:
        return b is None or b is pd.NA or (isinstance(b, float) and math.isnan(b))
    return a == b


# ---------------------------------------------------------------- a video's output folder
@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_video_folder_reads_back_with_tracks(video_outs, suffix, clip, featured):
    out = video_outs[suffix]
    cols, rows = read_rows(out / f"timeline{suffix}")   # the writer's own reader, as it wrote them
    df = read_results(out)
    assert isinstance(df, Results) and list(df.columns) == cols and len(df) == len(rows) > 0
    for got, row in zip(df.to_dict("records"), rows):
        bad = [c for c in cols if not _same(got[c], row[c])]
        assert not bad, (suffix, {c: (got[c], row[c]) for c in bad})
    assert set(df["track"].dropna()) == {1, 2} and set(df["kind"]) == {"video"}
    assert str(df["track"].dtype) == "Int64" and str(df["prob_happy"].dtype) == "float64"
    assert {k: df.attrs[k] for k in ("model", "labels", "kind", "fps", "every", "video", "features")} == {
        "model": featured.name, "labels": list(featured.labels), "kind": "video", "fps": 10.0, "every": 1,
        "video": str(clip), "features": list(featured.features)}
    assert df.attrs["ferkit_version"] == ferkit.__version__ and df.attrs["detector"] == "yunet"
    # the timeline file itself reads the same
    pd.testing.assert_frame_equal(read_results(out / f"timeline{suffix}"), df)


def test_every_video_format_gives_the_same_frame(video_outs):
    frames = {s: read_results(p) for s, p in video_outs.items()}
    for s in (".jsonl", ".parquet"):
        pd.testing.assert_frame_equal(frames[s], frames[".csv"], check_exact=True)


def test_column_groups(video_out, featured):
    df = read_results(video_out)
    assert list(df.emotions.columns) == list(featured.labels)
    assert (df[df["status"] == "ok"].emotions.sum(axis=1) - 1).abs().max() < 1e-6
    assert list(df.action_units.columns) == list(ACTION_UNITS)
    assert list(df.pose.columns) == ["yaw", "pitch", "roll"]
    assert len(df.blendshapes.columns) == 52 and list(df.landmarks.columns) == LANDMARK_COLUMNS
    one = df[df["track"] == 1]
    assert isinstance(one, Results) and one.attrs["model"] == featured.name  # slices keep the groups and facts
    assert list(one.emotions.columns) == list(featured.labels)


# ---------------------------------------------------------------- a batch result, each format
@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_batch_result_round_trips(batch_outs, suffix, featured):
    path = batch_outs[suffix]
    cols, rows = read_rows(path)   # batch's own reader, as it wrote them
    df = read_results(path)
    assert list(df.columns) == cols and len(df) == len(rows)
    for got, row in zip(df.to_dict("records"), rows):
        bad = [c for c in cols if not _same(got[c], row[c])]
        assert not bad, (suffix, {c: (got[c], row[c]) for c in bad})
    assert set(df["status"]) == {"ok", "error"} and set(df["kind"]) == {"image", "video"}
    assert list(df.landmarks.columns) == LANDMARK_COLUMNS and df[df["status"] == "ok"].landmarks.notna().all(axis=None)
    meta = json.loads(Path(f"{path}.meta.json").read_text())
    assert {k: df.attrs[k] for k in ("model", "labels", "detector", "adapter", "features", "ferkit_version")} == {
        k: meta[k] for k in ("model", "labels", "detector", "adapter", "features", "ferkit_version")}
    assert df.attrs["model"] == featured.name and df.attrs["kind"] == "batch"


def test_every_batch_format_gives_the_same_frame(batch_outs):
    frames = {s: read_results(p) for s, p in batch_outs.items()}
    for s in (".jsonl", ".parquet"):
        pd.testing.assert_frame_equal(frames[s], frames[".csv"], check_exact=True)


def test_without_its_metadata_the_rows_say_model_and_detector(batch_outs, tmp_path):
    lone = tmp_path / "copy.csv"
    lone.write_bytes(batch_outs[".csv"].read_bytes())
    df = read_results(lone)
    from ferkit.recognizer import DEFAULT_MODEL
    from tests.conftest import default_labels

    assert df.attrs["model"] == DEFAULT_MODEL and df.attrs["detector"] == "yunet"
    assert df.attrs["labels"] == list(default_labels()) and df.attrs["ferkit_version"] is None


# ---------------------------------------------------------------- what is not a result
def test_errors_name_the_file_and_what_was_expected(tmp_path, batch_outs, video_out):
    with pytest.raises(FileNotFoundError, match="nothing.csv: no such file"):
        read_results(tmp_path / "nothing.csv")
    with pytest.raises(ResultsError, match="a folder with no timeline.csv, .jsonl or .parquet; expected"):
        read_results(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ResultsError, match=r"notes.txt: not a ferkit result; expected"):
        read_results(tmp_path / "notes.txt")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ResultsError, match=r"other.csv: no column source, status, emotion; expected ferkit's rows"):
        read_results(tmp_path / "other.csv")
    with open(batch_outs[".csv"], newline="") as fh:
        table = list(csv.reader(fh))
    table[2][table[0].index("x")] = "left"   # the file's row 3 (row 1: the header)
    with open(tmp_path / "bad.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(table)
    with pytest.raises(ResultsError, match=r"bad.csv: row 3, column x: 'left' is not a number"):
        read_results(tmp_path / "bad.csv")
    (tmp_path / "bad.jsonl").write_text(batch_outs[".jsonl"].read_text().splitlines()[0] + "\n{oops\n")
    with pytest.raises(ResultsError, match=r"bad.jsonl: line 2 is not JSON"):
        read_results(tmp_path / "bad.jsonl")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ResultsError, match=r"bad.parquet: not a Parquet file"):
        read_results(tmp_path / "bad.parquet")
    both = tmp_path / "video_out"
    both.mkdir()
    for name in ("timeline.csv", "timeline.jsonl"):
        (both / name).write_text("source,status,emotion,prob_happy\n")
    with pytest.raises(ResultsError, match=r"video_out: a folder with timeline.csv, timeline.jsonl; expected"):
        read_results(both)
    (tmp_path / "damaged.csv").write_bytes(batch_outs[".csv"].read_bytes())
    (tmp_path / "damaged.csv.meta.json").write_text("{half")
    with pytest.raises(ResultsError, match=r"damaged.csv: its metadata cannot be read"):
        read_results(tmp_path / "damaged.csv")


def test_the_front_door():
    import inspect

    assert ferkit.read_results is read_results and list(inspect.signature(read_results).parameters) == ["path"]
    with pytest.raises(AttributeError, match="has no attribute 'read_resultz'"):
        ferkit.read_resultz  # noqa: B018


def test_import_ferkit_does_not_import_pandas():
    code = "import sys, ferkit; assert 'pandas' not in sys.modules; ferkit.read_results; assert 'pandas' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
