"""ferkit.records, the one row schema: the same clip through `ferkit video` and `ferkit batch` gives the same
columns and values (track aside); each writer round-trips its rows and the run's metadata; the mesh joins a
table only when named; an adapter's rows keep its name and the base model's probabilities."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import ferkit
from ferkit import batch
from ferkit.mesh import MESH_POINTS
from ferkit.records import (Schema, column_type, columns, meta_path, mesh_named, read_meta, read_rows, write_meta,
                            writer_for)

from tests.conftest import default_labels

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "astronaut.png"
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """12 frames at 10 fps (Motion-JPEG): the example photo sliding 4 px a frame, one real face throughout."""
    image = cv2.imread(str(PHOTO))
    path = tmp_path_factory.mktemp("clip") / "slide.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (image.shape[1], image.shape[0]))
    for i in range(12):
        writer.write(np.roll(image, 4 * i, axis=1))
    writer.release()
    return path


def _ferkit(*args, timeout=240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ferkit", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.mark.slow
def test_the_same_clip_through_video_and_batch_gives_the_same_columns_and_values(clip, tmp_path):
    """`ferkit video --detect-every 1` (every frame detected, as batch does; between detections the tracker follows
    boxes, which batch never does) and `ferkit batch --fps 10` (every frame of the 10 fps clip): the timeline's
    columns are batch's plus `track`, and every row's values agree, to float precision."""
    features = "blendshapes,pose"
    video = _ferkit("video", clip, "--out", tmp_path / "v", "--detect-every", "1", "--no-annotate", "--no-progress",
                    "--features", features)
    assert video.returncode == 0, video.stderr
    result = _ferkit("batch", clip, "--out", tmp_path / "b.csv", "--fps", "10", "--workers", "1", "--no-progress",
                     "--features", features)
    assert result.returncode == 0, result.stderr
    v_cols, v_rows = read_rows(tmp_path / "v" / "timeline.csv")
    b_cols, b_rows = read_rows(tmp_path / "b.csv")
    assert [c for c in v_cols if c != "track"] == b_cols and v_cols.index("track") == b_cols.index("face")
    assert b_cols == columns(default_labels(), ("blendshapes", "pose"))  # both ran the default model
    assert len(v_rows) == len(b_rows) == 12 and {r["status"] for r in v_rows} == {"ok"}
    for v, b in zip(v_rows, b_rows):
        assert v["track"] == 1
        for c in b_cols:
            if isinstance(b[c], float):
                assert v[c] == pytest.approx(b[c], abs=1e-5), (c, v["frame"])
            else:
                assert v[c] == b[c], (c, v["frame"])
    v_meta, b_meta = read_meta(tmp_path / "v" / "timeline.csv"), read_meta(tmp_path / "b.csv")
    for key in ("model", "labels", "detector", "adapter", "features", "ferkit_version"):
        assert v_meta[key] == b_meta[key], key
    assert v_meta["command"] == "ferkit video" and b_meta["command"] == "ferkit batch"
    assert v_meta["columns"] == v_cols and b_meta["columns"] == b_cols and b_meta["ferkit_version"] == ferkit.__version__


@pytest.mark.parametrize("ext", ["csv", "jsonl", "parquet"])
def test_each_writer_round_trips_rows_types_nulls_and_metadata(tmp_path, ext):
    if ext == "parquet":
        pytest.importorskip("pyarrow")
    schema = Schema(("happy", "sad"), ("pose",), base_labels=("x", "y"), track=True)
    cols = schema.columns
    rows = [{"source": "a.png", "kind": "image", "status": "ok", "face": 0, "x": 1, "y": 2, "w": 30, "h": 30,
             "prob_happy": 0.25, "prob_sad": 0.75, "adapter": "mine", "base_prob_x": 1 / 3, "base_prob_y": 2 / 3,
             "yaw": -12.5, "model": "m+mine", "emotion": "sad", "track": 4},
            {"source": "b, with a comma.png", "kind": "image", "status": "error", "message": 'bad "quote"\nline'}]
    path = tmp_path / f"r.{ext}"
    meta = {"model": "m+mine", "labels": ["happy", "sad"]}
    with writer_for(path, cols, meta) as w:
        w.write_many(rows)
    write_meta(path, meta)
    got_cols, got = read_rows(path)
    assert got_cols == cols
    assert got == [{c: r.get(c) for c in cols} for r in rows]
    assert all(type(v) is column_type(c) for r in got for c, v in r.items() if v is not None)
    assert read_meta(path) == meta and meta_path(path).name == f"r.{ext}.meta.json"
    if ext == "parquet":
        meta_path(path).unlink()  # the file's own metadata is enough
        assert read_meta(path) == meta


def test_an_unknown_format_is_named():
    with pytest.raises(ValueError, match=r"r\.xlsx: unknown output format; name the file \.parquet, \.csv or \.jsonl"):
        writer_for("r.xlsx", ["a"])


def test_the_columns_in_order():
    cols = columns(LABELS, ("mesh", "blendshapes", "pose"), base_labels=("a", "b"), mesh=True, track=True)
    assert cols[:8] == ["source", "kind", "frame", "time", "status", "message", "track", "face"]
    i = cols.index("prob_neutral")
    assert cols[i + 1:i + 4] == ["adapter", "base_prob_a", "base_prob_b"] and cols[i + 4] == "bs__neutral"
    assert cols[-5:] == ["yaw", "pitch", "roll", "mesh", "model"]
    assert "mesh" not in columns(LABELS, ("mesh", "blendshapes", "pose"))  # computed, not asked for


@pytest.mark.parametrize("given, named", [("all", False), ("mesh", True), ("pose, MESH", True), (("mesh",), True),
                                          ("blendshapes,pose", False), (None, False)])
def test_mesh_is_named_only_explicitly(given, named):
    assert mesh_named(given) is named


def test_the_mesh_is_one_column_only_when_named(tmp_path):
    """With every feature the table has no mesh (not 1,434 columns, not one); named, it is one JSON column of the
    478 points, the same as Face.to_dict's."""
    everything = batch.run([str(PHOTO)], tmp_path / "all.csv", workers=1, features="all")
    assert everything.faces == 1
    cols, _ = read_rows(tmp_path / "all.csv")
    assert "mesh" not in cols and not any(c.startswith("mesh_") for c in cols) and "yaw" in cols and len(cols) < 120
    batch.run([str(PHOTO)], tmp_path / "mesh.jsonl", workers=1, features="mesh")
    cols, rows = read_rows(tmp_path / "mesh.jsonl")
    assert cols.count("mesh") == 1 and not any(c.startswith("mesh_") for c in cols)
    points = np.array(json.loads(rows[0]["mesh"]))
    assert points.shape == (MESH_POINTS, 3)
    face = ferkit.load_recognizer(features="mesh").analyze(str(PHOTO))[0]
    assert np.allclose(points, face.to_dict()["mesh"], atol=0.051)


