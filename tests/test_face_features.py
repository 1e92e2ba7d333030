"""Face features (ferkit.mesh): the converted models against MediaPipe's TFLite files, the crop and the geometry, what
the action units say about known expressions, identity tracks in video, and the switch on every entry point. Real
models and the sample photo; FER-2013 faces where a test says so (marked data)."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

import ferkit
from ferkit.mesh import (ACTION_UNITS, BLENDSHAPE_INPUT_POINTS, BLENDSHAPES, IRIS_LEFT, IRIS_RIGHT, MESH_INPUT, MOUTH_LEFT, MOUTH_RIGHT,
                         NOSE_TIP, crop_transform, parse_features)
from tests.conftest import mediapipe_bundle

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "astronaut.png"
REFERENCE = ROOT / "tests" / "data" / "face_landmarker_reference.npz"


@pytest.fixture(scope="module")
def rec():
    return ferkit.load_recognizer(features="all")


@pytest.fixture(scope="module")
def photo():
    return cv2.imread(str(PHOTO))


def views(photo):
    """The sample photo scaled and turned in the image plane: (angle, image); the crops the parity checks use."""
    h, w = photo.shape[:2]
    out = []
    for scale, angle in ((1.0, 0), (0.7, 20), (1.4, -25)):
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
        out.append(cv2.warpAffine(photo, m, (w, h), borderMode=cv2.BORDER_REPLICATE))
    return out


def mesh_inputs(rec, photo) -> np.ndarray:
    """(3, 256, 256, 3) the mesh model's inputs for the views' faces, as FaceMesh.run makes them."""
    crops = []
    for img in views(photo):
        d = rec.detect(img)
        roi = rec.face_mesh.rois(d.boxes, d.landmarks)[0]
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        crops.append(cv2.warpAffine(rgb, crop_transform(*roi), (MESH_INPUT, MESH_INPUT)).astype(np.float32) / 255)
    return np.stack(crops)


def tflite_outputs(x: np.ndarray, tmp: Path) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's own TFLite files (from the bundle, through ai-edge-litert) on the mesh inputs -> (N, 478, 3)
    landmarks in crop pixels and (N, 52) blendshapes."""
    from ai_edge_litert.interpreter import Interpreter

    zipfile.ZipFile(mediapipe_bundle()).extractall(tmp)
    mesh = Interpreter(str(tmp / "face_landmarks_detector.tflite"))
    blend = Interpreter(str(tmp / "face_blendshapes.tflite"))
    mesh.allocate_tensors()
    blend.allocate_tensors()
    points, shapes = [], []
    for crop in x:
        mesh.set_tensor(mesh.get_input_details()[0]["index"], crop[None])
        mesh.invoke()
        p = mesh.get_tensor(mesh.get_output_details()[0]["index"]).reshape(-1, 3)
        blend.set_tensor(blend.get_input_details()[0]["index"], p[list(BLENDSHAPE_INPUT_POINTS), :2][None].copy())
        blend.invoke()
        points.append(p)
        shapes.append(blend.get_tensor(blend.get_output_details()[0]["index"]).reshape(-1))
    return np.stack(points), np.stack(shapes)


def test_the_onnx_models_match_mediapipes_tflite_files(rec, photo, tmp_path):
    """Landmarks within 0.5 px at 256 px, blendshapes within 0.01, on the sample photo's face in three views. The
    reference is MediaPipe's TFLite run live where the bundle (../shared) and ai-edge-litert are here, else its
    outputs stored in tests/data (`python -m tests.test_face_features` writes them, from the bundle)."""
    x = mesh_inputs(rec, photo)
    fm = rec.face_mesh
    got = np.stack([fm._mesh.run(None, {fm._mesh_input: c[None]})[0].reshape(-1, 3) for c in x])
    live = mediapipe_bundle() is not None
    try:
        import ai_edge_litert  # noqa: F401
    except ImportError:
        live = False
    if live:
        ref_points, ref_shapes = tflite_outputs(x, tmp_path)
        stored = np.load(REFERENCE) if REFERENCE.is_file() else None
        if stored is not None:  # the stored reference is what TFLite says today
            np.testing.assert_allclose(stored["points"], ref_points, atol=1e-3)
    else:
        stored = np.load(REFERENCE)
        ref_points, ref_shapes = stored["points"], stored["blendshapes"]
    assert np.abs(got[:, :, :2] - ref_points[:, :, :2]).max() < 0.5
    shapes = fm.blendshapes(ref_points)  # the blendshape model alone, on the same points TFLite's saw
    assert np.abs(shapes - ref_shapes).max() < 0.01


