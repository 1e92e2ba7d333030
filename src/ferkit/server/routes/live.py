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

Speed: each connection has its own `ferkit.track.FaceTracker`, kept in the analysis worker the session is tied to
(server.pool): the detector (the costly step; `live_detector`, the upload detector, YuNet, by default) runs on every
`live_detect_every`-th frame, on a copy no larger than `live_detect_side`; in between, faces are followed by template
matching. Every frame's faces (at most `max_faces`, the largest; "faces_left_out" counts the rest) are classified
afresh. Smoothing is left to the client (the page's toggle). If the worker is replaced (it died, or passed a limit),
the session goes on with a fresh tracker there: face ids start again.

Back-pressure: only the newest unprocessed frame is kept. A frame that arrives while another waits replaces
it (counted in "dropped"), so a client that sends faster than the server can serve gets fresh results and
the server's memory stays bounded: one frame being processed, one waiting. A result for frame n also
answers every earlier frame, which the client can use for its own flow control.

Idle: a socket that sends no message for `ws_idle_seconds` (300 s) is closed with 1000. Protocol-level pings are
rate-limited (server.protocols: a flood is closed with 1008); frames are decoded and analysed in an analysis worker
process (server.worker), so a hostile frame costs at most `decode_cpu_seconds` + `analysis_cpu_seconds` and
`decode_memory_bytes` there.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ..deps import get_model, get_pool, get_settings
from ..pool import AnalysisFailed, PoolBusy, Refused, WorkerLost, lost_message

router = APIRouter()
log = logging.getLogger(__name__)
_GONE = (WebSocketDisconnect, RuntimeError, OSError)  # what sending to a vanished client raises


class _Session:
    """One socket's state: the waiting frame (at most one), counters, and a lock so sends never interleave."""

    def __init__(self, ws: WebSocket, pool):
        self.ws, self.pool = ws, pool
        self.id = uuid.uuid4().hex
        self.slot = pool.open_session()  # the worker that keeps this session's tracker
        self.pending: tuple[int, bytes, float] | None = None   # (frame id, data, arrival time)
        self.ready = asyncio.Event()
        self.received = self.dropped = 0
        self.working = False  # a frame is being analysed
        self.send_lock = asyncio.Lock()

    async def send(self, message: dict | str) -> None:
        async with self.send_lock:
            await self.ws.send_text(message if isinstance(message, str) else json.dumps(message))

    async def error(self, detail: str, frame: int | None = None) -> None:
        await self.send(_error_message(detail, frame))


def _error_message(detail: str, frame: int | None) -> dict:
    return {"type": "error", "frame": frame, "detail": detail}


@router.websocket("/api/v1/live")
async def live(ws: WebSocket) -> None:
    settings, model = await get_settings(ws), await get_model(ws)
    await ws.accept()
    s = _Session(ws, await get_pool(ws))
    worker = asyncio.create_task(_serve_frames(s, settings.max_frame_pixels))
    try:
        await s.send({"type": "hello", "labels": model["labels"], "max_frame_bytes": settings.max_frame_bytes})
        while True:
            try:
                message = await asyncio.wait_for(ws.receive(), settings.ws_idle_seconds)
            except asyncio.TimeoutError:  # a socket that sends nothing holds a connection and a task: end it
                if s.working:  # not idle: it waits for an answer (a worker may be starting after a limit hit)
                    continue
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
        s.pool.close_session(s.slot, s.id)


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


async def _serve_frames(s: _Session, max_pixels: int) -> None:
    """Process the newest waiting frame, answer, repeat. Returns when the client has gone."""
    while True:
        await s.ready.wait()
        s.ready.clear()
        if s.pending is None:
            continue
        frame, data, arrived = s.pending
        s.pending = None
        s.working = True
        t0 = time.perf_counter()
        name = f"frame {frame}"
        try:
            result = (await s.pool.frame(s.slot, s.id, data, frame, max_pixels)).decode()
        except Refused as e:
            result = _error_message(e.detail, frame)
        except WorkerLost as e:
            result = _error_message(lost_message(e, name, s.pool.config)[1], frame)
        except PoolBusy:
            result = _error_message(f"{name} was not analysed: the server is busy; send frames more slowly", frame)
        except AnalysisFailed as e:  # a bug must not end the session: report it, log it (never the image), go on
            log.error("live mode: frame %d could not be analysed:\n%s", frame, e)
            result = _error_message(f"{name} could not be analysed (a fault in the server, logged)", frame)
        s.working = False
        now = time.perf_counter()
        timing = (f'"latency_ms":{round((now - arrived) * 1000, 2)},"process_ms":{round((now - t0) * 1000, 2)},'
                  f'"dropped":{s.dropped}')
        # the worker's JSON object as it came, with the timings added: not parsed and written again
        message = result[:-1] + "," + timing + "}" if isinstance(result, str) else \
            {**result, **json.loads("{" + timing + "}")}
        try:
            await s.send(message)
        except _GONE:
            return
