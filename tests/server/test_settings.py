"""Settings defaults and validation, and `ferkit serve` as a user starts it (a real process on a free port)."""
from __future__ import annotations

import json

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest


def test_defaults_match_the_documentation():
    from ferkit.server import Settings

    s = Settings()
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.max_upload_bytes == 10_000_000
    assert s.max_pixels == 40_000_000
    from ferkit.recognizer import load_recognizer
    import inspect

    assert s.detector == inspect.signature(load_recognizer).parameters["detector"].default  # the library's default
    assert (s.allowed_hosts, s.allowed_origins) == ([], [])  # loopback names and same-origin pages only


def test_settings_from_the_environment(monkeypatch):
    from ferkit.server import Settings

    monkeypatch.setenv("FERKIT_MAX_UPLOAD_BYTES", "12345")
    assert Settings().max_upload_bytes == 12345
    with pytest.raises(ValueError, match="port"):
        Settings(port=70000)


def test_detectors_are_checked_where_the_settings_are_built(monkeypatch):
    from ferkit.server import Settings

    assert Settings().live_detector_name == "yunet" == Settings().detector  # YuNet for uploads and live mode
    assert Settings(detector="haar-alt2", live_detector=None).live_detector_name == "haar-alt2"
    with pytest.raises(ValueError, match="unknown detector 'eyes'; valid: .*haar"):
        Settings(detector="eyes")
    monkeypatch.setenv("FERKIT_LIVE_DETECTOR", "yolo")
    with pytest.raises(ValueError, match="unknown detector 'yolo'"):
        Settings()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ferkit_serve_prints_the_url_and_serves():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ferkit", "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "ferkit serve did not come up"
                time.sleep(0.1)
        assert r.json()["model_loaded"] is True
        assert "ferkit" in httpx.get(f"http://127.0.0.1:{port}/").text
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("args, code, words", [
    (["--port", "70000"], 2, ["port=70000", "65535"]),
    (["--max-upload-bytes", "0"], 2, ["max_upload_bytes=0"]),
    (["--model", "nope"], 2, ["unknown model 'nope'", "fer2013"]),   # bad usage, as for --detector (issue 28)
    (["--model", "missing.onnx"], 1, ["missing.onnx"]),
    (["--detector", "eyes"], 2, ["detector='eyes'", "unknown detector 'eyes'", "haar"]),
    (["--live-detector", "yolo"], 2, ["live_detector='yolo'", "unknown detector 'yolo'", "yunet"]),
    (["--detect-side", "16"], 2, ["detect_side=16", "32"]),
    (["--detector", "haar", "--detect-side", "320"], 2, ["detect_side sets yunet's working size", "haar"]),
])
def test_ferkit_serve_rejects_bad_settings(args, code, words):
    r = subprocess.run([sys.executable, "-m", "ferkit", "serve", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == code, r.stderr
    for w in words:
        assert w in r.stderr
    assert "Traceback" not in r.stderr


def test_info_reports_the_model_card_accuracy(tmp_path):
    """A model with a metrics file beside it: /api/v1/info passes its test accuracy on."""
    import json
    import shutil

    from ferkit.recognizer import resolve_model

    from .conftest import start_server

    model = tmp_path / "card.onnx"
    shutil.copy(resolve_model(None), model)
    (tmp_path / "card.metrics.json").write_text(json.dumps({"test_accuracy": 0.7123, "test_set": "FER-2013 PrivateTest"}))
    running, stop = start_server(model=str(model))
    try:
        info = httpx.get(f"{running.url}/api/v1/info", timeout=10).json()
    finally:
        stop()
    assert info["test_accuracy"] == pytest.approx(0.7123)
    assert info["metrics"]["test_set"] == "FER-2013 PrivateTest"
    assert info["model"]["file"] == "card.onnx"


def _parent_pid(pid: int) -> int | None:
    try:
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def test_serve_with_two_worker_processes_answers_uploads(tmp_path):
    """`ferkit serve --workers 2`: two analysis worker processes, each running ONNX Runtime on its share of the
    cores, behind one event loop that keeps the HTTP limits (here a non-default max_upload_bytes)."""
    import socket
    import subprocess
    import sys
    import time

    import httpx

    from tests.conftest import ROOT

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "ferkit", "serve", "--port", str(port), "--workers", "2",
                             "--max-upload-bytes", "900000"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json().get("model_loaded"):
                    break
            except (httpx.HTTPError, ValueError):
                time.sleep(0.5)
        photo = (ROOT / "examples" / "astronaut.png").read_bytes()
        r = httpx.post(f"http://127.0.0.1:{port}/api/v1/analyze", files={"file": ("a.png", photo, "image/png")}, timeout=30)
        assert r.status_code == 200 and r.json()["faces"][0]["emotion"] == "happy"
        big = httpx.post(f"http://127.0.0.1:{port}/api/v1/analyze", content=b"\0" * 950_000,
                         headers={"content-type": "image/png"}, timeout=30)
        assert big.status_code == 413
        # with no --threads, each of the 2 workers runs ONNX Runtime on its share of the cores
        children = [int(p) for p in os.listdir("/proc") if p.isdigit() and _parent_pid(int(p)) == proc.pid]
        commands = [open(f"/proc/{c}/cmdline", "rb").read().split(b"\0") for c in children]
        workers = [json.loads(c[3]) for c in commands if c[1:3] == [b"-m", b"ferkit.server.worker"]]
        from ferkit.batch.local import default_workers

        assert len(workers) == 2 and all(w["threads"] == max(1, default_workers() // 2) for w in workers), workers
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert subprocess.run([sys.executable, "-m", "ferkit", "serve", "--workers", "0"], capture_output=True).returncode == 2


def test_detect_side_sets_yunets_working_size_for_uploads(tmp_path):
    """A 16-px face in a 1280x960 upload: below what yunet finds at its default 640, found with detect_side=1280."""
    from tests.conftest import small_face_photo

    from .conftest import start_server

    small_face_photo(tmp_path / "group.png")
    data = (tmp_path / "group.png").read_bytes()
    found = {}
    for side in (None, 1280):
        running, stop = start_server(**({"detect_side": side} if side else {}))
        try:
            r = httpx.post(f"{running.url}/api/v1/analyze", files={"file": ("group.png", data, "image/png")}, timeout=30)
            assert r.status_code == 200, r.text
            found[side] = [f["box"] for f in r.json()["faces"]]
        finally:
            stop()
    assert found[None] == []
    assert len(found[1280]) == 1 and 580 < found[1280][0]["x"] < 640