def test_the_mesh_lands_on_the_sample_photos_face(rec, photo):
    """Iris centres, nose tip and mouth corners within 8 px (7 % of the 108-px face) of YuNet's five landmarks."""
    face = rec.analyze(photo)[0]
    yunet = np.array(face.landmarks)
    mesh = face.mesh[[IRIS_RIGHT, IRIS_LEFT, NOSE_TIP, MOUTH_RIGHT, MOUTH_LEFT], :2]
    assert face.mesh.shape == (478, 3)
    assert np.hypot(*(mesh - yunet).T).max() < 8


@pytest.mark.parametrize("angle", [-30, -15, 15, 30])
def test_roll_follows_an_in_plane_turn_of_the_photo(rec, photo, angle):
    """The photo turned clockwise on screen by `angle` degrees: the roll grows by `angle` within 4 degrees, and
    yaw and pitch stay within 4 degrees of the upright photo's."""
    upright = rec.analyze(photo)[0].head_pose
    h, w = photo.shape[:2]
    turned = cv2.warpAffine(photo, cv2.getRotationMatrix2D((w / 2, h / 2), -angle, 1.0), (w, h),
                            borderMode=cv2.BORDER_REPLICATE)  # OpenCV turns counter-clockwise for positive angles
    pose = rec.analyze(turned)[0].head_pose
    assert pose["roll"] - upright["roll"] == pytest.approx(angle, abs=4)
    assert abs(pose["yaw"] - upright["yaw"]) < 4 and abs(pose["pitch"] - upright["pitch"]) < 4


def turned_in_3d(photo, box, yaw: float = 0.0, pitch: float = 0.0) -> np.ndarray:
    """The photo with its face region turned as a plane in 3-D (a camera 1.2 face widths away): yaw > 0 sends the
    image's right half away (the face turns towards the image's right), pitch > 0 brings the top nearer (the face
    looks down)."""
    x, y, w, h = box
    cx, cy, f = x + w / 2, y + h / 2, 1.2 * w
    src = np.float32([[x - w / 2, y - h / 2], [x + 1.5 * w, y - h / 2], [x + 1.5 * w, y + 1.5 * h], [x - w / 2, y + 1.5 * h]])
    a, b = np.radians(yaw), np.radians(pitch)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]) @ \
        np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    dst = []
    for u, v in src:
        p = rot @ np.array([u - cx, -(v - cy), 0.0])
        dst.append([cx + f * p[0] / (f - p[2]), cy - f * p[1] / (f - p[2])])
    m = cv2.getPerspectiveTransform(src, np.float32(dst))
    return cv2.warpPerspective(photo, m, (photo.shape[1], photo.shape[0]), borderMode=cv2.BORDER_REPLICATE)


def test_yaw_and_pitch_move_the_right_way_and_yaw_flips_in_a_mirror(rec, photo):
    upright = rec.analyze(photo)[0]
    right = rec.analyze(turned_in_3d(photo, upright.box, yaw=25))[0].head_pose
    left = rec.analyze(turned_in_3d(photo, upright.box, yaw=-25))[0].head_pose
    down = rec.analyze(turned_in_3d(photo, upright.box, pitch=20))[0].head_pose
    up = rec.analyze(turned_in_3d(photo, upright.box, pitch=-20))[0].head_pose
    base = upright.head_pose
    assert right["yaw"] > base["yaw"] + 4 and left["yaw"] < base["yaw"] - 4
    assert down["pitch"] < base["pitch"] - 4 and up["pitch"] > base["pitch"] + 4
    mirrored = rec.analyze(turned_in_3d(photo, upright.box, yaw=25)[:, ::-1].copy())[0].head_pose
    assert np.sign(mirrored["yaw"]) == -np.sign(right["yaw"]) and abs(mirrored["yaw"] + right["yaw"]) < 3


