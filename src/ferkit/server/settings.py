"""The server's settings: one typed class, read from FERKIT_* environment variables or passed to create_app()."""
from __future__ import annotations

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MB = 1_000_000


def _library_default_detector() -> str:
    from .. import detect  # cv2 loads only when settings are built

    return getattr(detect, "DEFAULT_DETECTOR", "haar")


class Settings(BaseSettings):
    """Every knob of the web app. `FERKIT_PORT=9000 ferkit serve` works, as does `create_app(Settings(port=9000))`."""
    model_config = SettingsConfigDict(env_prefix="FERKIT_", frozen=True)

    host: str = "127.0.0.1"                 # loopback by default: nothing is exposed unless asked
    port: int = Field(8000, ge=0, le=65535)
    model: str | None = None                # a shipped model name or an .onnx path; None = the default (ferplus)
    detector: str = Field(default_factory=lambda: _library_default_detector())  # uploads: load_recognizer's default
    detect_side: int | None = Field(None, ge=32)  # yunet's working size for uploads (longer side, px); None = its
                                                  # 640. Smaller is faster and misses small faces (README, Limits)
    adapter: str | None = None              # a head file from `ferkit adapt` (fitted on `model`); None = no adapter
    features: str = ""                      # face features for uploads and live mode, comma-separated: mesh,
                                            # blendshapes, pose, or all ("" = none: today's speed); mesh.parse_features
    threads: int | None = Field(None, ge=1)  # ONNX Runtime intra-op threads per inference; None = its default
    max_upload_bytes: int = Field(10 * MB, ge=1)       # the whole request body of POST /api/v1/analyze
    max_pixels: int = Field(40_000_000, ge=1)          # decoded width x height of an upload (decompression bombs)
    max_frame_bytes: int = Field(2 * MB, ge=1)         # one live-mode frame on the WebSocket
    max_frame_pixels: int = Field(1920 * 1080, ge=1)   # decoded size of one live-mode frame
    ws_max_message_bytes: int = Field(16 * MB, ge=1)   # the WebSocket layer closes the socket (1009) above this
    ws_per_message_deflate: bool = False               # compression on the socket: off, so a message's size on the
                                                       # wire is its size in memory (deflate: 15 KB -> 15.9 MB)
    ws_idle_seconds: float = Field(300, gt=0)          # a live socket that sends no message this long is closed
    workers: int | None = Field(None, ge=1)            # analysis worker processes (server.pool): every upload and
                                                       # live frame is decoded and analysed in one; None = one per
                                                       # core this process may use
    max_queue: int = Field(64, ge=1)                   # jobs waiting for a worker; past it: 503 with Retry-After
    max_faces: int = Field(100, ge=1)                  # faces analysed per upload or live frame (the largest); the
                                                       # answer's faces_left_out counts the rest
    decode_memory_bytes: int = Field(512 * MB, ge=64 * MB)  # memory one job may add to its worker (decoding and
                                                       # analysis); past it: 413, worker replaced
    decode_cpu_seconds: float = Field(1.0, gt=0)       # CPU time to decode one image; past it: 413, worker replaced
    analysis_cpu_seconds: float = Field(5.0, gt=0)     # CPU time to analyse one decoded image (detect, classify,
                                                       # face features for up to max_faces faces); likewise
    live_detector: str | None = None                   # live mode's face detector; None = `detector` (YuNet, which
                                                       # live mode runs on a 320-pixel copy: live_detect_side)
    live_detect_every: int = Field(3, ge=1)            # live mode runs the face detector on every n-th frame and
    live_detect_side: int | None = Field(320, ge=64)   # follows faces in between; detection on a copy this large
    # Who may talk to the server (see docs/web.md, "Threat model"). Lists come from the environment as JSON:
    # FERKIT_ALLOWED_HOSTS='["ferkit.lan"]'.
    allowed_hosts: list[str] = []      # Host names accepted besides localhost, 127.0.0.1, ::1 and `host`
                                       # (bound to 0.0.0.0 or ::, any IP address too); "*" turns the check off
    allowed_origins: list[str] = []    # other sites' origins ("https://app.example") whose pages may call the API
                                       # and open the WebSocket; same-origin and no-Origin requests always pass
    max_json_bytes: int = Field(16_384, ge=1)          # request bodies other than uploads (POST /api/v1/feedback)
    max_header_bytes: int = Field(65_536, ge=1024)     # request line + headers; more is refused with 400

    @field_validator("detector", "live_detector")
    @classmethod
    def _known_detector(cls, name: str | None) -> str | None:
        from ..detect import available_detectors  # cv2 loads only when settings are built

        if name is not None and name not in available_detectors():
            raise ValueError(f"unknown detector {name!r}; valid: {', '.join(available_detectors())}")
        return name

    @field_validator("features", mode="before")
    @classmethod
    def _known_features(cls, value) -> str:
        from ..mesh import parse_features

        return ",".join(parse_features(value))

    @model_validator(mode="after")
    def _detect_side_needs_yunet(self) -> "Settings":
        from ..detect import check_detect_side

        check_detect_side(self.detector, self.detect_side)
        return self

    @property
    def live_detector_name(self) -> str:
        """The detector live mode runs: `live_detector`, or the upload `detector` when that is None."""
        return self.live_detector or self.detector
