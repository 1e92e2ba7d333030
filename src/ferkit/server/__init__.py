"""ferkit's web app: a FastAPI server (JSON API, WebSocket live mode) and a page that uses it.

    ferkit serve                       # then open http://127.0.0.1:8000
    from ferkit.server import create_app, Settings
"""
from __future__ import annotations


def __getattr__(name: str):
    # Lazy, so `ferkit --help` and the CLI's parser do not import FastAPI.
    if name == "create_app":
        from .main import create_app

        return create_app
    if name == "Settings":
        from .settings import Settings

        return Settings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["create_app", "Settings"]
