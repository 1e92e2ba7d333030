"""Live sessions last as long as the client wants (issue 33): the HTTP protocol's timers end at the WebSocket
upgrade; the WebSocket's own idle limit closes a silent client at that limit, not before.

Until this was fixed every live session was cut after 20 s (the h11 body-idle timer, armed for the upgrade
request, closed the transport the WebSocket protocol owned). The quick tests below shorten the HTTP timers to
1 s so that the same fault shows in seconds; the three-minute sessions run in the background while the rest of the
server tests run (tests/server/conftest.py: long_live_sessions), and the last test here checks what they saw."""
from __future__ import annotations

import json
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from ferkit.server.protocols import BoundedH11Protocol

from .conftest import TEST_LIMITS, start_server


class _QuickTimers(BoundedH11Protocol):
    request_head_seconds = 1.0
    body_idle_seconds = 1.0


def test_http_timers_do_not_end_a_live_session(astronaut_jpeg):
    running, stop = start_server(uvicorn_overrides={"http": _QuickTimers}, **TEST_LIMITS)
    try:
        with connect(f"{running.ws_url}/api/v1/live", max_size=None, open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
            end, answers = time.monotonic() + 4.0, 0  # four times the HTTP timers
            while time.monotonic() < end:
                ws.send(astronaut_jpeg)
                msg = json.loads(ws.recv(timeout=10))
                assert msg["type"] == "result", msg
                answers += 1
                time.sleep(0.2)
        assert answers >= 8
    finally:
        stop()


def test_a_silent_client_is_closed_at_the_idle_limit_not_before(astronaut_jpeg):
    idle = 3.0
    running, stop = start_server(uvicorn_overrides={"http": _QuickTimers}, ws_idle_seconds=idle, **TEST_LIMITS)
    try:
        with connect(f"{running.ws_url}/api/v1/live", max_size=None, open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
            ws.send(astronaut_jpeg)
            assert json.loads(ws.recv(timeout=10))["type"] == "result"
            silent_since = time.monotonic()
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=idle + 10)
            waited = time.monotonic() - silent_since
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
        assert f"no message in {idle:g} s" in closed.value.rcvd.reason
        assert idle - 0.3 <= waited <= idle + 3, waited
    finally:
        stop()


def test_three_minute_sessions_answer_throughout(long_live_sessions):
    """Plain WebSocket clients, features off and `all`, one frame every 200 ms for three minutes: every 10 s
    window has answers, and the socket was never closed by the server."""
    report = long_live_sessions.wait()
    for name, windows in report.items():
        assert len(windows) == long_live_sessions.seconds // 10, (name, windows)
        assert all(n > 0 for n in windows), (name, windows)
