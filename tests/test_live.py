"""`ferkit live`: the loop over a video file in --no-window mode, and in a real window under Xvfb (screenshot checked)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from tests._videos import HEIGHT, WIDTH, jpeg_starts, make_video, pick_faces, to_mjpeg

from ferkit import EMOTIONS, load_recognizer
from ferkit.annotate import EMOTION_COLORS_BGR
from ferkit.live import AU_BAR_COLOR, SHOWN_AUS, GuiUnavailableError, draw_live, open_window, opencv_has_gui
from ferkit.track import TrackedFace
from tests.conftest import default_labels

HAPPY, SURPRISE = 3, 5
N_FRAMES = 30
FERKIT = [sys.executable, "-m", "ferkit", "live"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory, detectable_faces):
    faces = pick_faces(detectable_faces, [HAPPY, SURPRISE])
    return make_video(tmp_path_factory.mktemp("live") / "clip.mp4", faces, [HAPPY, SURPRISE], n_frames=N_FRAMES, fps=15.0)


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(extra)
    return env


# ---------------------------------------------------------------- drawing
def _face(box, top: str) -> TrackedFace:
    probs = {k: (0.6 if k == top else 0.4 / (len(EMOTIONS) - 1)) for k in EMOTIONS}
    return TrackedFace(box=box, probabilities=probs, emotion=top, detector_score=1.0, id=7)


def _has_colour(img: np.ndarray, bgr, min_pixels: int) -> bool:
    return int(np.all(img == np.array(bgr, np.uint8), axis=2).sum()) >= min_pixels


def test_draw_live_puts_box_label_bars_and_fps_on_the_frame():
    frame = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    out = draw_live(frame, [_face((100, 150, 120, 120), "happy")], 29.7, EMOTIONS)
    assert out.shape == frame.shape and (frame == 128).all()      # a new image; the frame is untouched
    for label in EMOTIONS:                                          # one bar per emotion, in its colour
        assert _has_colour(out[150:250, 220:340], EMOTION_COLORS_BGR[label], 8), label
    happy = np.all(out[150:250, 220:340] == EMOTION_COLORS_BGR["happy"], axis=2).sum()
    sad = np.all(out[150:250, 220:340] == EMOTION_COLORS_BGR["sad"], axis=2).sum()
    assert happy > 4 * sad                                          # bar length follows the probability
    band = out[0:24, 0:200]
    assert (band == 0).mean() > 0.5 and (band.min(axis=2) > 200).sum() > 30  # the FPS band: white text on black
    assert _has_colour(out[140:280, 90:230], EMOTION_COLORS_BGR["happy"], 100)       # the box


def test_bars_move_left_of_a_face_at_the_right_edge():
    frame = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    out = draw_live(frame, [_face((WIDTH - 100, 200, 90, 90), "sad")], 10, EMOTIONS)
    assert _has_colour(out[200:300, WIDTH - 220:WIDTH - 100], EMOTION_COLORS_BGR["sad"], 50)


def test_with_features_the_strongest_action_units_and_the_pose_show_under_the_chart():
    """--features: under the emotion chart, the SHOWN_AUS strongest AUs, each with a bar as long as its value, and a
    line of head pose; a face without features gets neither."""
    frame = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    face = _face((100, 150, 120, 120), "happy")
    plain = draw_live(frame, [face], 30, EMOTIONS)
    face.action_units = {"AU1": 0.05, "AU12": 0.9, "AU6": 0.5, "AU25": 0.45, "AU4": 0.1}
    face.head_pose = {"yaw": -21.0, "pitch": 4.0, "roll": 1.0}
    out = draw_live(frame, [face], 30, EMOTIONS)
    chart_bottom = 150 + 12 * len(EMOTIONS) + 6
    below = out[chart_bottom:chart_bottom + 12 * (SHOWN_AUS + 1) + 6, 220:340]
    assert not _has_colour(plain, AU_BAR_COLOR, 1) and not (plain[chart_bottom:chart_bottom + 60, 220:340] < 60).all()
    rows = [np.all(below[3 + 12 * k:3 + 12 * (k + 1)] == AU_BAR_COLOR, axis=2).sum() for k in range(SHOWN_AUS + 1)]
    assert rows[0] > rows[1] > rows[2] > 0 and rows[3] == 0  # AU12 0.9, AU6 0.5, AU25 0.45 by length; the pose: text
    pose_row = below[3 + 12 * SHOWN_AUS:3 + 12 * (SHOWN_AUS + 1)]
    assert (pose_row.min(axis=2) > 200).sum() > 30  # white text on the darkened panel
    assert (out[:chart_bottom] == draw_live(frame, [face], 30, EMOTIONS)[:chart_bottom]).all()


# ---------------------------------------------------------------- --no-window
@pytest.mark.data
def test_no_window_prints_one_json_line_per_frame(clip):
    proc = subprocess.run(FERKIT + ["--source", str(clip.path), "--no-window", "--max-speed", "--smoothing", "0.3"],
                          capture_output=True, text=True, timeout=120, env=_env())
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [d["frame"] for d in lines] == list(range(N_FRAMES))
    assert lines[-1]["time"] == pytest.approx((N_FRAMES - 1) / 15.0, abs=1e-3)
    assert "source ended after 30 frames" in proc.stderr and "Traceback" not in proc.stderr
    ids_by_row: dict[int, set] = {0: set(), 1: set()}
    for d in lines:
        for f in d["faces"]:
            assert set(f) >= {"id", "box", "emotion", "probabilities", "detected"}
            assert set(f["probabilities"]) == set(default_labels())
            ids_by_row[0 if f["box"]["y"] < HEIGHT / 2 else 1].add(f["id"])
    assert sum(len(d["faces"]) == 2 for d in lines) >= N_FRAMES - 2
    assert len(ids_by_row[0]) == 1 and len(ids_by_row[1]) == 1 and ids_by_row[0] != ids_by_row[1]
    assert any(not f["detected"] for d in lines for f in d["faces"])  # followed between detections
    assert lines[-1]["fps"] > 0


@pytest.mark.data
def test_no_window_stops_cleanly_when_the_reader_leaves(clip):
    proc = subprocess.Popen(FERKIT + ["--source", str(clip.path), "--no-window", "--loop"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_env())
    first = proc.stdout.readline()
    assert json.loads(first)["frame"] == 0
    proc.stdout.close()  # like `| head -1`
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 141 and err == b"", err   # as `ferkit analyze ... | head`: 128 + SIGPIPE, no message


def _damaged(clip, tmp_path, frame: int = 10):
    """The clip as MJPEG with the start of one frame's JPEG wiped: that frame fails to decode."""
    data = bytearray(to_mjpeg(clip.path, tmp_path / "clip.avi").read_bytes())
    s = jpeg_starts(bytes(data))[frame]
    data[s:s + 3000] = bytes(3000)
    (tmp_path / "clip.avi").write_bytes(bytes(data))
    return tmp_path / "clip.avi"


