"""A real ferkit server (uvicorn on a free loopback port, in a thread) and real FER-2013 face images for the tests."""
from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import pytest
from ferkit.scenes import scene  # noqa: F401  (re-exported: the server tests import it from here)
from tests.conftest import pad_face

from ferkit import EMOTIONS

# Small limits so the "too large" tests send little data; the defaults are tested in test_settings.py.
TEST_LIMITS = dict(max_upload_bytes=1_500_000, max_pixels=4_000_000, max_frame_bytes=150_000,
                   max_frame_pixels=1_000_000, ws_max_message_bytes=1_000_000)


class _ErrorLog(logging.Handler):
    """Collects ERROR records from uvicorn and the app: an unhandled exception in a request shows up here."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@dataclass
class RunningServer:
    url: str
    ws_url: str
    settings: object
    errors: _ErrorLog
    server: object = field(repr=False)

    def error_messages(self) -> list[str]:
        return [r.getMessage() + (f" {r.exc_info[1]!r}" if r.exc_info else "") for r in self.errors.records]


def start_server(configure=None, uvicorn_overrides=None, bind_port=0, **settings_overrides):
    """Start create_app(Settings(...)) under uvicorn on 127.0.0.1:<free port>, as `ferkit serve` runs it;
    `configure(app)` may add routes first; `uvicorn_overrides` replaces uvicorn options (a protocol class with
    shorter timers); `bind_port`: a fixed port (to restart on the same one). -> (RunningServer, stop())."""
    import uvicorn

    from ferkit.server import Settings, create_app
    from ferkit.server.protocols import uvicorn_options

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", bind_port))
    port = sock.getsockname()[1]
    settings = Settings(host="127.0.0.1", port=port, **settings_overrides)
    app = create_app(settings)
    if configure is not None:
        configure(app)
    config = uvicorn.Config(app, **{**uvicorn_options(settings), **(uvicorn_overrides or {})}, timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    errors = _ErrorLog()
    for name in ("uvicorn.error", "uvicorn.asgi", "fastapi", "ferkit"):
        logging.getLogger(name).addHandler(errors)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the ferkit server did not start")
        time.sleep(0.02)

    def stop():
        server.should_exit = True
        thread.join(10)
        sock.close()
        for name in ("uvicorn.error", "uvicorn.asgi", "fastapi", "ferkit"):
            logging.getLogger(name).removeHandler(errors)

    running = RunningServer(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", settings, errors, server)
    return running, stop


@pytest.fixture(scope="session")
def server():
    running, stop = start_server(**TEST_LIMITS)
    yield running
    stop()


@pytest.fixture()
def http(server):
    import httpx

    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


# ---------------------------------------------------------------- made-up files
def png_chunk(kind: bytes, data: bytes, length: int | None = None) -> bytes:
    """One PNG chunk; `length` overrides the declared length (a lie), the CRC stays right for the data."""
    import struct
    import zlib

    return struct.pack(">I", len(data) if length is None else length) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(width: int, height: int, idat_length: int | None = None) -> bytes:
    """A grey PNG whose IHDR says width x height, with one row of pixel data (enough to read its header)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(bytes(min(width, 64) + 1)), idat_length) + png_chunk(b"IEND", b""))


# ---------------------------------------------------------------- real faces
def encode(image: np.ndarray, ext: str = ".png", quality: int = 90) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext == ".jpg" else []
    ok, buf = cv2.imencode(ext, image, params)
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="session")
def faces_by_emotion(detectable_faces):
    """{label: [48x48 faces]} of PrivateTest faces the Haar cascade finds once padded."""
    faces, labels = detectable_faces
    return {name: faces[labels == i] for i, name in enumerate(EMOTIONS)}


@pytest.fixture(scope="session")
def face_image(detectable_faces) -> np.ndarray:
    """One real FER-2013 face, padded so the detector finds it: (H, W) grey."""
    return pad_face(detectable_faces[0][0])


@pytest.fixture(scope="session")
def face_png(face_image) -> bytes:
    return encode(face_image)


@pytest.fixture(scope="session")
def face_jpeg(face_image) -> bytes:
    return encode(cv2.cvtColor(face_image, cv2.COLOR_GRAY2BGR), ".jpg")




