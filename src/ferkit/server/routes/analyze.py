"""POST /api/v1/analyze: one photo in, faces with all probabilities (and optional heat maps) out.

The body is read in memory with a running byte count, so an oversized upload is refused after at most
`max_upload_bytes` (never read unbounded, never spooled to disk as Starlette's form parser would).
"""
from __future__ import annotations

import logging

import anyio

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from python_multipart.multipart import MultipartParser, parse_options_header

from ...images import IMAGE_FORMATS
from ..deps import PoolDep, SettingsDep
from ..pool import AnalysisFailed, PoolBusy, Refused, WorkerLost, lost_message
from .schemas import AnalyzeResult, error_responses

router = APIRouter(prefix="/api/v1", tags=["analyze"])
log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 2  # what a 503 (every worker busy, or one restarting) suggests
IMAGE_TYPES = "image/jpeg, image/png, image/webp, image/bmp or image/gif"
_ERRORS = error_responses(
    s400="empty upload, a malformed multipart body or Content-Length, or a Host header this server does not answer to",
    s413="body over the upload limit, or an image over the pixel limit",
    s415="neither multipart/form-data nor an image content type, or bytes that are not " + ", ".join(IMAGE_FORMATS),
    s422="a corrupt or truncated image, no 'file' field, or a bad query parameter",
    s503="every analysis worker is busy and the queue is full, or the worker stopped on this request (Retry-After)")