def test_the_sample_photos_smile_reads_as_au12(rec, photo):
    """The astronaut smiles: AU12 (lip corner puller) among the strongest AUs, jaw closed, eyes open."""
    face = rec.analyze(photo)[0]
    assert list(face.blendshapes) == list(BLENDSHAPES)
    strongest = sorted(face.action_units, key=face.action_units.get, reverse=True)[:3]
    assert "AU12" in strongest and face.action_units["AU12"] > 0.5
    assert face.action_units["AU26"] < 0.2 and face.action_units["AU43"] < 0.3


def auc(positive: np.ndarray, scores: np.ndarray) -> float:
    pos, neg = scores[positive], scores[~positive]
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


@pytest.mark.data
@pytest.mark.slow
def test_action_units_move_and_separate_their_emotions_on_labelled_faces(fer_dataset, fer_dir):
    """FER+ majority labels of PublicTest faces drawn into scenes at 200 px: every AU reaches 0.1 on some face (AU6
    and AU9, read from blendshapes that never pass 0.001, stayed under it and were dropped), AU12 separates happiness
    and AU26 (jaw drop) surprise from the rest (AUC at least 0.8 and 0.75; docs/face-features.md has every AU)."""
    from ferkit.data import read_ferplus_votes, with_ferplus
    from ferkit.scenes import place_face

    rec = ferkit.load_recognizer(features="blendshapes")
    test = with_ferplus(fer_dataset, read_ferplus_votes(fer_dir / "fer2013new.csv", len(fer_dataset))).split("PublicTest")
    keep = np.random.default_rng(0).permutation(len(test.labels))[:160]
    units, names = [], []
    for i in keep:
        frame = place_face(np.full((400, 400, 3), 110, np.uint8), test.pixels[i], 200, (200, 200))
        faces = rec.analyze(frame)
        if len(faces) == 1:
            units.append(faces[0].action_units)
            names.append(test.classes[test.labels[i]])
    names = np.array(names)
    assert len(names) > 130 and (names == "happy").sum() > 20 and (names == "surprise").sum() > 10
    largest = {au: max(u[au] for u in units) for au in ACTION_UNITS}
    assert {au: v for au, v in largest.items() if v < 0.1} == {}
    assert "AU6" not in ACTION_UNITS and "AU9" not in ACTION_UNITS
    assert auc(names == "happy", np.array([u["AU12"] for u in units])) >= 0.8
    assert auc(names == "surprise", np.array([u["AU26"] for u in units])) >= 0.75


def test_features_are_parsed_one_way():
    assert parse_features(None) == () and parse_features("") == ()
    assert parse_features("all") == ("mesh", "blendshapes", "pose")
    assert parse_features("pose, mesh") == ("mesh", "pose") and parse_features(["head_pose"]) == ("pose",)
    with pytest.raises(ValueError, match="unknown face feature 'smile'; valid: mesh, blendshapes, pose, or all"):
        parse_features("mesh,smile")


def test_features_off_changes_nothing(photo):
    """Without features a Face and its JSON are exactly today's: no feature keys, the same numbers."""
    plain = ferkit.load_recognizer().analyze(photo)[0]
    full = ferkit.load_recognizer(features="all").analyze(photo)[0]
    assert plain.mesh is None and plain.blendshapes is None and plain.action_units is None and plain.head_pose is None
    assert set(plain.to_dict()) == {"box", "emotion", "probabilities", "detector", "detector_score",
                                    "detector_confidence", "landmarks"}
    d = full.to_dict()
    assert {k: d[k] for k in plain.to_dict()} == plain.to_dict()  # the emotion's side is the same
    assert len(d["mesh"]) == 478 and set(d["head_pose"]) == {"yaw", "pitch", "roll"} and len(d["blendshapes"]) == 52
    row = full.to_row()
    assert row["au_AU12"] == full.action_units["AU12"] and row["yaw"] == full.head_pose["yaw"]
    assert "mesh" not in row and "bs_mouthSmileLeft" in row  # the mesh joins a row only when asked for
    assert np.allclose(json.loads(full.to_row(mesh=True)["mesh"]), d["mesh"])
    assert not any(k.startswith(("au_", "bs_", "mesh")) or k in ("yaw", "pitch", "roll") for k in plain.to_row())


