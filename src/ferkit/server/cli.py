"""`ferkit serve`: start the web app. Light at import time; FastAPI and uvicorn load when the command runs.
Errors stop it through ferkit.cli's one path (CommandError, EXIT_*)."""
from __future__ import annotations

from ..cli.errors import EXIT_OK, EXIT_USAGE, CommandError
from ..cli._args import add_adapter, add_detect_side, add_detector, add_features, add_model


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="start the web app (photo upload and live camera in the browser)",
                       description="Start the web app. Images are processed in memory, never stored. "
                                   "Every setting can also come from FERKIT_* environment variables (FERKIT_MAX_UPLOAD_BYTES ...).")
    p.add_argument("--host", default=None, help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=None, help="port (default: 8000)")
    add_model(p)
    # not checked by argparse: Settings checks it with the rest (it may also come from $FERKIT_DETECTOR)
    add_detector(p, default=None, check=False,
                 help="face detector for uploads: yunet, haar, haar-alt2, blazeface (default: the library's default, yunet)")
    add_detect_side(p)
    add_adapter(p)
    add_features(p, default=None)
    p.add_argument("--live-detector", default=None, help="face detector for live mode (default: the upload detector, on a 320-pixel copy)")
    p.add_argument("--threads", type=int, default=None,
                   help="ONNX Runtime threads per analysis worker (default: the cores divided among the workers)")
    p.add_argument("--max-upload-bytes", type=int, default=None, help="largest accepted upload (default: 10000000)")
    p.add_argument("--max-pixels", type=int, default=None, help="largest decoded upload, width x height (default: 40000000)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="analysis worker processes, each with its own model; every upload and live frame is decoded "
                        "and analysed in one (default: one per core)")
    p.add_argument("--max-faces", type=int, default=None, metavar="N",
                   help="faces analysed per photo or live frame, the largest first; the answer counts the rest "
                        "(default: 100)")
    p.set_defaults(run=run_serve)


def run_serve(args) -> int:
    try:
        import uvicorn

        from .main import create_app
        from .settings import Settings
    except ImportError as e:
        raise CommandError(f"the web app needs the [serve] extra: pip install 'ferkit[serve]' ({e})", EXIT_USAGE) from e
    from pydantic import ValidationError

    from ..recognizer import resolve_model

    given = {k: v for k, v in vars(args).items() if k in Settings.model_fields and v is not None}
    if "features" in given:  # the flag's names, the setting's comma-separated text
        given["features"] = ",".join(given["features"])
    try:
        settings = Settings(**given)
    except ValidationError as e:  # one line per bad setting
        lines = []
        for err in e.errors():
            where = ".".join(map(str, err["loc"]))  # empty for a check across settings (detect_side and detector)
            lines.append(f"{where}={err.get('input')!r}: {err['msg']}" if where else err["msg"])
        raise CommandError("\n".join(lines), EXIT_USAGE) from None
    resolve_model(settings.model)  # an unknown model or a missing file fails here, with its message, not in the server
    if settings.adapter is not None:  # so does a head file that is missing, malformed or for another model
        from ..adapt import Head

        Head.load(settings.adapter).check_base(resolve_model(settings.model), settings.adapter)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    shown = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else host
    print(f"ferkit web app: open http://{shown}:{settings.port}/  (API docs at /docs; Ctrl+C stops)", flush=True)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, **uvicorn_options(settings))
    return EXIT_OK


def uvicorn_options(settings) -> dict:
    """How uvicorn must run the app (also in the tests): the h11 parser, whose header limit (max_header_bytes)
    httptools lacks, in ferkit's bounded protocols (server.protocols: the header limit however the headers arrive,
    body pieces, request and body timeouts, ping floods); no permessage-deflate unless configured (15 KB on the
    wire inflated to 15.9 MB); no Server banner, no access log (uploads are never logged, nor who sent them)."""
    from .protocols import BoundedH11Protocol, BoundedWebSocketProtocol

    return dict(http=BoundedH11Protocol, ws=BoundedWebSocketProtocol,
                h11_max_incomplete_event_size=settings.max_header_bytes, server_header=False,
                ws_max_size=settings.ws_max_message_bytes, ws_per_message_deflate=settings.ws_per_message_deflate,
                log_level="warning", access_log=False)
