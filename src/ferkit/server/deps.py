"""Dependencies shared by the routes: the one Recognizer and the Settings, both held on app.state."""
from __future__ import annotations

from typing import Annotated

import anyio

from fastapi import Depends, HTTPException
from starlette.requests import HTTPConnection

from ..recognizer import Recognizer
from .settings import Settings


def get_settings(conn: HTTPConnection) -> Settings:
    return conn.app.state.settings


async def run_inference(conn: HTTPConnection, fn, *args):
    """fn(*args) in a worker thread, off the event loop, at most `inference_workers` at a time."""
    return await anyio.to_thread.run_sync(fn, *args, limiter=conn.app.state.inference_limiter)


def get_recognizer(conn: HTTPConnection) -> Recognizer:
    rec = getattr(conn.app.state, "recognizer", None)
    if rec is None:  # only before the lifespan has run (an app used without its server)
        raise HTTPException(503, "the model is not loaded yet")
    return rec


SettingsDep = Annotated[Settings, Depends(get_settings)]
RecognizerDep = Annotated[Recognizer, Depends(get_recognizer)]

__all__ = ["SettingsDep", "RecognizerDep", "get_settings", "get_recognizer", "run_inference"]
