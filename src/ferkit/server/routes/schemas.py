"""Response shapes, so the OpenAPI schema (/docs, /openapi.json) describes what the API returns."""
from __future__ import annotations

from pydantic import BaseModel, Field


class Box(BaseModel):
    x: int
    y: int
    w: int
    h: int


def _absent(value) -> bool:
    """Optional keys left out of the answer when not computed, so the answer without them is as it always was."""
    return value is None


class FaceResult(BaseModel):
    box: Box = Field(description="the face in image pixels")
    emotion: str = Field(description="the most probable emotion")
    probabilities: dict[str, float] = Field(description="every emotion's probability; they sum to 1")
    detector_score: float | None = Field(None, description="the face detector's score for this box")
    detector_confidence: float = Field(description="the same value as detector_score (deprecated: use detector_score)")
    detector: str | None = Field(None, description="the face detector that found the face (yunet, blazeface, haar ...)")
    landmarks: list[tuple[float, float]] | None = Field(
        None, description="five [x, y] points in image pixels: right eye, left eye, nose tip, right and left mouth "
                          "corner (null when the detector gives none)")
    adapter: str | None = Field(None, description="with an adapter (ferkit adapt): its name; probabilities are then "
                                "over its classes", exclude_if=_absent)
    base_probabilities: dict[str, float] | None = Field(None, description="with an adapter: the base model's own "
                                                        "probabilities", exclude_if=_absent)
    # the face features (FERKIT_FEATURES / serve --features): absent from the answer unless the server reads them
    mesh: list[tuple[float, float, float]] | None = Field(
        None, description="with the mesh feature: 478 [x, y, z] points in image pixels (MediaPipe Face Mesh V2)",
        exclude_if=_absent)
    blendshapes: dict[str, float] | None = Field(
        None, description="with the blendshapes feature: MediaPipe's 52 expression coefficients, 0-1", exclude_if=_absent)
    action_units: dict[str, float] | None = Field(
        None, description="with the blendshapes feature: FACS action-unit estimates (AU1 ... AU43), 0-1, read from the "
                          "blendshapes (docs/face-features.md)", exclude_if=_absent)
    head_pose: dict[str, float] | None = Field(
        None, description="with the pose feature: yaw, pitch, roll in degrees (yaw > 0: turned to the image's right; "
                          "pitch > 0: chin up; roll > 0: clockwise on screen)", exclude_if=_absent)
    heatmap: str | None = Field(None, description="with explain=true: what the model looked at, as a "
                                "data:image/png;base64 URL of a heat map (with alpha) to stretch over the box")


class ImageSize(BaseModel):
    width: int
    height: int


class AnalyzeResult(BaseModel):
    image: ImageSize
    faces: list[FaceResult] = Field(description="one per face, left to right; empty when there is none")
    faces_left_out: int = Field(0, description="faces found beyond the server's max_faces (the smallest), not "
                                               "analysed")
    message: str | None = Field(None, description="set when no face was found")
    elapsed_ms: float = Field(description="decoding + detection + classification time in the analysis worker")


class Error(BaseModel):
    detail: str = Field(description="what was wrong with the request")


def error_responses(**why: str) -> dict:
    """{status: {"model": Error, "description": why}} for a route's `responses=`; keys like s404="..."."""
    return {int(code.lstrip("s")): {"model": Error, "description": text} for code, text in why.items()}


# Answers every route can give (security.Guard), documented once on each router.
REFUSALS = error_responses(
    s400="the Host header is not a name this server answers to (DNS rebinding guard)",
    s403="a cross-origin request (its Origin is neither this server nor in allowed_origins)")


class ModelInfo(BaseModel):
    name: str
    version: str = Field(description="the ferkit version that exported the model")
    file: str
    note: str | None = None


class Info(BaseModel):
    model: ModelInfo
    labels: list[str] = Field(description="the emotions, in the model's order")
    detector: str = Field(description="the face detector for uploads")
    live_detector: str = Field(description="the face detector for live mode")
    test_accuracy: float | None = Field(description="accuracy on the model card's test set (metrics.test_set); "
                                        "null until the model has been evaluated")
    metrics: dict = Field(description="the model card's metrics as written by `ferkit evaluate` (may be empty)")
    limits: dict[str, int] = Field(description="upload and live-mode size limits")
    server_version: str


class Health(BaseModel):
    status: str
    model_loaded: bool