_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary", "minLength": 1}}}},
    "image/*": {"schema": {"type": "string", "format": "binary", "minLength": 1}}}}}


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise HTTPException(400, f"invalid Content-Length header {declared[:40]!r}") from None
        if size > limit:
            raise HTTPException(413, f"request body of {size:,} bytes is over the limit of {limit:,} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"request body is over the limit of {limit:,} bytes")
    return body  # a bytearray: decoding reads it in place, no copy of up to max_upload_bytes


MAX_PARTS = 8            # a form with the photo has one or two parts; 900k empty parts cost seconds to parse
MAX_PART_HEADERS = 8     # per part: Content-Disposition, Content-Type, rarely more
MAX_HEADER_CHARS = 1024  # one part header's name or value
INLINE_MULTIPART_BYTES = 100_000  # multipart bodies up to this size are parsed on the event loop (the route)
SHOWN_NAMES = 5          # field names quoted in the "no 'file' field" answer (not every name a client sent)


def file_from_multipart(body: bytes, content_type: str) -> tuple[bytes, str, str | None]:
    """-> (data, filename, the part's content type) of the form field named "file".

    Bounded work per byte and a bounded number of parts and headers: anything past the caps is a 400 at once,
    never parsed further. Every parser error, the constructor's too (a boundary over 256 characters), is a 400.
    Runs on the event loop for bodies up to INLINE_MULTIPART_BYTES, in a worker thread for larger ones (the route)."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise HTTPException(400, "multipart body without a boundary in its Content-Type")
    parts: list[dict] = []
    header = {"field": bytearray(), "value": bytearray()}

    def on_part_begin():
        if len(parts) >= MAX_PARTS:
            raise _Refused(f"more than {MAX_PARTS} parts; send the image in one part named 'file'")
        parts.append({"headers": {}, "data": bytearray()})

    def on_header_field(data, start, end):
        header["field"] += data[start:end]
        if len(header["field"]) > MAX_HEADER_CHARS:
            raise _Refused(f"a part header name over {MAX_HEADER_CHARS} bytes")

    def on_header_value(data, start, end):
        header["value"] += data[start:end]
        if len(header["value"]) > MAX_HEADER_CHARS:
            raise _Refused(f"a part header value over {MAX_HEADER_CHARS} bytes")

    def on_header_end():
        headers = parts[-1]["headers"]
        if len(headers) >= MAX_PART_HEADERS:
            raise _Refused(f"a part with more than {MAX_PART_HEADERS} headers")
        headers[header["field"].decode("latin-1").lower()] = header["value"].decode("latin-1")
        header["field"], header["value"] = bytearray(), bytearray()

    def on_part_data(data, start, end):
        parts[-1]["data"] += data[start:end]

    try:  # the constructor raises too: a boundary over 256 characters is a FormParserError
        parser = MultipartParser(boundary, {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                                            "on_header_value": on_header_value, "on_header_end": on_header_end,
                                            "on_part_data": on_part_data})
        parser.write(body)
        parser.finalize()
    except _Refused as e:
        raise HTTPException(400, f"malformed multipart body: {e}") from None
    except Exception as e:  # python-multipart raises its own MultipartParseError, FormParserError and ValueErrors
        raise HTTPException(400, f"malformed multipart body ({str(e)[:200]})") from None
    for part in parts:
        _, disp = parse_options_header(part["headers"].get("content-disposition", ""))
        if disp.get(b"name") == b"file":
            name = disp.get(b"filename", b"upload").decode("utf-8", "replace")[:200] or "upload"
            return part["data"], name, part["headers"].get("content-type")
    names = [parse_options_header(p["headers"].get("content-disposition", ""))[1].get(b"name", b"?")
             .decode("utf-8", "replace")[:40] for p in parts[:SHOWN_NAMES]]
    more = f" and {len(parts) - SHOWN_NAMES} more" if len(parts) > SHOWN_NAMES else ""
    raise HTTPException(422, f"the multipart body has no 'file' field (fields: {', '.join(names) or 'none'}{more})")


def _parse_multipart(body: bytes, content_type: str):
    """file_from_multipart's result, or its HTTPException returned rather than raised: an exception that crosses the
    thread's future keeps the frames it passed, and with them the body (up to 10 MB), in a reference cycle until the
    next full collection (the cost campaign's multipart bombs kept about 100 MB in the server so)."""
    try:
        return file_from_multipart(body, content_type)
    except HTTPException as e:
        return e


class _Refused(Exception):
    """A multipart body past one of the caps above; raised from a parser callback to stop parsing at once."""


def _is_image_type(ctype: str | None) -> bool:
    mime = (ctype or "").split(";")[0].strip().lower()
    return mime.startswith("image/") or mime == "application/octet-stream"


@router.post("/analyze", response_model=AnalyzeResult, responses=_ERRORS, openapi_extra=_BODY,
             summary="Find faces in a photo and recognise each one's emotion")
async def analyze(request: Request, pool: PoolDep, settings: SettingsDep,
                  explain: bool = Query(False, description="add a class-activation heat map per face")) -> Response:
    """Send the photo as multipart/form-data in a field named `file` (or as a raw image/* body).
    The image is decoded and analysed in memory, in an analysis worker process, and discarded after the answer;
    nothing is stored or logged. At most `max_faces` faces (the largest) are analysed: `faces_left_out` counts the
    rest."""
    ctype = request.headers.get("content-type", "")
    mime = ctype.split(";")[0].strip().lower()
    if mime != "multipart/form-data" and not _is_image_type(mime):
        raise HTTPException(415, f"unsupported Content-Type {mime or '(none)'!r}: send multipart/form-data with "
                                 f"the image in a field named 'file', or the image itself as {IMAGE_TYPES}")
    body = await read_limited(request, settings.max_upload_bytes)
    if mime == "multipart/form-data":
        # a small body is parsed on the event loop: a 50 KB photo's takes 0.05 ms, less than handing it to a thread
        # (0.07-0.2 ms, and a thread that contends for the GIL under load); python-multipart's slowest input found
        # (boundaries followed by junk, over and over) costs 40 ms a MB, so only up to 4 ms here; larger bodies are
        # parsed in a worker thread, where a hostile one cannot stall the loop
        if len(body) <= INLINE_MULTIPART_BYTES:
            parsed = _parse_multipart(body, ctype)
        else:
            parsed = await anyio.to_thread.run_sync(_parse_multipart, body, ctype)
        if isinstance(parsed, HTTPException):  # raised here, not in the thread (see _parse_multipart)
            del body
            raise parsed
        data, name, part_type = parsed
        if part_type and not _is_image_type(part_type):
            raise HTTPException(415, f"{name}: content type {part_type!r} is not an image; upload {IMAGE_TYPES}")
    else:
        data, name = body, "upload"
    if not data:
        raise HTTPException(400, f"empty upload: {name} has 0 bytes (the file is empty)")
    del body
    try:
        answer = await pool.analyze(data, name, settings.max_pixels, explain)
    except Refused as e:
        raise HTTPException(e.status, e.detail) from None
    except PoolBusy:
        return busy()
    except WorkerLost as e:
        status, detail = lost_message(e, name, pool.config)
        return JSONResponse({"detail": detail}, status, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
                            if status == 503 else None)
    except AnalysisFailed as e:  # ferkit's fault, not the client's: logged (no image data), answered in words
        log.error("analysis failed on an upload:\n%s", e)
        raise HTTPException(500, f"{name} could not be analysed (a fault in the server, logged)") from None
    return Response(answer, media_type="application/json")  # the worker's JSON as it is: AnalyzeResult's shape


def busy() -> JSONResponse:
    return JSONResponse({"detail": "the server is busy: every analysis worker is working and the queue is full; "
                                   f"try again in {RETRY_AFTER_SECONDS} s"}, 503,
                        headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