@pytest.mark.data
def test_a_damaged_frame_in_a_file_is_skipped_not_the_end(clip, tmp_path):
    proc = subprocess.run(FERKIT + ["--source", str(_damaged(clip, tmp_path)), "--no-window", "--max-speed"],
                          capture_output=True, text=True, timeout=120, env=_env())
    assert proc.returncode == 0, proc.stderr
    positions = [round(json.loads(line)["time"] * 15) for line in proc.stdout.splitlines()]
    assert positions == [i for i in range(N_FRAMES) if i != 10]
    assert f"source ended after {N_FRAMES - 1} frames" in proc.stderr
    # reported as `ferkit video` reports it
    assert proc.stderr.count("ferkit: frame 10: could not be decoded, skipped\n") == 1, proc.stderr


@pytest.mark.data
def test_a_looped_damaged_file_reports_its_damage_once_as_it_is_met(clip, tmp_path):
    from ferkit.live import open_source, source_frames

    problems, told_by = [], {}
    frames = source_frames(open_source(path=_damaged(clip, tmp_path)), loop=True, on_problem=problems.append)
    indices = []
    for index, _ in frames:
        indices.append(index)
        told_by.setdefault(index, len(problems))
        if len(indices) == 2 * (N_FRAMES - 1):
            break
    assert indices == 2 * [i for i in range(N_FRAMES) if i != 10]   # skipped on both passes, numbered alike
    assert problems == ["frame 10: could not be decoded, skipped"]  # said once, not once per pass
    assert told_by[9] == 0 and told_by[11] == 1                     # told when met, not when the file ends


