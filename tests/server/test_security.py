"""The lock-down of a local tool, over real HTTP and real WebSockets: who may reach the server, headers, limits."""
from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import time

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from .conftest import start_server


def raw_request(server, head: bytes, body: bytes = b"", timeout: float = 10) -> tuple[int, dict, bytes]:
    """Send bytes as they are (no client fixes the Host up); -> (status, headers, body)."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head + body)
        answer = b""
        while True:
            part = sock.recv(65536)
            if not part:
                break
            answer += part
            head_end = answer.find(b"\r\n\r\n")
            if head_end >= 0:
                m = re.search(rb"content-length: (\d+)", answer[:head_end], re.I)
                if m and len(answer) >= head_end + 4 + int(m.group(1)):
                    break
    first, _, rest = answer.partition(b"\r\n")
    head_text, _, payload = rest.partition(b"\r\n\r\n")
    headers = dict(line.split(": ", 1) for line in head_text.decode("latin-1").lower().split("\r\n") if ": " in line)
    return int(first.split()[1]), headers, payload


# ---------------------------------------------------------------- Host (DNS rebinding)
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.evil"])
def test_foreign_host_names_are_refused(server, host):
    status, headers, body = raw_request(server, f"GET /api/v1/info HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    assert status == 400 and headers["content-type"] == "application/json"
    assert "allowed_hosts" in json.loads(body)["detail"]


@pytest.mark.parametrize("host", ["127.0.0.1:8766@evil.example", "[::1]evil.example", "localhost:evil", "[::1",
                                  "localhost:123456", "local host", "[::1]:80:80", "[evil.example]"])
def test_host_values_a_browser_cannot_send_are_refused(server, host):
    """Issue 26, item 7: these passed as 127.0.0.1, ::1 or localhost."""
    status, _, body = raw_request(server, f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    assert status == 400 and "malformed Host header" in json.loads(body)["detail"], body


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST:1234", "[::1]:8000", "[0:0::1]", "localhost."])
def test_loopback_host_names_are_served(server, host):
    status, _, body = raw_request(server, f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    assert status == 200, body


def test_configured_host_names_are_served():
    running, stop = start_server(allowed_hosts=["ferkit.lan"])
    try:
        assert raw_request(running, b"GET /healthz HTTP/1.1\r\nHost: ferkit.lan:8000\r\n\r\n")[0] == 200
        assert raw_request(running, b"GET /healthz HTTP/1.1\r\nHost: other.lan\r\n\r\n")[0] == 400
    finally:
        stop()


def test_trailing_slash_is_not_redirected_to_the_host_header(server):
    status, headers, _ = raw_request(server, b"GET /api/v1/info/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert status == 404 and "location" not in headers


# ---------------------------------------------------------------- Origin (cross-site requests)
def test_cross_origin_upload_is_refused(http, face_png):
    r = http.post("/api/v1/analyze", files={"file": ("f.png", face_png, "image/png")},
                  headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and "cross-origin" in r.json()["detail"] and "evil.example" in r.json()["detail"]
    for origin in ("null", "http://localhost.evil.example", "file://"):
        assert http.get("/api/v1/info", headers={"Origin": origin}).status_code == 403


def test_same_origin_and_originless_requests_pass(http, server, face_png):
    r = http.post("/api/v1/analyze", files={"file": ("f.png", face_png, "image/png")}, headers={"Origin": server.url})
    assert r.status_code == 200  # the page itself
    assert http.post("/api/v1/analyze", files={"file": ("f.png", face_png, "image/png")}).status_code == 200  # curl


def test_cross_origin_websocket_handshake_is_refused(server):
    with pytest.raises(InvalidStatus) as e:
        connect(f"{server.ws_url}/api/v1/live", origin="https://evil.example", open_timeout=10)
    assert e.value.response.status_code == 403
    with connect(f"{server.ws_url}/api/v1/live", origin=server.url, open_timeout=10) as ws:  # the page: accepted
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
    handshake = (b"GET /api/v1/live HTTP/1.1\r\nHost: evil.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert raw_request(server, handshake)[0] == 403  # a rebinding page: its own name in Host


def test_allowed_origins_are_configurable():
    running, stop = start_server(allowed_origins=["http://localhost:5173"])
    try:
        ok = httpx.get(f"{running.url}/healthz", headers={"Origin": "http://localhost:5173"}, timeout=10)
        other = httpx.get(f"{running.url}/healthz", headers={"Origin": "http://localhost:5174"}, timeout=10)
        assert (ok.status_code, other.status_code) == (200, 403)
    finally:
        stop()


# ---------------------------------------------------------------- headers on every answer
@pytest.mark.parametrize("path", ["/", "/docs", "/api/v1/info", "/static/app.js", "/nothing-here", "/favicon.ico"])
def test_security_headers_on_every_response(http, path):
    r = http.get(path)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "camera=(self)" in r.headers["permissions-policy"]
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert "server" not in r.headers  # no banner
    if r.headers["content-type"].startswith("text/html"):
        assert "default-src 'self'" in r.headers["content-security-policy"]


def test_docs_csp_allows_exactly_its_inline_script(http):
    r = http.get("/docs")
    csp = r.headers["content-security-policy"]
    script = re.search(r"<script>(.*?)</script>", r.text, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]


def test_favicon_is_a_png(http):
    r = http.get("/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content.startswith(b"\x89PNG")


# ---------------------------------------------------------------- limits and errors
def test_oversized_headers_are_refused_and_the_server_keeps_answering(server):
    """h11 refuses once more than max_header_bytes of headers wait incomplete (one read may go past it)."""
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 4_000_000 + b"\r\n\r\n"
    try:
        status, _, _ = raw_request(server, head)
    except (ConnectionResetError, BrokenPipeError):
        status = 400  # refused while we were still sending
    assert status == 400
    t0 = time.perf_counter()
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    assert time.perf_counter() - t0 < 5


def test_feedback_body_over_the_json_limit_is_refused(http, server):
    big = {"track_id": "x" * (server.settings.max_json_bytes + 1), "action": "like"}
    r = http.post("/api/v1/feedback", json=big)
    assert r.status_code == 413 and f"{server.settings.max_json_bytes:,}" in r.json()["detail"]

    def chunks():  # the same without a Content-Length: cut while reading
        yield json.dumps(big).encode()

    r = http.post("/api/v1/feedback", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]


def test_an_unexpected_error_is_a_json_500_and_the_connection_survives():
    def configure(app):
        @app.get("/boom")
        def boom():
            raise RuntimeError("a bug")

    running, stop = start_server(configure=configure)
    try:
        with httpx.Client(base_url=running.url, timeout=10) as client:
            r = client.get("/boom")
            assert r.status_code == 500 and r.headers["content-type"] == "application/json"
            assert "internal server error" in r.json()["detail"] and "a bug" not in r.text
            assert client.get("/healthz").status_code == 200
        assert any("a bug" in m for m in running.error_messages())  # logged on the server, with its traceback
    finally:
        stop()