def test_adapter_rows_keep_its_name_and_the_base_probabilities(tmp_path):
    from ferkit.adapt import Head, file_sha256

    rec = ferkit.load_recognizer()
    names = tuple(f"log_probabilities:{c}" for c in rec.labels)
    d = len(names)
    Head("mine", ("a", "b"), names, np.zeros(d), np.ones(d), np.vstack([np.ones(d), -np.ones(d)]) / d, np.zeros(2),
         {"name": rec.name, "file": rec.model_path.name, "sha256": file_sha256(rec.model_path),
          "labels": list(rec.labels)}).save(tmp_path / "mine.json")
    batch.run([str(PHOTO)], tmp_path / "r.csv", workers=1, adapter=str(tmp_path / "mine.json"))
    cols, (row,) = read_rows(tmp_path / "r.csv")
    assert [c for c in cols if c.startswith(("prob_", "base_prob_"))] == \
        ["prob_a", "prob_b", *(f"base_prob_{c}" for c in rec.labels)]
    face = ferkit.load_recognizer(adapter=tmp_path / "mine.json").analyze(str(PHOTO))[0].to_dict()
    assert row["adapter"] == face["adapter"] == "mine" and row["model"] == f"{rec.name}+mine"
    assert {k: row[f"base_prob_{k}"] for k in rec.labels} == pytest.approx(face["base_probabilities"], abs=1e-6)
    meta = read_meta(tmp_path / "r.csv")
    assert meta["adapter"] == "mine" and meta["base_labels"] == list(rec.labels) and meta["labels"] == ["a", "b"]
