"""`ferkit batch` with the local engine: a generated folder of real-face photos (the public-domain astronaut in
examples/), face-free images, broken files, a video and a broken video; formats; manifests; resuming after
kill -9; a worker that dies."""
from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from ferkit import batch
from ferkit.batch.inputs import Chunk, Task, chunks, expand_inputs, is_sampled, plan
from ferkit.batch.local import local_engine
from ferkit.batch.output import read_rows, write_rows
from ferkit.batch.work import RecognizerSpec
from ferkit.recognizer import DEFAULT_MODEL
from tests.conftest import default_labels, small_face_photo

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "examples" / "astronaut.png"  # ships with the repository
VIDEO_FRAMES, VIDEO_FPS = 45, 15.0          # 3 s; at --fps 5 every 3rd frame is analysed: 15 frames
FACES = ["faces/a.jpg", "faces/b.png", "faces/sub/c.jpg"]
NO_FACE = ["blank.jpg", "noise.png", "thin.png"]
BROKEN = ["pdf.jpg", "empty.png", "bomb.png", "bad.mp4"]


def astronaut_frame(shift: int = 0, flip: bool = False) -> np.ndarray:
    """A 640x480 BGR photo with one face: the astronaut (512x512, face about 95 px) on a grey background."""
    img = cv2.imread(str(ASTRONAUT))
    assert img is not None, f"the sample photo is missing: {ASTRONAUT}"
    img = cv2.resize(img, (480, 480))
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[:, 40 + shift:520 + shift] = img[:, ::-1] if flip else img
    return frame


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A tiny PNG whose header announces 400 megapixels (a decompression bomb)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def make_inputs(root: Path, copies: int = 0) -> Path:
    """The test folder; `copies` extra face photos (copy_NN.jpg) for runs that must last a while."""
    (root / "faces" / "sub").mkdir(parents=True)
    cv2.imwrite(str(root / FACES[0]), astronaut_frame())
    cv2.imwrite(str(root / FACES[1]), astronaut_frame(60, flip=True))
    cv2.imwrite(str(root / FACES[2]), astronaut_frame(-30))
    for i in range(copies):
        cv2.imwrite(str(root / f"copy_{i:02d}.jpg"), astronaut_frame((i % 30) * 2 - 30))
    x = np.linspace(40, 200, 640, dtype=np.float32)[None, :] + np.linspace(0, 30, 480, dtype=np.float32)[:, None]
    cv2.imwrite(str(root / NO_FACE[0]), np.repeat(x.astype(np.uint8)[:, :, None], 3, 2))
    cv2.imwrite(str(root / NO_FACE[1]), np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8))
    (root / "pdf.jpg").write_bytes(b"%PDF-1.4 not a photo")
    (root / "empty.png").write_bytes(b"")
    (root / "bomb.png").write_bytes(png_bomb())
    (root / "bad.mp4").write_bytes(np.random.default_rng(1).integers(0, 255, 4000, dtype=np.uint8).tobytes())
    (root / "notes.txt.bak").write_text("not an input: unknown extension in a folder")
    cv2.imwrite(str(root / "thin.png"), np.full((2, 3000, 3), 100, np.uint8))   # an extreme aspect ratio
    for name, fourcc in (("clip.mp4", "mp4v"), ("cut.avi", "MJPG")):
        writer = cv2.VideoWriter(str(root / name), cv2.VideoWriter_fourcc(*fourcc), VIDEO_FPS, (640, 480))
        for i in range(VIDEO_FRAMES):
            writer.write(astronaut_frame(i * 2 - 40))
        writer.release()
    data = (root / "cut.avi").read_bytes()
    (root / "cut.avi").write_bytes(data[:int(len(data) * 0.6)])   # truncated: its index and last frames lost
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_inputs(tmp_path_factory.mktemp("batch_in"))