def detectable_scenes(faces48, detector, **scene_args):
    """The scenes (and indices) of those faces that the detector finds exactly once, also after JPEG coding."""
    for i, f in enumerate(faces48):
        img = scene(f, **scene_args)
        jpeg = cv2.imdecode(np.frombuffer(encode(img, ".jpg", 80), np.uint8), cv2.IMREAD_COLOR)
        if len(detector.detect(img)[0]) == 1 and len(detector.detect(jpeg)[0]) == 1:
            yield i, img


@pytest.fixture(scope="session")
def frame_jpeg(detectable_faces) -> bytes:
    """A 320x240 camera-like JPEG frame with one real FER face that live mode's detector finds."""
    from ferkit.detect import create_detector
    from ferkit.server import Settings

    _, img = next(detectable_scenes(detectable_faces[0], create_detector(Settings().live_detector_name)))
    return encode(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), ".jpg", 80)


@pytest.fixture(scope="session")
def astronaut_jpeg() -> bytes:
    """The example photo in the repo (one face) as a camera-like JPEG frame: needs no FER-2013, so the tests that use
    it run on a bare clone too."""
    from tests.conftest import ROOT

    return encode(cv2.imread(str(ROOT / "examples" / "astronaut.png")), ".jpg", 85)


@pytest.fixture(scope="session")
def no_face_png() -> bytes:
    """A smooth gradient: an image, but with nothing face-like in it."""
    x = np.linspace(40, 200, 320, dtype=np.float32)
    return encode(np.tile(x, (240, 1)).astype(np.uint8))


# ---------------------------------------------------------------- long live sessions, in the background
class LongLiveSessions:
    """Plain WebSocket clients holding live sessions for `seconds` against their own servers (features off and
    `all`), one frame every `interval` s, counting answers per 10 s window. Started at the beginning of the server
    tests (so three minutes of wall time overlap the other tests), checked by test_websocket_sessions.py (named to run after the other server tests, so they overlap)."""

    def __init__(self, frame: bytes, seconds: int = 180, interval: float = 0.2):
        self.frame, self.seconds, self.interval = frame, seconds, interval
        self.report: dict[str, list[int]] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads, self._stops = [], []

    def start(self) -> None:
        for name, features in (("features off", ""), ("features all", "all")):
            running, stop = start_server(features=features, **TEST_LIMITS)
            self._stops.append(stop)
            t = threading.Thread(target=self._client, args=(name, running.ws_url), daemon=True)
            t.start()
            self._threads.append(t)

    def _client(self, name: str, ws_url: str) -> None:
        import json

        from websockets.sync.client import connect

        windows = [0] * (self.seconds // 10)
        self.report[name] = windows
        try:
            with connect(f"{ws_url}/api/v1/live", max_size=None, open_timeout=30) as ws:
                json.loads(ws.recv(timeout=30))
                start = time.monotonic()
                while not self._stop.is_set():
                    now = time.monotonic() - start
                    if now >= self.seconds:
                        return
                    ws.send(self.frame)
                    msg = json.loads(ws.recv(timeout=30))
                    if msg["type"] == "result" and msg["faces"]:
                        windows[min(int((time.monotonic() - start) // 10), len(windows) - 1)] += 1
                    time.sleep(self.interval)
        except Exception as e:  # noqa: BLE001  (the test reports it)
            self.errors.append(f"{name}: {type(e).__name__}: {e}")

    def wait(self) -> dict[str, list[int]]:
        for t in self._threads:
            t.join(self.seconds + 120)
        assert not self.errors, self.errors
        return self.report

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(40)
        for stop in self._stops:
            stop()


@pytest.fixture(scope="session")
def long_live_sessions(_long_live_sessions_started):
    if _long_live_sessions_started is None:
        pytest.skip("not started")  # cannot happen: started whenever the test that uses it is collected
    return _long_live_sessions_started


@pytest.fixture(scope="session", autouse=True)
def _long_live_sessions_started(request):
    """Starts the long sessions with the first server test, when the test that checks them will run."""
    wanted = any(item.name == "test_three_minute_sessions_answer_throughout" for item in request.session.items)
    if not wanted:
        yield None
        return
    sessions = LongLiveSessions(request.getfixturevalue("astronaut_jpeg"))
    sessions.start()
    yield sessions
    sessions.close()
