"""GET /api/v1/info (the model card in brief) and GET /healthz."""
from __future__ import annotations

from fastapi import APIRouter, Request

from ... import __version__
from ..deps import ModelDep, SettingsDep
from .schemas import Health, Info

router = APIRouter()


@router.get("/api/v1/info", response_model=Info, tags=["info"], summary="The model, its classes and its test accuracy")
async def info(model: ModelDep, settings: SettingsDep) -> Info:
    accuracy = model["metrics"].get("test_accuracy")
    return Info(
        model={"name": model["name"], "version": model["version"], "file": model["file"], "note": model["note"]},
        labels=model["labels"], detector=model["detector"], live_detector=settings.live_detector_name,
        test_accuracy=float(accuracy) if accuracy is not None else None, metrics=model["metrics"],
        limits={"max_upload_bytes": settings.max_upload_bytes, "max_pixels": settings.max_pixels,
                "max_frame_bytes": settings.max_frame_bytes, "max_frame_pixels": settings.max_frame_pixels, "max_faces": settings.max_faces},
        server_version=__version__)


@router.get("/healthz", response_model=Health, tags=["info"], summary="Liveness: 200 once the model is loaded")
async def healthz(request: Request) -> Health:
    return Health(status="ok", model_loaded=getattr(request.app.state, "model", None) is not None)
