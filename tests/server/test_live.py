"""The live-mode WebSocket over a real socket: results, bad frames, floods, abrupt disconnects."""
from __future__ import annotations

import json
from contextlib import contextmanager
import socket
import time

import httpx
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.conftest import default_labels

from .conftest import encode


@contextmanager
def open_live(server):
    """-> (socket, hello message); closed on exit, quietly if the test already broke the connection."""
    with connect(f"{server.ws_url}/api/v1/live", max_size=None, open_timeout=10, close_timeout=2) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["type"] == "hello"
        yield ws, hello


def recv_json(ws, timeout=20) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def test_hello_and_one_frame(server, frame_jpeg):
    with open_live(server) as (ws, hello):
        assert hello["labels"] == list(default_labels())
        assert hello["max_frame_bytes"] == server.settings.max_frame_bytes
        ws.send(frame_jpeg)
        msg = recv_json(ws)
        assert msg["type"] == "result" and msg["frame"] == 1
        assert msg["image"] == {"width": 320, "height": 240}
        assert len(msg["faces"]) == 1 and set(msg["faces"][0]["probabilities"]) == set(default_labels())
        face = msg["faces"][0]
        assert face["detector"] == server.settings.live_detector_name
        assert face["detector_score"] == face["detector_confidence"]
        assert face["landmarks"] is None or len(face["landmarks"]) == 5
        assert msg["latency_ms"] >= msg["process_ms"] > 0
        assert msg["dropped"] == 0


def test_faces_keep_their_id_and_the_detector_runs_every_few_frames(server, frame_jpeg):
    every = server.settings.live_detect_every
    assert every > 1
    with open_live(server) as (ws, _):
        answers = []
        for _ in range(every + 1):  # one at a time, so none is dropped
            ws.send(frame_jpeg)
            answers.append(recv_json(ws))
    faces = [a["faces"] for a in answers]
    assert all(len(f) == 1 for f in faces)
    assert len({f[0]["id"] for f in faces}) == 1
    assert [f[0]["detected"] for f in faces] == [True] + [False] * (every - 1) + [True]


