"""WebSocket /api/v1/live: the page's camera frames in, faces out, in real time.

Protocol (one connection per camera):
- client -> server: each camera frame as a binary message holding one JPEG (or PNG/WebP) image. The
  server numbers binary messages 1, 2, 3 ... in arrival order: that number is the frame id.
  Text messages are control messages: {"type": "ping"} is answered with {"type": "pong"}.
- server -> client: {"type": "hello", "labels": [...], "max_frame_bytes": N} once, then per processed frame
  {"type": "result", "frame": id, "image": {"width", "height"}, "faces": [...], "latency_ms": receipt to
  answer on the server, "process_ms": decode + inference, "dropped": frames skipped so far}.
  Each face carries an "id", stable while the face stays in view, and "detected" (false where its box was
  followed from the previous frame rather than found by the detector).
  A frame that cannot be used gets {"type": "error", "frame": id, "detail": "..."}; the connection stays open.

Speed: each connection has its own `ferkit.track.FaceTracker`: the detector (the costly step; `live_detector`,
the upload detector, YuNet, by default) runs on every `live_detect_every`-th frame, on a copy no larger than `live_detect_side`;
in between, faces are followed by template matching. Every frame's faces are classified afresh. Smoothing is left to the client (the page's toggle).

Back-pressure: only the newest unprocessed frame is kept. A frame that arrives while another waits replaces
it (counted in "dropped"), so a client that sends faster than the server can serve gets fresh results and
the server's memory stays bounded: one frame being processed, one waiting. A result for frame n also
answers every earlier frame, which the client can use for its own flow control.

Idle: a socket that sends no message for `ws_idle_seconds` (300 s) is closed with 1000. Protocol-level pings are
rate-limited (server.protocols: a flood is closed with 1008); frames are decoded in a decoder process
(ferkit.safe_decode), so a hostile frame costs at most `decode_cpu_seconds` and `decode_memory_bytes` there.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ...images import UnreadableImageError
from ..deps import get_recognizer, get_settings, run_inference

router = APIRouter()
log = logging.getLogger(__name__)
_GONE = (WebSocketDisconnect, RuntimeError, OSError)  # what sending to a vanished client raises


class _Session:
    """One socket's state: the waiting frame (at most one), counters, and a lock so sends never interleave."""

    def __init__(self, ws: WebSocket):
        self.ws = ws
        self.pending: tuple[int, bytes, float] | None = None   # (frame id, data, arrival time)
        self.ready = asyncio.Event()
        self.received = self.dropped = 0
        self.send_lock = asyncio.Lock()

    async def send(self, message: dict) -> None:
        async with self.send_lock:
            await self.ws.send_text(json.dumps(message))

    async def error(self, detail: str, frame: int | None = None) -> None:
        await self.send(_error_message(detail, frame))


def _error_message(detail: str, frame: int | None) -> dict:
    return {"type": "error", "frame": frame, "detail": detail}


@router.websocket("/api/v1/live")
async def live(ws: WebSocket) -> None:
    from ...track import FaceTracker

    settings, rec = get_settings(ws), get_recognizer(ws)
    await ws.accept()
    s = _Session(ws)
    tracker = FaceTracker(rec, detector=ws.app.state.live_detector,
                          detect_every=settings.live_detect_every, detect_side=settings.live_detect_side)
    worker = asyncio.create_task(_serve_frames(s, tracker, settings.max_frame_pixels))
    try:
        await s.send({"type": "hello", "labels": list(rec.labels), "max_frame_bytes": settings.max_frame_bytes})
        while True:
            try:
                message = await asyncio.wait_for(ws.receive(), settings.ws_idle_seconds)
            except asyncio.TimeoutError:  # a socket that sends nothing holds a connection and a task: end it
                await ws.close(1000, f"no message in {settings.ws_idle_seconds:g} s")
                break
            if message["type"] == "websocket.disconnect":
                break
            if message.get("bytes") is not None:
                await _on_frame(s, message["bytes"], settings.max_frame_bytes)
            else:
                await _on_text(s, message.get("text") or "")
            if worker.done():  # the worker only stops when the client is gone
                worker.result()  # (or re-raises what stopped it, for the server's log)
                break
    except _GONE:
        pass  # abrupt disconnect: nothing to answer, nothing to keep
    finally:
        worker.cancel()


async def _on_frame(s: _Session, data: bytes, max_bytes: int) -> None:
    s.received += 1
    frame = s.received
    if not data:
        await s.error(f"frame {frame} is empty", frame)
    elif len(data) > max_bytes:
        await s.error(f"frame {frame} is {len(data):,} bytes, over the limit of {max_bytes:,}; send smaller JPEGs", frame)
    else:
        if s.pending is not None:
            s.dropped += 1  # stale: the newer frame replaces it
        s.pending = (frame, data, time.perf_counter())
        s.ready.set()


MAX_CONTROL_CHARS = 1024  # control messages are tiny; longer text is refused unparsed (deep nesting, floods)


async def _on_text(s: _Session, text: str) -> None:
    if len(text) > MAX_CONTROL_CHARS:
        await s.error(f"control message of {len(text):,} characters, over the limit of {MAX_CONTROL_CHARS:,}; "
                      "send frames as binary messages")
        return
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        await s.error(f"malformed message: expected a binary image frame or a JSON control message, got text {text[:40]!r}")
        return
    if isinstance(msg, dict) and msg.get("type") == "ping":
        await s.send({"type": "pong", "received": s.received, "dropped": s.dropped})
    else:
        await s.error(f"unknown control message {text[:60]!r}; known: {{\"type\": \"ping\"}}")


async def _serve_frames(s: _Session, tracker, max_pixels: int) -> None:
    """Process the newest waiting frame, answer, repeat. Returns when the client has gone."""
    while True:
        await s.ready.wait()
        s.ready.clear()
        if s.pending is None:
            continue
        frame, data, arrived = s.pending
        s.pending = None
        t0 = time.perf_counter()
        try:
            result = await run_inference(s.ws, _process, tracker, s.ws.app.state.decoder, data, frame, max_pixels)
        except UnreadableImageError as e:
            result = _error_message(str(e), frame)
        except Exception:  # a bug must not end the session: report it, log it (never the image), go on
            log.exception("live mode: frame %d could not be analysed", frame)
            result = _error_message(f"frame {frame} could not be analysed (a server error)", frame)
        now = time.perf_counter()
        result.update(latency_ms=round((now - arrived) * 1000, 2), process_ms=round((now - t0) * 1000, 2),
                      dropped=s.dropped)
        try:
            await s.send(result)
        except _GONE:
            return


def _process(tracker, decoder, data: bytes, frame: int, max_pixels: int) -> dict:
    # One frame at a time per connection (the worker awaits each), so the tracker needs no lock.
    image = decoder.decode(data, f"frame {frame}", max_pixels)  # in a child process, with CPU and memory limits
    faces = tracker.process(image)
    h, w = image.shape[:2]
    return {"type": "result", "frame": frame, "image": {"width": w, "height": h},
            "faces": [f.to_dict() for f in faces]}
