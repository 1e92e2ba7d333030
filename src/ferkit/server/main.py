"""The app: settings, the lifespan that loads ONE Recognizer, the routers and the static page."""
from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from .. import __version__
from .settings import Settings

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
            load_recognizer, settings.model, settings.detector, threads=settings.threads)
        app.state.inference_limiter = anyio.CapacityLimiter(settings.inference_workers)
        if settings.live_detector_name != settings.detector:  # else live mode shares the recognizer's detector
            app.state.live_detector = await run_in_threadpool(create_detector, settings.live_detector_name)
        yield
        app.state.recognizer = None

    app = FastAPI(title="ferkit", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Facial emotion recognition: upload a photo or stream a camera. "
                              "Images are processed in memory and never stored.")
    app.state.settings = settings
    app.state.recognizer = None
    app.state.live_detector = None  # None: live mode uses the recognizer's own detector

    from .routes import analyze, info, live, recommendations

    app.include_router(info.router)
    app.include_router(analyze.router)
    app.include_router(live.router)
    app.include_router(recommendations.router)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache", "Content-Security-Policy": CSP})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _add_offline_docs(app)
    return app


# The page may load and connect only to this server; images may also be data: (heat maps) and blob: (the photo).
CSP = ("default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


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
        return get_swagger_ui_html(openapi_url=app.openapi_url, title="ferkit API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png")