def test_malformed_frames_get_an_error_and_the_socket_stays_open(server, frame_jpeg):
    with open_live(server) as (ws, _):
        ws.send(b"\x00\x01 definitely not a jpeg")
        err = recv_json(ws)
        assert err["type"] == "error" and err["frame"] == 1 and "frame 1" in err["detail"] and "not an image" in err["detail"]
        ws.send(frame_jpeg[: len(frame_jpeg) // 2])
        err = recv_json(ws)
        assert err["type"] == "error" and err["frame"] == 2 and "truncated" in err["detail"]
        ws.send(b"")
        assert "empty" in recv_json(ws)["detail"]
        ws.send("hello?")  # text that is not JSON
        err = recv_json(ws)
        assert err["type"] == "error" and "malformed" in err["detail"]
        ws.send(json.dumps({"type": "reboot"}))
        assert "unknown control message" in recv_json(ws)["detail"]
        ws.send(json.dumps({"type": "ping"}))
        assert recv_json(ws)["type"] == "pong"
        ws.send(frame_jpeg)  # and the connection still works
        msg = recv_json(ws)
        assert msg["type"] == "result" and msg["frame"] == 4 and len(msg["faces"]) == 1


def test_hostile_text_messages_get_an_error_and_the_socket_stays_open(server, frame_jpeg):
    """Deeply nested JSON once made the parser blow its stack and the socket drop with no close frame."""
    with open_live(server) as (ws, _):
        ws.send("[" * 1000 + "]" * 1000)
        err = recv_json(ws)
        assert err["type"] == "error" and "over the limit of 1,024" in err["detail"]
        ws.send("[" * 500 + "]" * 500)  # under the length limit: parsed, and refused as unknown
        assert "unknown control message" in recv_json(ws)["detail"]
        ws.send('{"type": "ping", "x": ' + "[" * 400 + "]" * 400 + "}")
        assert recv_json(ws)["type"] == "pong"
        for eps in (b"%!PS-Adobe-3.0 EPSF-3.0\nshowpage\n", b"\xc5\xd0\xd3\xc6" + bytes(40)):
            ws.send(eps)  # an EPS frame: refused from its bytes, never handed to Ghostscript
            assert "EPS" in recv_json(ws)["detail"]
        ws.send(frame_jpeg)
        assert recv_json(ws)["type"] == "result"
    assert server.error_messages() == []


def test_invalid_utf8_text_closes_with_1007_and_logs_nothing(server, frame_jpeg):
    """RFC 6455 (8.1) requires failing the connection on a text message that is not UTF-8: code 1007, no traceback."""
    with open_live(server) as (ws, _):
        ws.send(b'\xff\xfe{"type": "ping"}', text=True)
        with pytest.raises(ConnectionClosed) as e:
            recv_json(ws)
    assert e.value.rcvd is not None and e.value.rcvd.code == 1007
    with open_live(server) as (ws2, _):
        ws2.send(frame_jpeg)
        assert recv_json(ws2)["type"] == "result"
    assert server.error_messages() == []


def test_oversized_frame_gets_an_error_and_the_socket_stays_open(server, frame_jpeg):
    limit = server.settings.max_frame_bytes
    with open_live(server) as (ws, _):
        ws.send(bytes(limit + 1))
        err = recv_json(ws)
        assert err["type"] == "error" and err["frame"] == 1 and f"{limit:,}" in err["detail"]
        bomb = encode(np.zeros((1200, 1200), np.uint8))  # 1.44 Mpx in a few kB; the frame limit is 1 Mpx
        ws.send(bomb)
        assert "over the limit" in recv_json(ws)["detail"]
        ws.send(frame_jpeg)
        assert recv_json(ws)["type"] == "result"


def test_message_over_the_websocket_limit_closes_only_that_socket(server, frame_jpeg):
    with open_live(server) as (ws, _):
        ws.send(bytes(server.settings.ws_max_message_bytes + 1))
        with pytest.raises(ConnectionClosed) as e:
            recv_json(ws)
    assert e.value.rcvd is not None and e.value.rcvd.code == 1009  # "message too big"
    with open_live(server) as (ws2, _):
        ws2.send(frame_jpeg)
        assert recv_json(ws2)["type"] == "result"


def test_flood_of_frames_drops_stale_ones_and_answers_the_newest(server, frame_jpeg):
    n = 60
    with open_live(server) as (ws, _):
        for _ in range(n):  # far faster than frames can be analysed
            ws.send(frame_jpeg)
        answered, last = [], None
        while True:
            msg = recv_json(ws)
            assert msg["type"] == "result"
            answered.append(msg["frame"])
            last = msg
            if msg["frame"] == n:
                break
    assert answered == sorted(answered) and len(set(answered)) == len(answered)
    assert len(answered) < n / 2, f"{len(answered)} of {n} flooded frames were analysed: stale frames were queued"
    assert last["dropped"] == n - len(answered)
    assert last["latency_ms"] < 5000  # the newest frame did not wait behind the whole flood


def test_abrupt_disconnects_are_handled_and_the_server_keeps_serving(server, frame_jpeg):
    # 1. a client that floods, then vanishes without a close frame while frames are being analysed
    with open_live(server) as (ws, _):
        for _ in range(20):
            ws.send(frame_jpeg)
        ws.socket.shutdown(socket.SHUT_RDWR)
        ws.socket.close()
    # 2. a client that dies in the middle of sending a frame
    with open_live(server) as (ws, _):
        header = bytes([0x82, 0xFE]) + len(frame_jpeg).to_bytes(2, "big") + bytes(4)  # masked binary frame header
        ws.socket.sendall(header + frame_jpeg[:100])
        ws.socket.shutdown(socket.SHUT_RDWR)
        ws.socket.close()
    time.sleep(0.5)
    # the server still serves, over HTTP and over new sockets, and logged no unhandled exception
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    with open_live(server) as (ws, _):
        ws.send(frame_jpeg)
        assert recv_json(ws)["type"] == "result"
    assert server.error_messages() == []
