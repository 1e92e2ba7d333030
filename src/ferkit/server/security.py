"""The lock-down of a local tool, as one ASGI middleware around the whole app.

Every HTTP request and WebSocket handshake passes three checks before any route runs:
- Host: one of the names this server answers to (loopback names, the bound address, `allowed_hosts`; any IP
  address when bound to all interfaces). A web page on another site cannot reach the API by pointing its own
  DNS name at 127.0.0.1 (DNS rebinding): its requests carry its own name in Host. Refused: 400.
- Origin: absent (curl, Python, a browser's same-origin GET), the server itself, or one of `allowed_origins`.
  A page on another site cannot drive the API or open the live WebSocket. Refused: 403 (a WebSocket
  handshake is refused with HTTP 403 too).
- Body size: requests other than the upload (JSON bodies: feedback) are refused over `max_json_bytes` (413).

Every HTTP response gets the security headers below (and a Content-Security-Policy unless the route set one),
and an exception that escapes a route becomes a logged JSON 500 instead of uvicorn's plain text and a dropped
connection.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import re
from urllib.parse import urlsplit

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect

from .settings import Settings

log = logging.getLogger("ferkit.server")

# The page may load and connect only to this server; images may also be data: (heat maps) and blob: (the photo).
PAGE_CSP = ("default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
OTHER_CSP = "default-src 'none'; frame-ancestors 'none'"  # JSON, scripts, styles: nothing of theirs may load anything
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(self), microphone=(), geolocation=(), payment=(), usb=()"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_ADDRESSES = ("0.0.0.0", "::", "")
UPLOAD_PATH = "/api/v1/analyze"  # reads its own body, against max_upload_bytes


# What a browser sends as Host (RFC 9110: uri-host [":" port]): a DNS name or IPv4 address, or an IPv6 address in
# brackets, then an optional port of digits. No userinfo ('127.0.0.1:8766@evil.example'), nothing after the
# brackets or the port ('[::1]evil.example', 'localhost:evil'), no unclosed bracket ('[::1').
_HOST = re.compile(r"(?:\[(?P<v6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9_](?:[a-z0-9_.-]{0,252}[a-z0-9_.])?))(?::\d{1,5})?")


def host_name(host_header: str) -> str | None:
    """'127.0.0.1:8000' -> '127.0.0.1', '[::1]:8000' -> '::1', 'Example.org.' -> 'example.org'; None when the
    value is not a host a browser could send (see _HOST)."""
    m = _HOST.fullmatch(host_header.strip().lower())
    if m is None:
        return None
    if m["v6"] is not None:
        try:
            return str(ipaddress.IPv6Address(m["v6"]))
        except ValueError:
            return None
    return m["name"].rstrip(".")


def _configured_name(host: str) -> str | None:
    """A name from the settings, where an IPv6 address may come without brackets ('::1')."""
    host = host.strip()
    return host_name(f"[{host}]" if host.count(":") > 1 and not host.startswith("[") else host)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


class Guard:
    """Host and Origin checks, body limits, security headers and a JSON last resort for errors (module docstring)."""

    def __init__(self, app, settings: Settings):
        self.app = app
        self.settings = settings
        hosts = {_configured_name(h) for h in settings.allowed_hosts} - {None}
        self.any_host = "*" in settings.allowed_hosts
        self.any_ip = settings.host in WILDCARD_ADDRESSES  # bound everywhere: the machine's addresses are unknown
        self.hosts = hosts | set(LOOPBACK_NAMES) | ({_configured_name(settings.host)} if not self.any_ip else set())
        self.any_origin = "*" in settings.allowed_origins
        self.origins = {o.strip().rstrip("/").lower() for o in settings.allowed_origins}

    # ------------------------------------------------------------ checks
    def refusal(self, headers: Headers) -> tuple[int, str] | None:
        """(status, detail) when the request must be refused, else None."""
        host = headers.get("host")
        if host is not None and not self.any_host:
            name = host_name(host)
            if name is None:
                return 400, f"malformed Host header {host[:100]!r}: expected a host name or address and an optional port"
            if name not in self.hosts and not (self.any_ip and _is_ip(name)):
                return 400, (f"Host header {host[:100]!r} is not a name this server answers to; add it to "
                             f"allowed_hosts (FERKIT_ALLOWED_HOSTS) to allow it")
        origin = headers.get("origin")
        if origin is not None and not self.any_origin and not self._same_origin(origin, host):
            if origin.strip().rstrip("/").lower() not in self.origins:
                return 403, (f"cross-origin request from {origin[:100]!r} refused; add the origin to "
                             f"allowed_origins (FERKIT_ALLOWED_ORIGINS) to allow it")
        return None

    @staticmethod
    def _same_origin(origin: str, host: str | None) -> bool:
        try:
            parts = urlsplit(origin.strip())
        except ValueError:
            return False
        return host is not None and parts.scheme in ("http", "https") and parts.netloc.lower() == host.strip().lower()

    # ------------------------------------------------------------ ASGI
    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            refused = self.refusal(Headers(scope=scope))
            if refused:
                await receive()  # websocket.connect
                log.info("WebSocket handshake refused: %s", refused[1])
                await send({"type": "websocket.close", "code": 1008, "reason": refused[1][:120]})
                return
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = False

        async def send_with_headers(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [h for h in SECURITY_HEADERS if h[0] not in names]
                if b"content-security-policy" not in names:
                    ctype = dict(headers).get(b"content-type", b"")
                    headers.append((b"content-security-policy",
                                    (PAGE_CSP if ctype.startswith(b"text/html") else OTHER_CSP).encode()))
                message = {**message, "headers": headers}
            await send(message)

        headers = Headers(scope=scope)
        refused = self.refusal(headers)
        if refused is None and scope["path"] != UPLOAD_PATH:
            refused, receive = self._limit_body(headers, receive)
        if refused:
            await _send_json(send_with_headers, *refused)
            return
        try:
            await self.app(scope, receive, send_with_headers)
        except ClientDisconnect:
            return  # the client left in the middle of sending: no one to answer, nothing to log
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise  # a half-sent answer cannot be taken back: uvicorn closes the connection
            await _send_json(send_with_headers, 500, "internal server error; the server's log has the details")

    def _limit_body(self, headers: Headers, receive):
        limit = self.settings.max_json_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            return (413, f"request body of {int(declared):,} bytes is over the limit of {limit:,} bytes"), receive
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:  # a chunked body: FastAPI turns this into the 413 answer
                raise HTTPException(413, f"request body is over the limit of {limit:,} bytes")
            return message

        return None, limited


async def _send_json(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