@pytest.fixture(scope="module")
def local_run(folder, tmp_path_factory):
    """One run of the local engine over the folder, 2 workers, small video segments (4 frames each)."""
    out = tmp_path_factory.mktemp("batch_out") / "results.jsonl"
    summary = batch.run([folder], out=out, workers=2, segment_samples=4)
    return out, summary, read_rows(out)[1]


def by_source(rows, folder):
    out = {}
    for r in rows:
        out.setdefault(os.path.relpath(r["source"], folder), []).append(r)
    return out


def test_local_engine_end_to_end(folder, local_run):
    out, summary, rows = local_run
    assert not Path(str(out) + ".parts").exists()
    got = by_source(rows, folder)
    assert "notes.txt.bak" not in got
    for name in FACES:  # the astronaut, smiling, and at times a false detection (Haar) beside her
        assert [r["face"] for r in got[name]] == list(range(len(got[name])))
        r = max(got[name], key=lambda r: r["detector_score"])
        assert r["status"] == "ok" and r["emotion"] == "happy" and r["frame"] is None
        assert 60 <= r["w"] <= 140 and 0 < r["detector_score"] <= 1 and r["model"] == DEFAULT_MODEL
        probs = [r[c] for c in r if c.startswith("prob_")]
        assert len(probs) == len(default_labels()) and abs(sum(probs) - 1) < 1e-4 and r["prob_happy"] == max(probs)
    for name in NO_FACE:
        assert [r["status"] for r in got[name]] == ["no_face"]
    for name in BROKEN:
        (r,) = got[name]
        assert r["status"] == "error" and name in r["message"], r
    assert "pixels, over the limit" in got["bomb.png"][0]["message"]
    video = got["clip.mp4"]
    frames = sorted({r["frame"] for r in video})
    assert frames == list(range(0, VIDEO_FRAMES, 3)) and [r["frame"] for r in video] == sorted(r["frame"] for r in video)
    assert {(r["frame"], r["time"]) for r in video} == {(f, round(f / VIDEO_FPS, 3)) for f in frames}
    assert all(r["status"] == "ok" and r["kind"] == "video" for r in video)
    top = {}
    for r in video:
        if r["detector_score"] > top.get(r["frame"], {"detector_score": -1})["detector_score"]:
            top[r["frame"]] = r
    assert all(r["emotion"] == "happy" for r in top.values())
    assert list(rows[0]) == batch.columns(default_labels())
    cut = got["cut.avi"]   # the frames before the damage analysed, then one error row per segment past it
    assert [r["frame"] for r in cut if r["status"] == "ok"][:3] == [0, 3, 6]
    errors = [r for r in cut if r["status"] == "error"]
    assert errors and "video ends at frame" in errors[0]["message"] and "truncated or damaged" in errors[-1]["message"]
    assert max(r["frame"] for r in cut if r["status"] == "ok") < errors[0]["frame"] < VIDEO_FRAMES
    assert summary.inputs == {"ok": 5, "no_face": 3, "error": 4}
    assert summary.faces == sum(r["status"] == "ok" for r in rows) >= 3 + 15
    assert summary.errors == 4 + len(errors) == sum(r["status"] == "error" for r in rows)
    assert summary.emotions["happy"] >= 18 and sum(summary.emotions.values()) == summary.faces
    assert summary.tasks_skipped == 0 and summary.rows == len(rows)


def test_video_segments_agree_with_one_pass(folder, local_run):
    """Segments start by seeking: the rows equal those of the whole video read in one task."""
    spec = RecognizerSpec()
    rec = spec.load()
    from ferkit.batch.work import process_chunk

    (task,) = plan([str(folder / "clip.mp4")], 5.0, segment_samples=1000)
    whole = process_chunk(rec, Chunk(0, (task,)), 5.0)[0][1]
    assert [r for r in local_run[2] if r["source"].endswith("clip.mp4")] == whole


