"""uvicorn's HTTP and WebSocket protocols with bounded cost per connection (issue 26).

`ferkit serve` (and the tests) run uvicorn with these two classes (server.cli.uvicorn_options):

BoundedH11Protocol (uvicorn's h11 protocol, which parses on the event loop):
- the request line and headers are refused (400) over `max_header_bytes`, however they arrived: h11's own limit
  only counts bytes still waiting for the end of the headers, so headers that came in a few large reads passed;
- a body may come in at most MAX_BODY_EVENTS pieces: h11 parses each chunk of a chunked body in Python, on the
  event loop (1.6 M one-byte chunks took 6.4 s of it), so a body cut absurdly fine is refused (400) early;
- a connection must send its request line and headers within `request_head_seconds` of opening (or of its
  previous answer), and a body may not pause for more than `body_idle_seconds`: else it is closed.
  (uvicorn's keep-alive timeout, 5 s, still closes connections idle between requests.)
The refusals are JSON, {"detail": "..."}, like every other error.

BoundedWebSocketProtocol (uvicorn's websockets "sans-I/O" protocol, which answers every ping with a pong at once):
- a message over `ws_max_message_bytes` gets its 1009 close frame delivered (a lingering close, as for HTTP
  refusals above), not a reset;
- pings are rate-limited (PING_BURST at once, PING_RATE a second after that) and a pong is not queued while more
  than MAX_PENDING_BYTES wait unsent: a client that floods pings and never reads is closed with 1008 instead of
  making the server buffer a pong per ping (1 GB of pings held 735 MB).
"""
from __future__ import annotations

import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

MAX_BODY_EVENTS = 20_000  # pieces of one request body (a chunk, or the part of one that one read brought): a 10 MB
                          # upload sent in 64 KB chunks makes about 200, a browser's in 16 KB reads about 700
PING_BURST = 16           # pings answered back to back
PING_RATE = 4.0           # pings a second after the burst (a client's keepalive sends one every few seconds)
LINGER_SECONDS = 2.0      # after a refusal, how long the rest of the request is read and dropped,
LINGER_BYTES = 64_000_000  # and how much of it at most (then the connection is cut: about 45 ms of CPU)
MAX_PENDING_BYTES = 256_000  # unsent bytes to the client (pongs, answers) past which a ping is a flood


