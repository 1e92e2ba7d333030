"""The app: settings, the lifespan that starts the analysis workers (server.pool), the routers and the static page."""
from __future__ import annotations

import base64
import functools
import hashlib
import inspect
import logging
import re
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..batch.local import default_workers  # the cores this process may use (its CPU affinity)
from ..safe_decode import return_large_buffers_to_the_os
from .pool import AnalysisPool, PoolConfig
from .security import Guard
from .settings import Settings
from .static_files import PageFiles

STATIC_DIR = Path(__file__).parent / "static"
# FastAPI 0.16x traces every request with OpenTelemetry unless told not to; older versions have no such option
_NO_TELEMETRY = {"telemetry": {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}} \
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters else {}


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI app. The analysis workers start with the server (the lifespan), each loading the model once."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        pool = AnalysisPool(pool_config(settings), settings.workers or default_workers(), settings.max_queue)
        app.state.model = await pool.start()  # the model's name, labels ... as the first worker loaded it
        app.state.pool = pool
        return_large_buffers_to_the_os()  # upload bodies are freed back to the OS, not kept in thread arenas
        # this app's own filter objects: another app in the same process (tests) that stops removes only its own
        quieted = {name: functools.partial(quiet) for name, quiet in _QUIETED.items()}
        for name, quiet in quieted.items():
            logging.getLogger(name).addFilter(quiet)
        try:
            yield
        finally:
            for name, quiet in quieted.items():
                logging.getLogger(name).removeFilter(quiet)
            app.state.model = app.state.pool = None
            await pool.close()

    # redirect_slashes off: Starlette's /path/ -> /path redirect builds its Location from the Host header
    # telemetry off: FastAPI's OpenTelemetry hooks cost CPU on every request, and a local tool sends nothing anywhere
    app = FastAPI(title="ferkit", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  redirect_slashes=False, **_NO_TELEMETRY,
                  description="Facial emotion recognition: upload a photo or stream a camera. "
                              "Images are processed in memory and never stored.")
    app.add_middleware(Guard, settings=settings)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.openapi = lambda: _openapi_with_labels(app)
    app.state.settings = settings
    app.state.model = app.state.pool = None  # set by the lifespan, once a worker has loaded the model

    from .routes import analyze, info, live, recommendations
    from .routes.schemas import REFUSALS

    for router in (info.router, analyze.router, live.router, recommendations.router):
        app.include_router(router, responses=REFUSALS)
    from .routes import corrections  # the page's "Wrong?" on a face
    app.include_router(corrections.router, responses=REFUSALS)
    from .routes import ondevice  # the page's on-device mode: its manifest and model files
    app.include_router(ondevice.router, responses=REFUSALS)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})  # CSP: security.Guard

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(_favicon_png(), media_type="image/png", headers={"Cache-Control": "max-age=86400"})

    app.mount("/static", PageFiles(directory=STATIC_DIR), name="static")  # gzip + Cache-Control: static_files.py
    _add_offline_docs(app)
    return app


def pool_config(settings: Settings) -> PoolConfig:
    """What each analysis worker loads, and its limits. Each worker gets its share of the cores as ONNX Runtime
    threads (one on a machine with as many cores as workers): N processes with a thread per core each would put N
    threads on every core."""
    workers = settings.workers or default_workers()
    from ..detect import DEFAULT_DETECTOR

    return PoolConfig(model=settings.model, detector=settings.detector or DEFAULT_DETECTOR,
                      detect_side=settings.detect_side, adapter=settings.adapter, features=settings.features,
                      threads=settings.threads or max(1, default_workers() // workers),
                      live_detector=settings.live_detector_name, live_detect_every=settings.live_detect_every,
                      live_detect_side=settings.live_detect_side, max_faces=settings.max_faces,
                      memory_bytes=settings.decode_memory_bytes, decode_cpu_seconds=settings.decode_cpu_seconds,
                      analysis_cpu_seconds=settings.analysis_cpu_seconds)


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
    model = getattr(app.state, "model", None)
    if model is None:  # before the model is loaded: labels unknown, so not cached
        return schema
    labels = list(model["labels"])
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
