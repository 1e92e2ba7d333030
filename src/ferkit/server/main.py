"""The app: settings, the lifespan that loads ONE Recognizer, the routers and the static page."""
from __future__ import annotations

import base64
import hashlib
import logging
import re
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..safe_decode import DecoderPool, return_large_buffers_to_the_os
from .security import Guard
from .settings import Settings
from .static_files import PageFiles

STATIC_DIR = Path(__file__).parent / "static"


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI app. The model is loaded once, when the server starts (the lifespan), and shared by all requests."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from starlette.concurrency import run_in_threadpool

        from ..detect import create_detector
        from ..recognizer import load_recognizer

        app.state.recognizer = await run_in_threadpool(
            load_recognizer, settings.model, settings.detector, threads=settings.threads, detect_side=settings.detect_side,
            adapter=settings.adapter, features=settings.features or None)
        app.state.inference_limiter = anyio.CapacityLimiter(settings.inference_workers)
        return_large_buffers_to_the_os()  # upload bodies are freed back to the OS, not kept in thread arenas
        # every client's image is decoded in a child process with hard limits (a bomb cannot hurt the server)
        app.state.decoder = DecoderPool(settings.decode_workers, settings.decode_memory_bytes, settings.decode_cpu_seconds)
        app.state.decoder.start()
        if settings.live_detector_name != settings.detector:  # else live mode shares the recognizer's detector
            app.state.live_detector = await run_in_threadpool(create_detector, settings.live_detector_name)
        for name, quiet in _QUIETED.items():
            logging.getLogger(name).addFilter(quiet)
        try:
            yield
        finally:
            for name, quiet in _QUIETED.items():
                logging.getLogger(name).removeFilter(quiet)
            app.state.recognizer = None
            app.state.decoder.close()

    # redirect_slashes off: Starlette's /path/ -> /path redirect builds its Location from the Host header
    app = FastAPI(title="ferkit", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  redirect_slashes=False,
                  description="Facial emotion recognition: upload a photo or stream a camera. "
                              "Images are processed in memory and never stored.")
    app.add_middleware(Guard, settings=settings)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.openapi = lambda: _openapi_with_labels(app)
    app.state.settings = settings
    app.state.recognizer = None
    app.state.live_detector = None  # None: live mode uses the recognizer's own detector

    from .routes import analyze, info, live, recommendations
    from .routes.schemas import REFUSALS

    for router in (info.router, analyze.router, live.router, recommendations.router):
        app.include_router(router, responses=REFUSALS)
    from .routes import corrections  # the page's "Wrong?" on a face
    app.include_router(corrections.router, responses=REFUSALS)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})  # CSP: security.Guard

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(_favicon_png(), media_type="image/png", headers={"Cache-Control": "max-age=86400"})

    app.mount("/static", PageFiles(directory=STATIC_DIR), name="static")  # gzip + Cache-Control: static_files.py
    _add_offline_docs(app)
    return app


def _client_protocol_errors(record: logging.LogRecord) -> bool:
    """Drops uvicorn's lines for a client's broken protocol, already answered: a WebSocket text message that is not
    UTF-8 (closed with 1007, as RFC 6455 requires; uvicorn logs a traceback) and a malformed HTTP request
    (answered 400; uvicorn logs a warning for each)."""
    return not str(record.msg).startswith(("Invalid UTF-8 sequence received from client", "Invalid HTTP request received"))


def _below_error(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


# What a client's malformed input makes our libraries log, while the server runs: the client gets a 4xx or a
# close code naming the fault, and the log stays for the server's own faults.
_QUIETED = {"uvicorn.error": _client_protocol_errors,          # broken HTTP, WebSocket text that is not UTF-8
            "python_multipart.multipart": _below_error}       # a malformed multipart body (answered 400)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 as the API's one error shape, {"detail": "explain: Input should be a valid boolean ..."}."""
    return JSONResponse({"detail": validation_detail(exc.errors())}, status_code=422)


def validation_detail(errors) -> str:
    parts = []
    for e in errors:
        where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path", "header"))
        parts.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
    return "; ".join(parts)[:1000] or "invalid request"


def _openapi_with_labels(app: FastAPI) -> dict:
    """The schema, with a face's `emotion` and `probabilities` keys as an enum of the loaded model's labels."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    rec = getattr(app.state, "recognizer", None)
    if rec is None:  # before the model is loaded: labels unknown, so not cached
        return schema
    labels = list(rec.labels)
    face = schema["components"]["schemas"]["FaceResult"]["properties"]
    face["emotion"]["enum"] = labels
    face["probabilities"]["propertyNames"] = {"enum": labels}
    app.openapi_schema = schema
    return schema


def _favicon_png() -> bytes:
    """32x32 PNG: a round face on a transparent background."""
    import cv2
    import numpy as np

    icon = np.zeros((32, 32, 4), np.uint8)
    cv2.circle(icon, (16, 16), 14, (40, 180, 250, 255), -1, cv2.LINE_AA)
    for x in (11, 21):
        cv2.circle(icon, (x, 13), 2, (40, 40, 40, 255), -1, cv2.LINE_AA)
    cv2.ellipse(icon, (16, 18), (7, 5), 0, 20, 160, (40, 40, 40, 255), 2, cv2.LINE_AA)
    return cv2.imencode(".png", icon)[1].tobytes()


def _csp_hashes(html: str) -> str:
    """'sha256-...' for every inline <script> of a page, so its CSP can allow exactly those and nothing else."""
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in scripts)


def _add_offline_docs(app: FastAPI) -> None:
    """/docs with Swagger UI served from the installed swagger-ui-bundle package, not FastAPI's default CDN."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:  # without the package the schema is still at /openapi.json
        return
    from fastapi.openapi.docs import get_swagger_ui_html

    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        page = get_swagger_ui_html(openapi_url=app.openapi_url, title="ferkit API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png")
        # Swagger UI sets inline styles and uses data: images; its one inline script is allowed by its hash
        page.headers["Content-Security-Policy"] = (
            f"default-src 'self'; script-src 'self' {_csp_hashes(page.body.decode())}; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
        return page
