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

        from ..recognizer import load_recognizer

        app.state.recognizer = await run_in_threadpool(
            load_recognizer, settings.model, settings.detector, threads=settings.threads)
        app.state.inference_limiter = anyio.CapacityLimiter(settings.inference_workers)
        yield
        app.state.recognizer = None

    app = FastAPI(title="ferkit", version=__version__, lifespan=lifespan,
                  description="Facial emotion recognition: upload a photo or stream a camera. "
                              "Images are processed in memory and never stored.")
    app.state.settings = settings
    app.state.recognizer = None

    from .routes import analyze, info, live, recommendations

    app.include_router(info.router)
    app.include_router(analyze.router)
    app.include_router(live.router)
    app.include_router(recommendations.router)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