def test_formats_hold_the_same_rows(local_run, tmp_path):
    pytest.importorskip("pyarrow")
    _, _, rows = local_run
    cols = list(rows[0])
    for ext in ("csv", "parquet", "jsonl"):
        write_rows(tmp_path / f"r.{ext}", rows, cols, tmp_path)
        got_cols, got = read_rows(tmp_path / f"r.{ext}")
        assert got_cols == cols and got == rows, ext
    import pyarrow.parquet as pq

    schema = pq.read_schema(tmp_path / "r.parquet")
    assert str(schema.field("frame").type) == "int64" and str(schema.field("prob_happy").type) == "double"


def test_inputs_manifests_glob_and_sampling(folder, tmp_path):
    (tmp_path / "list.txt").write_text(f"# photos\n{folder / FACES[0]}\n\nmissing.jpg\n")
    (tmp_path / "list.csv").write_text(f"id,file\n1,{folder / FACES[1]}\n2,{folder / 'clip.mp4'}\n")
    paths = list(expand_inputs([tmp_path / "list.txt", tmp_path / "list.csv", folder / FACES[0]], column="file"))
    assert paths == [str(folder / FACES[0]), str(tmp_path / "missing.jpg"), str(folder / FACES[1]),
                     str(folder / "clip.mp4")]
    with pytest.raises(ValueError, match="no column 'nope'; columns: id, file"):
        list(expand_inputs([tmp_path / "list.csv"], column="nope"))
    assert sorted(expand_inputs([folder], glob="*.png")) == sorted(str(folder / f) for f in
                                                                  ("bomb.png", "empty.png", "faces/b.png", "noise.png", "thin.png"))
    assert list(expand_inputs([folder], glob="faces/sub/*")) == [str(folder / FACES[2])]
    # 29.97 fps sampled at 5: one frame per 0.2 s of video, whichever segment reads it
    assert sum(is_sampled(i, 29.97, 5) for i in range(2997)) == 500
    tasks = list(plan([str(folder / "clip.mp4"), "x.jpg"], 5.0, segment_samples=4))
    assert [(t.start, t.stop, t.units) for t in tasks[:-1]] == [(0, 12, 4), (12, 24, 4), (24, 36, 4), (36, None, 3)]
    assert [len(c.tasks) for c in chunks([Task(i, f"{i}.jpg", "image") for i in range(5)], 2)] == [2, 2, 1]


def _run_cli(folder, out, *extra, **kw):
    # SIGINT back to its default in the child, as a terminal's foreground job has it: a test run started in the
    # background of a non-interactive shell (`.ci/run ... &`) inherits SIGINT ignored, and Ctrl-C would do nothing
    return subprocess.Popen([sys.executable, "-m", "ferkit.batch", str(folder), "--out", str(out), "--no-progress",
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kw)


def _wait_for_parts(proc, parts: Path, n: int) -> None:
    """Until `n` finished parts exist (the run is mid-way), the run has ended, or two minutes have passed."""
    deadline = time.monotonic() + 120
    while len(list(parts.glob("part-*"))) < n and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)


def _run_until_parts(tmp_path, out_name: str, copies: int, batch_size: int, n_parts: int):
    """The CLI on `copies` copies of the inputs, one worker, in its own session, once `n_parts` parts are written
    -> (its process, the input folder, the output path, the parts folder)."""
    folder = make_inputs(tmp_path / "in", copies=copies)
    out = tmp_path / out_name
    parts = Path(str(out) + ".parts")
    proc = _run_cli(folder, out, "--workers", "1", "--batch-size", str(batch_size), start_new_session=True)
    _wait_for_parts(proc, parts, n_parts)
    return proc, folder, out, parts