def test_a_face_without_landmarks_is_framed_from_its_box(photo):
    """Detectors without landmarks (haar) give the stage a box alone: it looks twice, as MediaPipe tracks, and the
    mesh still lands within 8 px of where it lands from YuNet's landmarks."""
    with_points = ferkit.load_recognizer(features="mesh").analyze(photo)[0]
    box_only = ferkit.load_recognizer(features="mesh").analyze_boxes(photo, [with_points.box])[0]
    assert np.abs(box_only.mesh[:, :2] - with_points.mesh[:, :2]).max() < 8


def ferkit_cli(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ferkit", *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_analyze_json_with_and_without_features(tmp_path):
    plain = ferkit_cli("analyze", str(PHOTO), "--json")
    full = ferkit_cli("analyze", str(PHOTO), "--json", "--features", "all")
    assert plain.returncode == 0 and full.returncode == 0, plain.stderr + full.stderr
    p, f = json.loads(plain.stdout)[0]["faces"][0], json.loads(full.stdout)[0]["faces"][0]
    assert "mesh" not in p and "action_units" not in p
    assert len(f["mesh"]) == 478 and f["action_units"]["AU12"] > 0.5 and set(f["head_pose"]) == {"yaw", "pitch", "roll"}
    table = ferkit_cli("analyze", str(PHOTO), "--features", "pose,blendshapes")
    assert "head pose: yaw" in table.stdout and "strongest AU estimates: " in table.stdout
    bad = ferkit_cli("analyze", str(PHOTO), "--features", "smile")
    assert bad.returncode == 2 and "unknown face feature 'smile'" in bad.stderr


def test_video_and_live_take_the_switch(tmp_path):
    """ferkit video and ferkit live --no-window on a short clip of the sample photo turning: AUs and pose in the
    timeline (CSV and JSON) and the live lines, mean AUs and the share looking away in the summary, one track."""
    photo = cv2.imread(str(PHOTO))
    clip = tmp_path / "turning.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (512, 512))
    for k in range(20):  # the head turns in the image plane by up to 20 degrees and back: one person
        angle = 20 * np.sin(np.pi * k / 19)
        writer.write(cv2.warpAffine(photo, cv2.getRotationMatrix2D((256, 256), angle, 1.0), (512, 512),
                                    borderMode=cv2.BORDER_REPLICATE))
    writer.release()
    out = tmp_path / "out"
    r = ferkit_cli("video", str(clip), "--out", str(out), "--features", "blendshapes,pose", "--no-progress",
                   "--no-annotate")
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())["faces"]
    assert list(summary) == ["1"]
    assert summary["1"]["mean_action_units"]["AU12"] > 0.4 and summary["1"]["looking_away"] == 0.0
    head = (out / "timeline.csv").read_text().splitlines()[0].split(",")
    assert "au_AU12" in head and "yaw" in head
    assert "mesh" not in head and not any(c.startswith("mesh_") for c in head)
    live = ferkit_cli("live", "--source", str(clip), "--no-window", "--max-speed", "--max-frames", "3", "--features", "pose")
    assert live.returncode == 0, live.stderr
    lines = [json.loads(line) for line in live.stdout.splitlines() if line.startswith("{")]
    assert lines and all("head_pose" in face for line in lines for face in line["faces"])


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("cut", [True, False])
def test_twelve_people_in_one_place_are_twelve_tracks(detectable_faces, tmp_path, cut):
    """`ferkit video` on a clip of 12 different FER-2013 people, one second each in the same place: 12 tracks, each
    about a second long. With `cut` each person follows a hard cut; without, only the face changes (the backdrop
    stays), so the appearance check alone must split them."""
    from tests._videos import render

    faces, _ = detectable_faces
    people = faces[:12]
    clip = tmp_path / "twelve.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 6, (640, 480))
    for k, face in enumerate(people):
        for j in range(6):
            frame, _ = render([face], 0.5 + 0.01 * j)  # a slight drift, as a person sitting still
            if cut:
                frame = cv2.convertScaleAbs(frame, alpha=1.0, beta=40 * (k % 2))  # another shot: the light changes
            writer.write(frame)
    writer.release()
    out = tmp_path / "out"
    r = ferkit_cli("video", str(clip), "--out", str(out), "--no-progress", "--no-annotate")
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())["faces"]
    assert len(summary) == 12
    assert all(0.5 <= s["seconds"] <= 1.0 for s in summary.values())


