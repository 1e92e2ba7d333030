"""Dependencies shared by the routes: the analysis pool, the model's description and the Settings, on app.state."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException
from starlette.requests import HTTPConnection

from .pool import AnalysisPool
from .settings import Settings


# async: FastAPI runs a plain `def` dependency in its thread pool, a thread hand-off per dependency per request

async def get_settings(conn: HTTPConnection) -> Settings:
    return conn.app.state.settings


async def get_pool(conn: HTTPConnection) -> AnalysisPool:
    pool = getattr(conn.app.state, "pool", None)
    if pool is None:  # only before the lifespan has run (an app used without its server)
        raise HTTPException(503, "the model is not loaded yet")
    return pool


async def get_model(conn: HTTPConnection) -> dict:
    """The loaded model as a worker described it: name, labels, file, version, note, metrics, detector, features."""
    await get_pool(conn)
    return conn.app.state.model


SettingsDep = Annotated[Settings, Depends(get_settings)]
PoolDep = Annotated[AnalysisPool, Depends(get_pool)]
ModelDep = Annotated[dict, Depends(get_model)]

__all__ = ["SettingsDep", "PoolDep", "ModelDep", "get_settings", "get_pool", "get_model"]