def test_resume_after_kill_9_matches_an_uninterrupted_run(tmp_path):
    proc, folder, out, parts = _run_until_parts(tmp_path, "killed.csv", 60, 2, 3)
    os.kill(proc.pid, signal.SIGKILL)   # the parent only: its worker sees the pipe close and exits
    _, dead_err = proc.communicate(timeout=120)  # until the worker, which shares its stderr, is gone too
    assert "Traceback" not in dead_err and "BrokenPipeError" not in dead_err, dead_err
    try:
        n_parts = len(list(parts.glob("part-*")))
        assert not out.exists() and n_parts >= 3, "the run ended before it could be killed mid-way"
        time.sleep(0.5)
        rerun = _run_cli(folder, out, "--workers", "2", "--batch-size", "2")
        _, err = rerun.communicate(timeout=300)
        assert rerun.returncode == 1, err   # error rows: the broken files
        assert "tasks already done" in err, err
        clean = _run_cli(folder, tmp_path / "clean.csv", "--workers", "2", "--batch-size", "2")
        _, err2 = clean.communicate(timeout=300)
        assert clean.returncode == 1, err2
        assert out.read_bytes() == (tmp_path / "clean.csv").read_bytes()
        assert not parts.exists()
        again = _run_cli(folder, out, "--batch-size", "2")   # everything is in the output: nothing to do, the same file
        _, err3 = again.communicate(timeout=300)
        assert "this run: 0 tasks" in err3 and out.read_bytes() == (tmp_path / "clean.csv").read_bytes()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)   # a worker still finishing its chunk
        except ProcessLookupError:
            pass


class CrashingSpec(RecognizerSpec):
    """A Recognizer whose worker process dies (os._exit) on any image 333 pixels wide."""

    def load(self):
        return _Crashing(super().load())


class _Crashing:
    def __init__(self, rec):
        self.rec, self.name, self.labels, self.detector = rec, rec.name, rec.labels, rec.detector

    def analyze(self, image):
        if image.shape[1] == 333:
            os._exit(7)
        return self.rec.analyze(image)


@pytest.mark.parametrize("chunk_size", [4, 1])  # 1: the worker dies with the next chunk already sent to it
def test_a_dead_worker_is_replaced_and_its_inputs_retried_once(folder, tmp_path, chunk_size):
    cv2.imwrite(str(tmp_path / "poison.png"), np.zeros((100, 333, 3), np.uint8))
    sources = [str(folder / FACES[0]), str(tmp_path / "poison.png"), str(folder / FACES[1]), str(folder / NO_FACE[0])]
    tasks = list(plan(sources))
    spec = CrashingSpec()
    got = {}
    for chunk, results in local_engine(list(chunks(tasks, chunk_size)), spec, 5.0, workers=1):
        got.update(results)
        time.sleep(0.3)  # a consumer as slow as writing a part: the worker dies on its next chunk meanwhile
    assert [r["status"] for r in got[sources[0]]] == ["ok"] and [r["status"] for r in got[sources[2]]] == ["ok"]
    assert [r["status"] for r in got[sources[3]]] == ["no_face"]
    (bad,) = got[sources[1]]
    assert bad["status"] == "error" and "died twice" in bad["message"] and "exit code 7" in bad["message"]