def test_batch_writes_the_features_as_typed_columns(tmp_path):
    """ferkit batch --features: the face features' flat columns (Face.to_row) in every row, floats in Parquet;
    without the switch the columns are today's."""
    import pyarrow.parquet as pq

    out = tmp_path / "r.parquet"
    r = ferkit_cli("batch", str(PHOTO), "--out", str(out), "--features", "blendshapes,pose", "--no-progress", "--workers", "1")
    assert r.returncode == 0, r.stderr
    table = pq.read_table(out)
    row = table.to_pylist()[0]
    assert row["status"] == "ok" and row["au_AU12"] > 0.5 and -20 < row["yaw"] < 20
    assert str(table.schema.field("au_AU12").type) == "double" and str(table.schema.field("bs_jawOpen").type) == "double"
    assert not any(c.startswith("mesh_") for c in table.column_names)
    again = ferkit_cli("batch", str(PHOTO), "--out", str(out), "--features", "pose,blendshapes", "--no-progress")
    assert again.returncode == 0 and "1 tasks already done" in again.stderr  # the same features, in another order
    other = ferkit_cli("batch", str(PHOTO), "--out", str(out), "--features", "pose", "--no-progress")
    assert other.returncode == 2 and "other settings (features" in other.stderr
    plain = tmp_path / "p.csv"
    r = ferkit_cli("batch", str(PHOTO), "--out", str(plain), "--no-progress", "--workers", "1")
    assert r.returncode == 0, r.stderr
    head = plain.read_text().splitlines()[0].split(",")
    assert not any(c.startswith(("au_", "bs_")) or c in ("yaw", "pitch", "roll") for c in head)


if __name__ == "__main__":  # writes tests/data/face_landmarker_reference.npz from the bundle's TFLite files
    import tempfile

    recognizer = ferkit.load_recognizer(features="all")
    inputs = mesh_inputs(recognizer, cv2.imread(str(PHOTO)))
    points, blendshapes = tflite_outputs(inputs, Path(tempfile.mkdtemp()))
    np.savez_compressed(REFERENCE, points=points.astype(np.float32), blendshapes=blendshapes.astype(np.float32))
    print(f"wrote {REFERENCE} ({REFERENCE.stat().st_size:,} bytes)")


def test_annotations_scale_with_the_face(rec, photo):
    """A 40 px face in a 1280x720 frame: a one-pixel box, no mesh, the label wholly outside the face. The sample
    photo's 108 px face with every feature: the mesh drawn as light outlines, changing under a fifth of the face's
    pixels (its 478 points in white covered a small face), the label above the box."""
    from dataclasses import replace

    from ferkit.annotate import MESH_MIN_FACE, draw_faces
    from ferkit.face import Face

    frame = np.full((720, 1280, 3), 128, np.uint8)
    small = Face(box=(600, 300, 40, 40), probabilities={"happy": 0.87, "sad": 0.13}, emotion="happy",
                 detector_score=0.9, mesh=np.random.default_rng(0).uniform([605, 305, 0], [635, 335, 1], (478, 3)))
    out = draw_faces(frame, [small])
    inside, label = out[302:338, 602:638], np.all(out == 0, axis=2)
    assert (inside == 128).all()                                   # nothing drawn on the face: no label, no mesh
    assert label[:300].sum() > 300 and not label[300:].any()       # the label's black background, above the face
    assert (out[300, 600:641] != 128).any(axis=1).all() and (out[301, 602:638] == 128).all()  # a 1 px box
    assert 40 < MESH_MIN_FACE

    face = rec.analyze(photo)[0]
    without = draw_faces(photo, [replace(face, mesh=None)])
    drawn = draw_faces(photo, [face])
    x, y, w, h = face.box
    changed = np.any(drawn != without, axis=2)[y + 3:y + h - 3, x + 3:x + w - 3]
    assert 0.02 < changed.mean() < 0.2, changed.mean()
    assert np.all(drawn[:y] == 0, axis=2).sum() > 300              # the label above the face