@pytest.mark.data
def test_a_truncated_file_in_live_mode_is_reported(clip, tmp_path):
    from ferkit.live import open_source, source_frames

    data = to_mjpeg(clip.path, tmp_path / "clip.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: jpeg_starts(data)[20] + 500])  # cut inside frame 20
    problems = []
    indices = [i for i, _ in source_frames(open_source(path=tmp_path / "cut.avi"), on_problem=problems.append)]
    assert indices[0] == 0 and 19 <= indices[-1] <= 21 and len(indices) == indices[-1] + 1
    assert len(problems) == 1 and "truncated" in problems[0] and f"ends at frame {indices[-1] + 1}" in problems[0]


def test_a_one_frame_file_plays_its_frame_and_ends(tmp_path):
    from ferkit.live import open_source, source_frames

    writer = cv2.VideoWriter(str(tmp_path / "one.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    writer.write(np.full((48, 64, 3), 90, np.uint8))
    writer.release()
    problems = []
    # frame 0 comes from open_source: the rest of the file is empty, which is no error (read_frames counts it)
    assert [i for i, _ in source_frames(open_source(path=tmp_path / "one.avi"), on_problem=problems.append)] == [0]
    assert problems == []


@pytest.mark.data
def test_a_looped_file_restarts_its_clock_and_forgets_its_faces(clip):
    from ferkit.detect import create_detector
    from ferkit.live import live_frames, open_source
    from ferkit.track import FaceTracker

    tracker = FaceTracker(load_recognizer(detector="none"), detector=create_detector("haar"))
    frames = []
    for lf in live_frames(open_source(path=clip.path), tracker, loop=True, pace=False):
        frames.append(lf)
        if len(frames) == N_FRAMES + 3:
            break
    assert [f.index for f in frames] == list(range(N_FRAMES + 3))
    assert [round(f.time * 15) for f in frames] == list(range(N_FRAMES)) + [0, 1, 2]
    ids_before = {face.id for f in frames[:N_FRAMES] for face in f.faces}
    ids_after = {face.id for face in frames[N_FRAMES].faces}
    assert ids_after and not ids_after & ids_before  # the tracker was reset: new ids after the restart


@pytest.mark.parametrize("args, message", [
    (["--camera", "9"], "camera 9: cannot be opened"),
    (["--source", "missing.mp4"], "missing.mp4: no such file"),
])
def test_bad_sources_are_messages_not_tracebacks(args, message, tmp_path):
    proc = subprocess.run(FERKIT + args + ["--no-window"], capture_output=True, text=True, timeout=60,
                          env=_env(), cwd=tmp_path)
    assert proc.returncode == 1
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_a_file_that_is_not_a_video(tmp_path):
    (tmp_path / "clip.mp4").write_text("not a video")
    proc = subprocess.run(FERKIT + ["--source", "clip.mp4", "--no-window"], capture_output=True, text=True,
                          timeout=60, env=_env(), cwd=tmp_path)
    assert proc.returncode == 1 and "clip.mp4: not a video" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.data
def test_window_without_a_display_says_what_to_do(clip):
    proc = subprocess.run(FERKIT + ["--source", str(clip.path)], capture_output=True, text=True, timeout=60, env=_env())
    assert proc.returncode == 1
    assert "no display" in proc.stderr and "--no-window" in proc.stderr and "Traceback" not in proc.stderr


def test_opencv_window_on_a_headless_build_says_how_to_get_one(monkeypatch):
    if opencv_has_gui():
        pytest.skip("this OpenCV has a GUI build: the headless message does not apply")
    monkeypatch.setenv("DISPLAY", ":0")
    with pytest.raises(GuiUnavailableError, match="pip uninstall -y opencv-python-headless"):
        open_window("x", backend="opencv")


# ---------------------------------------------------------------- a real window under Xvfb
@pytest.fixture(scope="module")
def xdisplay():
    """A private X server on a free display (Xvfb picks the number and tells it through -displayfd)."""
    missing = [tool for tool in ("Xvfb", "xdotool") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {' and '.join(missing)}: apt-get install -y xvfb xdotool")
    try:
        import tkinter  # noqa: F401
    except ImportError:
        if not opencv_has_gui():
            pytest.skip("no window toolkit: needs tkinter (apt-get install -y python3-tk) or an OpenCV GUI build")
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                              pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    with os.fdopen(read_fd) as fh:
        number = fh.readline().strip()
    assert number, "Xvfb did not start"
    yield f":{number}"
    server.terminate()
    server.wait(timeout=10)


def _window_id(display: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = subprocess.run(["xdotool", "search", "--name", "^ferkit live$"], capture_output=True, text=True,
                               env=_env(DISPLAY=display))
        if found.stdout.strip():
            return found.stdout.split()[0]
        time.sleep(0.3)
    raise AssertionError("the ferkit live window did not appear")


def _screenshot(display: str, window: str) -> np.ndarray:
    """The window's pixels (BGR), grabbed from the X server."""
    from PIL import ImageGrab

    geo = subprocess.run(["xdotool", "getwindowgeometry", "--shell", window], capture_output=True, text=True,
                         env=_env(DISPLAY=display), check=True).stdout
    g = dict(line.split("=") for line in geo.split())
    x, y, w, h = (int(g[k]) for k in ("X", "Y", "WIDTH", "HEIGHT"))
    shot = np.asarray(ImageGrab.grab(xdisplay=display).convert("RGB"))[y:y + h, x:x + w, ::-1]
    return np.ascontiguousarray(shot)


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("key", ["q", "Escape"])
def test_window_shows_faces_and_quits_on_key(clip, xdisplay, key, tmp_path):
    proc = subprocess.Popen(FERKIT + ["--source", str(clip.path), "--loop"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_env(DISPLAY=xdisplay))
    try:
        window = _window_id(xdisplay)
        shot = None
        for _ in range(40):   # wait until frames with both faces are on screen
            time.sleep(0.25)
            shot = _screenshot(xdisplay, window)
            if all(_has_colour(shot, EMOTION_COLORS_BGR[k], 8) for k in EMOTIONS):
                break
        # the picture itself (Tk: exactly the window; OpenCV's Qt window may add a status bar below it)
        assert shot is not None and shot.shape[0] >= HEIGHT and shot.shape[1] == WIDTH, f"window is {shot.shape}"
        shot = shot[:HEIGHT]
        cv2.imwrite(str(tmp_path / "live.png"), shot)
        # drawn content: every emotion's bar colour, the dark FPS band with white text, and the video itself
        for label in EMOTIONS:
            assert _has_colour(shot, EMOTION_COLORS_BGR[label], 8), f"no {label} bar in the window ({tmp_path / 'live.png'})"
        band = shot[0:24, 0:150]
        assert (band.max(axis=2) < 10).mean() > 0.5 and (band.min(axis=2) > 200).any()
        assert 40 < shot[200:480, :].mean() < 220
        subprocess.run(["xdotool", "windowfocus", "--sync", window, "key", key], env=_env(DISPLAY=xdisplay),
                       check=True, timeout=20)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    assert b"quit" in err and b"Traceback" not in err