def test_ray_engine_without_ray_says_how_to_install(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    from ferkit.cli import main

    with pytest.raises(SystemExit) as e:   # through the CLI's one error path: a message and exit status 2
        main(["batch", str(folder / FACES[0]), "--out", str(tmp_path / "r.csv"), "--engine", "ray", "--no-progress"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("ferkit: ") and 'pip install "ferkit[ray]"' in err, err
    assert not (tmp_path / "r.csv").exists()


def test_settings_that_change_the_rows_refuse_old_parts(folder, tmp_path):
    out = tmp_path / "r.jsonl"
    Path(str(out) + ".parts").mkdir()
    Path(str(out) + ".parts", "settings.json").write_text('{"model": "ferplus"}')
    with pytest.raises(ValueError, match="unfinished run with other settings"):
        batch.run([folder / FACES[0]], out=out)
    with pytest.raises(ValueError, match="unknown output format"):
        batch.run([folder / FACES[0]], out=tmp_path / "r.xlsx")


def test_detect_side_finds_the_small_face_of_a_large_photo(tmp_path):
    """yunet's working size reaches the workers: a 16-px face in a 1280x960 photo is found at 1280, not at the
    default 640; it is one of the settings an unfinished run records; other detectors have none."""
    width = small_face_photo(tmp_path / "group.png")
    assert [r["status"] for r in batch.iter_rows([tmp_path / "group.png"], workers=1)] == ["no_face"]
    (row,) = batch.iter_rows([tmp_path / "group.png"], workers=1, detect_side=1280)
    assert row["status"] == "ok" and 600 <= row["x"] <= 600 + width and row["w"] < 30
    out = tmp_path / "r.jsonl"
    Path(str(out) + ".parts").mkdir()
    Path(str(out) + ".parts", "settings.json").write_text(f'{{"model": "{DEFAULT_MODEL}"}}')
    with pytest.raises(ValueError, match="detect_side: None then, 1280 now"):
        batch.run([tmp_path / "group.png"], out=out, detect_side=1280)
    with pytest.raises(ValueError, match="detect_side sets yunet's working size"):
        batch.run([tmp_path / "group.png"], out=tmp_path / "h.csv", detector="haar", detect_side=1280)


def test_provider_is_passed_to_load_recognizer():
    spec = RecognizerSpec(provider="cpu")
    assert spec.providers() == ["CPUExecutionProvider"]
    assert RecognizerSpec(provider="cuda").providers() == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert getattr(spec.load(), "providers", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_ctrl_c_keeps_finished_work_and_says_how_to_resume(tmp_path):
    proc, folder, out, parts = _run_until_parts(tmp_path, "r.jsonl", 80, 1, 1)
    os.killpg(proc.pid, signal.SIGINT)   # what Ctrl-C in a terminal sends: the whole foreground group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "rerun the same command to resume" in err, err
    assert list(parts.glob("part-*")) and not out.exists()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:   # the workers stopped with it (zombies are reaped by init within seconds)
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("processes of the interrupted run were still alive 20 s later")


def test_relative_inputs_are_resolved_on_the_driver(folder, tmp_path, monkeypatch):
    """Workers open absolute paths made on the driver (a Ray worker's directory is its node's); rows and messages
    keep each path as the user gave it; a manifest's relative entries are from its own folder."""
    monkeypatch.chdir(folder)
    (tmp_path / "list.txt").write_text(f"{folder / FACES[0]}\nmissing.jpg\n")
    tasks = list(plan(expand_inputs([FACES[1], "nope.jpg", tmp_path / "list.txt"])))
    assert [(t.source, t.file) for t in tasks] == [
        (FACES[1], str(folder / FACES[1])), ("nope.jpg", str(folder / "nope.jpg")),
        (str(folder / FACES[0]), str(folder / FACES[0])), (str(tmp_path / "missing.jpg"), str(tmp_path / "missing.jpg"))]
    from ferkit.batch.work import Described, process_chunk, stand_in

    (key, (row,)), = process_chunk(stand_in(Described("m", ["a"], "yunet")), Chunk(1, (tasks[1],)), 5.0)
    assert key == "nope.jpg" and row["message"] == "nope.jpg: no such file" and row["source"] == "nope.jpg"


def test_error_messages_hold_no_memory_addresses(tmp_path):
    """PIL says "cannot identify image file <_io.BytesIO object at 0x7f...>": the message column must be the same on
    every run of the same input. (ferkit's header checks now refuse most broken files before PIL sees them, so the
    error a decoder raises is given directly.)"""
    from ferkit.batch.work import Described, describe_error, process_chunk, stand_in

    (tmp_path / "broken.gif").write_bytes(b"GIF89a" + b"\0" * 5)
    (task,) = plan([str(tmp_path / "broken.gif")])
    ((_, (row,)),) = process_chunk(stand_in(Described("m", ["a"], "yunet")), Chunk(0, (task,)), 5.0)
    assert row["status"] == "error" and "truncated GIF" in row["message"] and "0x" not in row["message"], row
    pil = OSError("cannot identify image file <_io.BytesIO object at 0x7f3a2c1d9e40>")
    assert describe_error(task, pil) == f"{task.source}: cannot identify image file <_io.BytesIO>"


def _cli(*args) -> tuple[int, str]:
    """`ferkit batch ARGS` in a process of its own -> (exit status, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "ferkit.batch", *map(str, args), "--no-progress"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stderr


def test_a_finished_output_remembers_its_settings(folder, tmp_path):
    """Rerunning a finished output with other settings is refused, naming the difference (exit 2), rather than
    answering from the old rows; --overwrite starts again; the same settings find everything done (exit 0)."""
    out = tmp_path / "r.jsonl"
    code, err = _cli(folder / FACES[0], "--out", out, "--fps", "5")
    assert code == 0 and "wrote 1 rows" in err, err
    assert Path(str(out) + ".settings.json").is_file() and not Path(str(out) + ".lock").exists()
    before = out.read_bytes()
    code, err = _cli(folder / FACES[0], "--out", out, "--fps", "2")
    assert code == 2 and "was made with other settings (fps: 5.0 then, 2.0 now)" in err and "--overwrite" in err, err
    code, err = _cli(folder / FACES[0], "--out", out, "--detector", "haar")
    assert code == 2 and "detector: 'yunet' then, 'haar' now" in err, err
    assert out.read_bytes() == before
    code, err = _cli(folder / FACES[0], "--out", out, "--fps", "5")
    assert code == 0 and "this run: 0 tasks" in err, err
    code, err = _cli(folder / FACES[0], "--out", out, "--fps", "2", "--overwrite")
    assert code == 0 and "this run: 1 tasks" in err, err
    import json

    settings = json.loads(Path(str(out) + ".settings.json").read_text())
    assert settings["fps"] == 2.0 and settings["model"] == DEFAULT_MODEL and "detect_side" in settings


def test_retry_errors_analyses_the_error_rows_again(folder, tmp_path):
    late = tmp_path / "late.jpg"
    out = tmp_path / "r.csv"
    summary = batch.run([folder / FACES[0], late], out=out, workers=1)
    assert summary.errors == 1
    late.write_bytes((folder / FACES[0]).read_bytes())   # the missing file arrives
    again = batch.run([folder / FACES[0], late], out=out, workers=1)
    assert again.tasks_done == 0 and again.errors == 1   # error rows count as done ...
    fixed = batch.run([folder / FACES[0], late], out=out, workers=1, retry_errors=True)
    assert fixed.tasks_done == 1 and fixed.errors == 0   # ... unless asked: only the error rows' inputs again
    rows = read_rows(out)[1]
    assert [(r["source"], r["status"]) for r in rows] == [(str(folder / FACES[0]), "ok"), (str(late), "ok")]


def test_output_that_cannot_be_written_exits_6_and_leaves_nothing(folder, tmp_path):
    code, err = _cli(folder / FACES[0], "--out", tmp_path / "missing" / "r.csv")
    assert code == 6 and "the folder" in err and "does not exist" in err, err
    assert not (tmp_path / "missing").exists()   # never made silently
    (tmp_path / "file").write_text("a file")
    code, err = _cli(folder / FACES[0], "--out", tmp_path / "file" / "r.csv")
    assert code == 6 and "is a file, not a folder" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_second_run_into_the_same_out_is_refused(tmp_path):
    proc, folder, out, parts = _run_until_parts(tmp_path, "twin.csv", 40, 1, 1)
    try:
        assert proc.poll() is None, "the first run ended before the second started"
        code, err = _cli(folder, "--out", out, "--workers", "1")
        assert code == 6 and f"PID {proc.pid}" in err and "being written by another" in err, err
        assert proc.poll() is None and parts.is_dir()   # the first goes on, its parts untouched
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    code, err = _cli(folder, "--out", out, "--workers", "2", "--batch-size", "1")   # the lock died with its holder
    assert code == 1 and "tasks already done" in err, err


def test_a_full_disk_stops_the_run_with_exit_6_naming_the_file(folder, tmp_path):
    """The output's file system fills mid-run (a 24 KB tmpfs, mounted in a mount namespace of the run's own): exit 6,
    the file that could not be written named, the parts written before it kept."""
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare --mount is not allowed here: {probe.stderr.decode().strip()}")
    small = tmp_path / "small"
    small.mkdir()
    script = (f"mount -t tmpfs -o size=24k none {small} && {sys.executable} -m ferkit.batch {folder} --out "
              f"{small}/r.jsonl --workers 1 --batch-size 1 --no-progress; code=$?; ls {small}/r.jsonl.parts; exit $code")
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 6, proc.stderr
    assert "cannot write (No space left on device)" in proc.stderr and "rerun the same command" in proc.stderr, \
        proc.stderr
    assert "settings.json" in proc.stdout and "part-" in proc.stdout, proc.stdout   # what was finished stays


def test_recorded_settings_follow_every_field_of_the_spec():
    """A field added to RecognizerSpec (a tuple of features, say) is recorded and compared without a change here;
    a tuple reads back from JSON as a list and still compares equal; an older record without the field matches
    while the field keeps its empty default."""
    import dataclasses
    import json

    from ferkit.batch.api import run_settings
    from ferkit.batch.output import settings_difference

    @dataclasses.dataclass(frozen=True)
    class WithFeatures(RecognizerSpec):
        features: tuple = ()

    describe = ("fer2013", ["happy"], "yunet")
    mesh = run_settings(WithFeatures(features=("mesh", "pose")), describe, 5.0, 16, 50)
    assert mesh["features"] == ("mesh", "pose") and mesh["detect_side"] == 640 and mesh["fps"] == 5.0  # as yunet uses it
    recorded = json.loads(json.dumps(mesh))
    assert settings_difference(recorded, mesh) == ""
    plain = run_settings(WithFeatures(), describe, 5.0, 16, 50)
    assert settings_difference(recorded, plain) == "features: ['mesh', 'pose'] then, [] now"
    older = {k: v for k, v in recorded.items() if k != "features"}
    assert settings_difference(older, plain) == "" and settings_difference(older, mesh) != ""


def test_the_default_detect_side_given_explicitly_is_not_a_changed_setting(tmp_path):
    """Settings are compared as the detector uses them: --detect-side 640 (yunet's default) and none are one
    setting, and a record an older ferkit wrote with none (null) matches 640 too; 1280 differs."""
    import json

    from ferkit.batch.api import run_settings
    from ferkit.batch.output import settings_difference

    describe = ("fer2013", ["happy"], "yunet")
    left_out = json.loads(json.dumps(run_settings(RecognizerSpec(), describe, 5.0, 16, 50)))
    given = run_settings(RecognizerSpec(detect_side=640), describe, 5.0, 16, 50)
    assert settings_difference(left_out, given) == "" and settings_difference({**left_out, "detect_side": None}, given) == ""
    assert settings_difference(left_out, run_settings(RecognizerSpec(detect_side=1280), describe, 5.0, 16, 50)) == \
        "detect_side: 640 then, 1280 now"
    out = tmp_path / "r.csv"
    assert batch.run([ASTRONAUT], out=out, workers=1).faces == 1
    assert batch.run([ASTRONAUT], out=out, workers=1, detect_side=640).tasks_skipped == 1  # found done, not refused


def test_manifest_entries_are_tidied_only_where_that_names_the_same_file(tmp_path, monkeypatch):
    """lists/../broken/x.png is broken/x.png in the source column and the messages; through a symbolic link a `..`
    goes to the link target's parent, so such an entry is kept as written, and the file a worker opens is the one
    the kernel finds."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lists").mkdir()
    (tmp_path / "deep" / "inner").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "deep" / "y.png"), np.full((8, 8, 3), 90, np.uint8))
    (tmp_path / "lists" / "link").symlink_to(tmp_path / "deep" / "inner")
    (tmp_path / "lists" / "list.txt").write_text("../broken/x.png\nlink/../y.png\n./z.png\n")
    paths = list(expand_inputs(["lists/list.txt"]))
    assert paths == ["broken/x.png", "lists/link/../y.png", "lists/z.png"]
    tasks = list(plan(paths))
    assert [t.file for t in tasks] == [str(tmp_path / "broken" / "x.png"), str(tmp_path / "lists/link/../y.png"),
                                       str(tmp_path / "lists" / "z.png")]
    assert os.path.isfile(tasks[1].file)  # deep/y.png, through the link
    (row,) = [r for r in batch.iter_rows(["lists/list.txt"], workers=1) if r["source"] == "broken/x.png"]
    assert row["status"] == "error" and row["message"] == "broken/x.png: no such file"


def test_a_rerun_keeps_plan_order_and_puts_inputs_no_longer_given_last(tmp_path):
    """The earlier OUT's rows come where their input now is in the plan, its inputs no longer given after all the
    others, in their order; only the new input is analysed; the summary counts every input of the output once."""
    a, b, c, d = (str(tmp_path / f"{n}.jpg") for n in "abcd")   # missing files: error rows, no analysis
    out = tmp_path / "r.jsonl"
    first = batch.run([a, b, c], out=out, workers=1)
    assert [r["source"] for r in read_rows(out)[1]] == [a, b, c] and first.inputs == {"error": 3}
    again = batch.run([c, d, a], out=out, workers=1)
    assert [r["source"] for r in read_rows(out)[1]] == [c, d, a, b]
    assert (again.tasks_done, again.tasks_skipped, again.inputs, again.rows) == (1, 2, {"error": 4}, 4)


_PEAK = """
import sys
from ferkit import batch
if __name__ == "__main__":
    batch.run(sys.argv[1:-1], out=sys.argv[-1], workers=1, batch_size=64)
    print([int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmHWM")][0] // 1024)
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak RSS (VmHWM) from /proc")
def test_the_drivers_memory_does_not_grow_with_the_manifest(tmp_path):
    """Peak RSS of a fresh driver process for a manifest of 40,000 entries against one of 4,000 (missing files:
    error rows, the driver's own work of planning, writing parts, combining), then for the rerun of each with one
    more input (the earlier OUT's rows read back, every task skipped but one). The driver used to keep the plan,
    the index of finished tasks and the per-input status in memory (+13 MB here, first run) and the earlier OUT's
    rows as dicts (+62 MB, rerun); it keeps them on disk now (ledger.py: +3 and +2 MB, measured on a loaded
    2-core Xeon)."""
    peaks = {}
    for n in (4000, 40000):
        manifest = tmp_path / f"m{n}.txt"
        manifest.write_text("".join(f"{tmp_path}/missing/p{i:06d}.jpg\n" for i in range(n)))
        out = tmp_path / f"r{n}.csv"
        for step, extra in (("first", []), ("rerun", [str(tmp_path / "late.jpg")])):
            done = subprocess.run([sys.executable, "-c", _PEAK, str(manifest), *extra, str(out)], capture_output=True,
                                  text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
            assert done.returncode == 0, done.stderr[-3000:]
            peaks[n, step] = int(done.stdout.split()[-1])
        assert len(read_rows(out)[1]) == n + 1
    for step in ("first", "rerun"):
        assert peaks[40000, step] - peaks[4000, step] < 8, peaks   # MB
