"""The page's static files (/static/...): gzip-compressed when the browser accepts it, with Cache-Control.

app.js, style.css and the other text files: `no-cache` (the browser keeps its copy and revalidates it with the
ETag: a 304 when unchanged, so a new release is picked up at once); images: kept for a day.
The on-device runtime (ondevice/): its .mjs and .wasm are compressed too (the wasm: 14.8 MB, about a quarter
gzipped), and its scripts carry their own Content-Security-Policy: a module Web Worker runs under its script's
policy, which must let it import the runtime's modules, fetch the models and compile WebAssembly
('wasm-unsafe-eval'); the API's default for scripts (security.OTHER_CSP) forbids all three. The compressed copy of
a file is made once per version of the file (path, size, mtime) and kept in memory: a few files of a few kB.
A `Range` header that is malformed or past the file's end is answered in the API's one error shape,
{"detail": "..."} (400 or 416), not in Starlette's plain text."""
from __future__ import annotations

import gzip
import os
from functools import lru_cache

from starlette.datastructures import Headers
from starlette.responses import FileResponse, JSONResponse, MalformedRangeHeader, RangeNotSatisfiable, Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

COMPRESSED = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".css": "text/css",
              ".html": "text/html", ".svg": "image/svg+xml", ".json": "application/json", ".md": "text/markdown"}
REVALIDATE = "no-cache"           # text: kept, revalidated on each use
KEEP = "public, max-age=86400"    # images: kept for a day
WORKER_CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; object-src 'none'; "
              "base-uri 'none'; frame-ancestors 'none'")


@lru_cache(maxsize=64)
def _gzipped(path: str, size: int, mtime_ns: int) -> bytes:
    with open(path, "rb") as f:
        return gzip.compress(f.read(), compresslevel=9, mtime=0)


class PageFiles(StaticFiles):
    def file_response(self, full_path, stat_result: os.stat_result, scope: Scope, status_code: int = 200) -> Response:
        refused = _bad_range(scope, stat_result.st_size) if status_code == 200 else None
        if refused is not None:
            return refused
        response = super().file_response(full_path, stat_result, scope, status_code)
        suffix = os.path.splitext(str(full_path))[1].lower()
        response.headers["Cache-Control"] = REVALIDATE if suffix in COMPRESSED else KEEP
        if suffix in (".js", ".mjs") and "/ondevice/" in str(full_path).replace(os.sep, "/"):
            response.headers["Content-Security-Policy"] = WORKER_CSP
        if suffix not in COMPRESSED or status_code != 200 or isinstance(response, NotModifiedResponse):
            return response
        response.headers["Vary"] = "Accept-Encoding"
        if "gzip" not in Headers(scope=scope).get("accept-encoding", "").lower() or scope.get("method") == "HEAD":
            return response
        body = _gzipped(str(full_path), stat_result.st_size, stat_result.st_mtime_ns)
        headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "accept-ranges")}
        headers["Content-Encoding"] = "gzip"
        return Response(body, status_code=200, headers=headers, media_type=COMPRESSED[suffix])


def _bad_range(scope: Scope, size: int) -> JSONResponse | None:
    """The JSON refusal of a GET's or HEAD's `Range` header that FileResponse would refuse in plain text; else None.
    (Parsed with FileResponse's own parser, so what it accepts is served as before.)"""
    http_range = Headers(scope=scope).get("range")
    if http_range is None or scope.get("method", "GET").upper() not in ("GET", "HEAD"):
        return None
    try:
        FileResponse._parse_range_header(http_range, size)
    except MalformedRangeHeader:
        return JSONResponse({"detail": f'Range header "{http_range[:100]}" is malformed: expected bytes=START-END'},
                            status_code=400)
    except RangeNotSatisfiable:
        return JSONResponse({"detail": f'Range header "{http_range[:100]}" is past the end of the file ({size} bytes)'},
                            status_code=416, headers={"Content-Range": f"bytes */{size}"})
    return None
