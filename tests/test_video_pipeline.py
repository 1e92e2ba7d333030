"""`ferkit video` with face features in two stages (tracking, then the features and the outputs on a second thread):
the same outputs as in one, and errors and interruptions that surface without a hang."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from tests._videos import make_grid_video, make_video, pick_faces

import ferkit
from ferkit.records import read_rows
from ferkit.track import FaceTracker
from ferkit.video import VideoError, analyze_video

pytestmark = pytest.mark.data

HAPPY, SURPRISE, NEUTRAL, SAD, ANGRY, FEAR = 3, 5, 6, 4, 0, 2


@pytest.fixture(scope="module")
def features_recognizer():
    return ferkit.load_recognizer(features="all")


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory, detectable_faces):
    faces = pick_faces(detectable_faces, [HAPPY, SURPRISE])
    return make_video(tmp_path_factory.mktemp("pipeline") / "two.mp4", faces, [HAPPY, SURPRISE], n_frames=24)


@pytest.fixture(scope="module")
def six_faces(tmp_path_factory, detectable_faces):
    """More faces than the mesh model takes in one batch (recognizer.MESH_BATCH = 4)."""
    labels = [HAPPY, SURPRISE, NEUTRAL, SAD, ANGRY, FEAR]
    faces = pick_faces(detectable_faces, labels)
    return make_grid_video(tmp_path_factory.mktemp("pipeline") / "six.mp4", faces, labels, n_frames=9)


def _stage_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ferkit-video-stage-2"]


@pytest.mark.parametrize("clip", ["two_faces", "six_faces"])
def test_two_stages_write_the_same_outputs_as_one(clip, request, features_recognizer, tmp_path):
    scene = request.getfixturevalue(clip)
    one = analyze_video(scene.path, features_recognizer, tmp_path / "one", pipeline=False, mesh=True)
    two = analyze_video(scene.path, features_recognizer, tmp_path / "two", pipeline=True, mesh=True)
    for name in ("timeline.csv", "summary.json", "summary.txt", "annotated.mp4"):
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
    assert two.rows == one.rows and two.frames_analysed == one.frames_analysed == scene.n_frames
    _, rows = read_rows(tmp_path / "two" / "timeline.csv")
    assert len({r["track"] for r in rows}) == len(scene.labels)  # every face, its features read (not empty)
    assert all(r["yaw"] not in ("", None) and r["au_AU12"] not in ("", None) for r in rows)
    assert not _stage_threads()


def test_two_stages_give_the_tracker_s_faces_frame_by_frame(two_faces, features_recognizer, tmp_path):
    """The timeline's values are those of FaceTracker over load_recognizer(features="all"), frame by frame."""
    import cv2

    analyze_video(two_faces.path, features_recognizer, tmp_path, pipeline=True, annotate=False)
    _, rows = read_rows(tmp_path / "timeline.csv")
    tracker = FaceTracker(features_recognizer, detect_every=3, detect_side=None)
    cap = cv2.VideoCapture(str(two_faces.path))
    expected = []
    while (got := cap.read())[0]:
        expected += tracker.process(got[1])
    cap.release()
    assert len(rows) == len(expected)
    for row, face in zip(rows, expected):
        assert int(row["track"]) == face.id and tuple(int(row[k]) for k in ("x", "y", "w", "h")) == face.box
        for label, p in face.probabilities.items():
            assert float(row[f"prob_{label}"]) == pytest.approx(p, abs=1e-6)
        for unit, v in face.action_units.items():
            assert float(row[f"au_{unit}"]) == pytest.approx(v, abs=1e-6)
        assert float(row["yaw"]) == pytest.approx(face.head_pose["yaw"], abs=1e-4)


def test_an_error_in_the_second_stage_surfaces_without_a_hang(two_faces, features_recognizer, tmp_path):
    (tmp_path / "annotated.mp4").mkdir()  # OpenCV cannot write the annotated copy there: the second stage fails
    with pytest.raises(VideoError, match="cannot write"):
        analyze_video(two_faces.path, features_recognizer, tmp_path, pipeline=True)
    assert not _stage_threads()


def test_an_interruption_writes_the_frames_tracked_and_stops_the_second_stage(two_faces, features_recognizer,
                                                                              tmp_path):
    calls = []

    def stop_at_10(n):  # Ctrl-C while reading the 10th frame
        calls.append(n)
        if len(calls) == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        analyze_video(two_faces.path, features_recognizer, tmp_path, pipeline=True, progress=stop_at_10)
    assert not _stage_threads()
    _, rows = read_rows(tmp_path / "timeline.csv")  # closed properly: every frame tracked, each row whole
    assert {int(r["frame"]) for r in rows} == set(range(10))
    assert all(r["yaw"] not in ("", None) for r in rows)
    assert np.isfinite([float(r["au_AU12"]) for r in rows]).all()
