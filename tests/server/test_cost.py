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