class BoundedH11Protocol(H11Protocol):
    request_head_seconds = 10.0  # the request line and headers must be in by then
    body_idle_seconds = 20.0     # the longest pause allowed within a request body

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._max_head = self.config.h11_max_incomplete_event_size or 65_536
        self._body_events = 0
        self._refusal: str | None = None
        self._timer = None
        self._draining = False
        self._drained = 0
        self._upgraded = False  # handed to the WebSocket protocol: this one's timers no longer apply
        next_event = self.conn.next_event

        def checked_next_event():  # sees every event uvicorn's handle_events gets, in order
            try:
                event = next_event()
            except h11.RemoteProtocolError as e:
                # h11's own limit: headers still incomplete past max_incomplete_event_size ("Receive buffer too
                # long", from about 200 KB in one read): the same limit as below, said in the same words
                if self._refusal is None and "buffer too long" in str(e).lower():
                    self._refusal = f"request line and headers over the limit of {self._max_head:,} bytes"
                raise
            if isinstance(event, h11.Request):
                self._body_events = 0
                size = len(event.method) + len(event.target) + 13 + sum(len(k) + len(v) + 4 for k, v in event.headers)
                if size > self._max_head:
                    self._refuse(f"request line and headers of {size:,} bytes, over the limit of {self._max_head:,}")
            elif isinstance(event, h11.Data):
                self._body_events += 1
                if self._body_events > MAX_BODY_EVENTS:
                    self._refuse(f"request body in more than {MAX_BODY_EVENTS:,} pieces (chunks); send it in "
                                 "larger chunks or with a Content-Length")
            return event

        self.conn.next_event = checked_next_event

    def _refuse(self, detail: str) -> None:
        """Stop this request: uvicorn answers a RemoteProtocolError with send_400_response (below)."""
        self._refusal = detail
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app, if it is reading the body, sees the client gone
            self.cycle.message_event.set()
        raise h11.RemoteProtocolError(detail)

    def send_400_response(self, msg: str) -> None:
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # half an answer is out: nothing else can be said
            return
        detail = self._refusal or f"malformed HTTP request ({msg.rstrip('.').lower()})"
        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        try:
            self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request")))
            self.transport.write(self.conn.send(h11.Data(data=body)))
            self.transport.write(self.conn.send(h11.EndOfMessage()))
        except h11.LocalProtocolError:  # h11 cannot answer in its state: just close
            self.transport.close()
            return
        # A close with the client's bytes still unread makes the kernel send a reset, which can destroy the answer
        # before the client reads it: end our side, then discard what still comes (unparsed) for a moment
        self._draining = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._arm(LINGER_SECONDS)

    # ------------------------------------------------------------ timeouts
    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm(self.request_head_seconds)

    def data_received(self, data: bytes) -> None:
        if self._draining:  # refused: the rest of the request is dropped unparsed
            self._drained += len(data)
            if self._drained > LINGER_BYTES:
                self.transport.abort()
            return
        super().data_received(data)
        if self._upgraded:
            # uvicorn hands the transport to the WebSocket protocol while this call is still on the stack, and h11
            # still says SEND_BODY for the upgrade request: arming the body timer here closed every live session
            # after body_idle_seconds (20 s). The WebSocket's own idle limit and ping bounds apply from now on.
            return
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._arm(self.body_idle_seconds)  # re-armed by every read: only a pause ends the connection
        elif state is not h11.IDLE:  # the request is in: the app's time is not bounded here
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm(self.request_head_seconds)

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self, event) -> None:
        self._upgraded = True
        self._disarm()
        super().handle_websocket_upgrade(event)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        if self._upgraded:
            return
        self._timer = self.loop.call_later(seconds, self._timed_out)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()


class BoundedWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._tokens = float(PING_BURST)
        self._refilled = self.loop.time()
        self._lingering = False
        self._drained = 0

    def data_received(self, data: bytes) -> None:
        if self._lingering:  # failed: the rest of what the client sends is dropped unparsed
            self._drained += len(data)
            if self._drained > LINGER_BYTES:
                self.transport.abort()
            return
        super().data_received(data)

    def handle_parser_exception(self) -> None:
        """A protocol error (a message over ws_max_message_bytes: 1009): send the close frame, then read and drop
        what the client is still sending for a moment before closing. Closing at once, with its data unread, made
        the kernel reset the connection, and the client saw a reset instead of the 1009 (a 16.1 MB frame)."""
        assert self.conn.close_sent is not None
        code, reason = self.conn.close_sent.code, self.conn.close_sent.reason
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self._lingering = True
        self.close_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)  # uvicorn waits for it

    def handle_ping(self) -> None:
        if self.close_sent:
            return
        now = self.loop.time()
        self._tokens = min(PING_BURST, self._tokens + (now - self._refilled) * PING_RATE)
        self._refilled = now
        pending = self.transport.get_write_buffer_size()
        if self._tokens < 1 or pending > MAX_PENDING_BYTES:
            self._close_flood(pending)
            return
        self._tokens -= 1
        super().handle_ping()

    def _close_flood(self, pending: int) -> None:
        self.conn.fail(1008, "too many pings")
        self.close_sent = True
        self.queue.put_nowait({"type": "websocket.disconnect", "code": 1008, "reason": "too many pings"})
        if pending > MAX_PENDING_BYTES:  # it does not read: what is queued would never leave
            self.transport.abort()
            return
        self.transport.write(b"".join(self.conn.data_to_send()))
        self._lingering = True  # its pings still coming in would otherwise turn the close into a reset
        self.close_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)
