"""Bounded cost per request (issue 26), over real HTTP and WebSockets: parser errors are 400s that log nothing,
multipart bodies are capped, bombs are refused before or contained by the decoder, sockets cannot buffer without
limit. The full campaign with CPU, memory and latency figures is benchmarks/cost_campaign.py."""
from __future__ import annotations

import logging

import pytest

from .conftest import start_server


class _AllLog(logging.Handler):
    """Every record at WARNING or above from the loggers a request can reach: malformed input must add none."""
    NAMES = ("uvicorn.error", "uvicorn.asgi", "fastapi", "ferkit", "python_multipart", "PIL", "py.warnings")

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture()
def log_lines():
    handler = _AllLog()
    logging.captureWarnings(True)  # a warnings.warn from a decoder would land in py.warnings
    for name in handler.NAMES:
        logging.getLogger(name).addHandler(handler)
    yield handler.records
    for name in handler.NAMES:
        logging.getLogger(name).removeHandler(handler)
    logging.captureWarnings(False)


def multipart(parts: list[tuple[str, bytes]], boundary: str = "b0undary") -> tuple[dict, bytes]:
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + data + b"\r\n"
                    for name, data in parts) + f"--{boundary}--\r\n".encode()
    return {"Content-Type": f"multipart/form-data; boundary={boundary}"}, body


# ---------------------------------------------------------------- multipart
@pytest.mark.parametrize("length", [257, 1000])
def test_a_long_boundary_is_a_400_and_logs_nothing(http, server, face_png, log_lines, length):
    """257 characters raised FormParserError from the parser's constructor, outside the try: a logged 500."""
    headers, body = multipart([("file", face_png)], "b" * length)
    r = http.post("/api/v1/analyze", content=body, headers=headers)
    assert r.status_code == 400 and "malformed multipart" in r.json()["detail"], r.text[:300]
    assert log_lines == [] and server.error_messages() == []


def test_many_parts_are_refused_at_the_cap_and_the_answer_stays_short(http, server, face_png, log_lines):
    headers, body = multipart([(f"field{i}", b"") for i in range(5000)])
    r = http.post("/api/v1/analyze", content=body, headers=headers)
    assert r.status_code == 400 and "more than 8 parts" in r.json()["detail"]
    assert len(r.content) < 300
    headers, body = multipart([(f"field{i}" + "x" * 500, b"") for i in range(7)])  # under the cap: names, cut short
    r = http.post("/api/v1/analyze", content=body, headers=headers)
    assert r.status_code == 422 and "and 2 more" in r.json()["detail"] and len(r.content) < 500
    headers, body = multipart([("file", face_png)])
    assert http.post("/api/v1/analyze", content=body, headers=headers).status_code == 200
    assert log_lines == [] and server.error_messages() == []


# ---------------------------------------------------------------- decoding in child processes
def _noisy_jpeg(w: int, h: int) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(1).random((h, w, 3)) * 255).astype(np.uint8)).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def test_a_decode_past_its_cpu_limit_is_a_413_and_the_server_keeps_serving(face_png, frame_jpeg, log_lines):
    """A file that passes every header check yet is slow to decode (here: a tight limit on a real photo) is ended
    in its decoder process: upload and live frame alike, answered, nothing logged, a fresh decoder takes over."""
    import json

    import httpx
    from websockets.sync.client import connect

    running, stop = start_server(decode_cpu_seconds=0.03, decode_workers=1, max_upload_bytes=10_000_000,
                                 max_frame_bytes=10_000_000, max_frame_pixels=10_000_000)
    try:
        slow = _noisy_jpeg(2400, 1800)
        with httpx.Client(base_url=running.url, timeout=60) as client:
            r = client.post("/api/v1/analyze", files={"file": ("slow.jpg", slow, "image/jpeg")})
            assert r.status_code == 413 and "CPU time" in r.json()["detail"] and "slow.jpg" in r.json()["detail"]
            assert client.post("/api/v1/analyze", files={"file": ("f.png", face_png, "image/png")}).status_code == 200
        with connect(f"{running.ws_url}/api/v1/live", max_size=None, open_timeout=10) as ws:
            ws.recv(timeout=10)
            ws.send(slow)
            msg = json.loads(ws.recv(timeout=30))
            assert msg["type"] == "error" and "CPU time" in msg["detail"]
            ws.send(frame_jpeg)
            assert json.loads(ws.recv(timeout=30))["type"] == "result"
        assert running.server.config.app.state.decoder.replaced == 2
        assert log_lines == [] and running.error_messages() == []
    finally:
        stop()


@pytest.mark.parametrize("label", ["png-truncated-tall", "webp-vp8l-patched", "jpeg-progressive-cmyk",
                                   "gif-comment-blocks", "bmp-rle8-line-ends"])
def test_bombs_are_refused_over_http_with_a_4xx(http, server, label, log_lines):
    """The smallest of the campaign's bombs (benchmarks/cost_campaign.py sends every class at full size)."""
    from .cost_inputs import BOMBS

    data = BOMBS[label]() if label != "gif-comment-blocks" else BOMBS[label](blocks=20_000)
    r = http.post("/api/v1/analyze", files={"file": (label, data, "application/octet-stream")})
    assert r.status_code in (413, 422) and r.json()["detail"].startswith(label), r.text[:300]
    assert log_lines == [] and server.error_messages() == []
