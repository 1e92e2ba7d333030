"""The analysis pool (server.pool, server.worker) under a real `ferkit serve`: cost bounded by the photo, not by its
content (a face cap, memory handed back), a worker killed mid-request, a full queue, small uploads ahead of large."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import httpx
import numpy as np
import pytest

from tests.conftest import ROOT

from .conftest import TEST_LIMITS, start_server


def _tree(pid: int) -> list[int]:
    """The server process and its children (the analysis workers)."""
    pids = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1]) == pid:
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def _cpu_seconds(pids) -> float:
    total = 0.0
    for p in pids:
        try:
            fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _rss_mb(pids) -> float:
    total = 0
    for p in pids:
        try:
            total += next(int(l.split()[1]) for l in open(f"/proc/{p}/status") if l.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return total / 1024


@pytest.fixture(scope="module")
def crowd_jpeg() -> bytes:
    """576 faces (the example photo's face, 64 px, in a 24 x 24 grid): a 1536x1536 JPEG of about 560 KB."""
    img = cv2.imread(str(ROOT / "examples" / "astronaut.png"))
    face = img[11:227, 117:333]  # the face with a margin (YuNet's box is 171, 65, 108, 108)
    tile = cv2.resize(face, (64, 64), interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", np.tile(tile, (24, 24, 1)), [cv2.IMWRITE_JPEG_QUALITY, 70])
    return jpeg.tobytes()


@pytest.fixture(scope="module")
def served_with_every_feature():
    """`ferkit serve --features all` in its own process (so its CPU time and memory can be read from /proc)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "ferkit", "serve", "--port", str(port), "--features", "all"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=2).json().get("model_loaded"):
                break
        except (httpx.HTTPError, ValueError):
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "ferkit serve did not start"
        time.sleep(0.3)
    photo = (ROOT / "examples" / "astronaut.png").read_bytes()
    for _ in range(4):  # every worker has loaded and warmed up (a worker loads in the background after start)
        assert httpx.post(url + "/api/v1/analyze", files={"file": ("a.png", photo)}, timeout=60).status_code == 200
    time.sleep(3)
    yield proc, url
    proc.terminate()
    proc.wait(30)


def test_a_photo_of_576_faces_costs_what_100_do_and_hands_its_memory_back(served_with_every_feature, crowd_jpeg):
    """The red team's photo: 13.5 s of CPU and +3.7 GB (3.4 GB kept) before the cap and the worker processes. Now at
    most max_faces (100) faces, the largest, are analysed; the answer counts the rest; at most 2 s of CPU in all the
    server's processes; memory back within +300 MB once answered. Then four at once, likewise."""
    proc, url = served_with_every_feature
    pids = _tree(proc.pid)
    rss0, cpu0 = _rss_mb(pids), _cpu_seconds(pids)
    r = httpx.post(url + "/api/v1/analyze", files={"file": ("crowd.jpg", crowd_jpeg, "image/jpeg")}, timeout=120)
    cpu = _cpu_seconds(_tree(proc.pid)) - cpu0
    assert r.status_code == 200, r.text[:300]
    answer = r.json()
    assert len(answer["faces"]) == 100 and answer["faces_left_out"] == 476
    assert all("action_units" in f and "head_pose" in f for f in answer["faces"])
    assert cpu <= 2.0, f"{cpu:.2f} s of CPU for one photo"
    time.sleep(1)  # a worker that grew is replaced after its answer: let the replacement load
    assert _rss_mb(_tree(proc.pid)) - rss0 <= 300

    pids = _tree(proc.pid)
    cpu0 = _cpu_seconds(pids)
    with ThreadPoolExecutor(4) as ex:
        answers = list(ex.map(lambda _: httpx.post(url + "/api/v1/analyze", timeout=120,
                                                   files={"file": ("crowd.jpg", crowd_jpeg, "image/jpeg")}), range(4)))
    cpu = _cpu_seconds(_tree(proc.pid)) - cpu0
    assert [a.status_code for a in answers] == [200] * 4
    assert cpu <= 4 * 2.0, f"{cpu:.2f} s of CPU for four photos"
    deadline = time.monotonic() + 30  # replaced workers load their models again: wait for them to settle
    while _rss_mb(_tree(proc.pid)) - rss0 > 300 and time.monotonic() < deadline:
        time.sleep(1)
    assert _rss_mb(_tree(proc.pid)) - rss0 <= 300


def test_a_worker_killed_mid_request_is_answered_in_words_and_replaced(face_png):
    apps = []
    running, stop = start_server(configure=apps.append, workers=1, **TEST_LIMITS)
    pool = apps[0].state.pool
    try:
        (pid,) = pool.pids()
        os.kill(pid, signal.SIGSTOP)  # held, so that the upload is surely in the worker when it dies
        answer: list[httpx.Response] = []
        t = threading.Thread(target=lambda: answer.append(httpx.post(
            f"{running.url}/api/v1/analyze", files={"file": ("face.png", face_png, "image/png")}, timeout=60)))
        t.start()
        deadline = time.monotonic() + 10
        while not pool._busy[0] and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # the job's bytes are in the pipe
        os.kill(pid, signal.SIGKILL)
        t.join(60)
        r = answer[0]
        assert r.status_code == 503 and r.headers["retry-after"]
        assert "face.png" in r.json()["detail"] and "worker stopped" in r.json()["detail"]
        for _ in range(3):  # the next ones succeed, on a fresh worker
            ok = httpx.post(f"{running.url}/api/v1/analyze", files={"file": ("face.png", face_png, "image/png")},
                            timeout=120)
            assert ok.status_code == 200 and len(ok.json()["faces"]) == 1
        assert pool.pids() != [pid] and pool.replaced == 1
    finally:
        stop()
    assert running.error_messages() == []


def test_a_full_queue_is_a_503_with_retry_after_and_small_uploads_go_first(face_png):
    """One worker, a queue of 3. While the worker is held: a large upload runs, two more large ones and a small one
    wait; a fifth is refused at once. Let go, the small one is answered before the large ones that came first."""
    apps = []
    running, stop = start_server(configure=apps.append, workers=1, max_queue=3,
                                 **{**TEST_LIMITS, "max_upload_bytes": 3_000_000, "max_pixels": 8_000_000})
    pool = apps[0].state.pool
    rng = np.random.default_rng(0)
    noise = (rng.random((600, 800, 3)) * 255).astype(np.uint8)  # noise: a PNG of it is over 1 MB (a "large" upload)
    large = cv2.imencode(".png", noise)[1].tobytes()
    assert len(large) > 1_000_000
    done: list[tuple[str, int]] = []

    def send(name, data):
        r = httpx.post(f"{running.url}/api/v1/analyze", files={"file": (name, data, "image/png")}, timeout=120)
        done.append((name, r.status_code))

    (pid,) = pool.pids()
    threads = []
    try:
        os.kill(pid, signal.SIGSTOP)
        for name, data, waiting in (("large-1", large, 0), ("large-2", large, 1), ("large-3", large, 2),
                                    ("small", face_png, 3)):
            t = threading.Thread(target=send, args=(name, data))
            t.start()
            threads.append(t)
            deadline = time.monotonic() + 10
            while not (len(pool._waiting) == waiting and pool._busy[0]) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(pool._waiting) == waiting and pool._busy[0]
        refused = httpx.post(f"{running.url}/api/v1/analyze", files={"file": ("f.png", face_png, "image/png")}, timeout=10)
        assert refused.status_code == 503 and int(refused.headers["retry-after"]) > 0
        assert "busy" in refused.json()["detail"]
    finally:
        os.kill(pid, signal.SIGCONT)
        for t in threads:
            t.join(120)
        stop()
    assert [name for name, _ in done] == ["large-1", "small", "large-2", "large-3"]
    assert all(code == 200 for _, code in done)


def test_the_largest_valid_photo_passes_every_worker_limit(served_with_every_feature):
    """The longest legitimate job the worker's limits touch: a 36-megapixel JPEG (6000x6000, under the default
    10 MB and 40 MP limits) with every face feature on is decoded within decode_cpu_seconds, analysed within
    analysis_cpu_seconds and the worker's address-space limit (a limit hit would be a 413), and answered with its face."""
    proc, url = served_with_every_feature
    img = cv2.resize(cv2.imread(str(ROOT / "examples" / "astronaut.png")), (6000, 6000), interpolation=cv2.INTER_CUBIC)
    jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
    assert len(jpeg) < 10_000_000
    r = httpx.post(url + "/api/v1/analyze", files={"file": ("big.jpg", jpeg, "image/jpeg")}, timeout=120)
    assert r.status_code == 200, r.text[:300]
    answer = r.json()
    assert answer["image"] == {"width": 6000, "height": 6000}
    assert len(answer["faces"]) == 1 and answer["faces"][0]["emotion"] == "happy" and "head_pose" in answer["faces"][0]
