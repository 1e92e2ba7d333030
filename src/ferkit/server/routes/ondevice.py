"""On-device mode (#36): GET /api/v1/ondevice, the manifest the page's Web Worker (static/ondevice/worker.js) loads
the models from, and GET /ondevice/models/<file>, the model bytes.

The manifest names every file the in-browser pipeline runs (the server's own classifier, YuNet, BlazeFace, the face
feature models) with its URL, sha256 and size, the classifier's ferkit metadata (labels, preprocessing: the worker
reads them as the Recognizer does) and the detector and live settings the Python pipeline runs with, read from the
classes' own defaults and the server's Settings, so both runtimes run one configuration. The URL carries the first
16 hex digits of the file's sha256, so the bytes can be cached for a year: a new file is a new URL. The worker checks
every file's sha256 before use.

With an adapter head (--adapter), the manifest carries the head itself ("adapter": its feature names, standardisation,
weights, bias, classes, the base model it was fitted on and the face-feature stages it reads): ondevice/head.js
applies it to each face as Recognizer does. A head reading the mesh embedding also gets "features.mesh_embedding": the
mesh model with the embedding as one more output, the very graph mesh.with_shared_map_output gives the Python side
(made from the shipped file once, served from memory like a file).
"""
from __future__ import annotations

import hashlib
import inspect
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response

from ..deps import ModelDep, SettingsDep

router = APIRouter()

MODEL_ROUTE = "/ondevice/models"
RUNTIME_DIR = "/static/ondevice/ort/"
IMMUTABLE = "public, max-age=31536000, immutable"
# Why on-device mode cannot mirror the server's configuration (the page then stays with the server)
UNSUPPORTED_DETECTOR = "the server's detector is {name!r}; on-device mode runs yunet (with its blazeface retry) only"
EMBEDDING_MODEL = "face_mesh_v2.embedding.onnx"  # the derived mesh model's name in its URL


@lru_cache(maxsize=32)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, once per version of it (path, size, mtime)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _entry(path: Path) -> dict:
    """A file's manifest entry: its URL (the sha256 prefix as the version), sha256 and size."""
    st = path.stat()
    sha = _digest(str(path), st.st_size, st.st_mtime_ns)
    return {"url": f"{MODEL_ROUTE}/{path.name}?v={sha[:16]}", "sha256": sha, "bytes": st.st_size}


@lru_cache(maxsize=1)
def _embedding_model() -> tuple[bytes, dict]:
    """The mesh model with its embedding output (mesh.with_shared_map_output of the shipped file, as FaceMesh loads it
    for a head on the embedding) and its manifest entry."""
    from ...mesh import MESH_MODEL, with_shared_map_output

    data = with_shared_map_output(MESH_MODEL.read_bytes())
    sha = hashlib.sha256(data).hexdigest()
    return data, {"url": f"{MODEL_ROUTE}/{EMBEDDING_MODEL}?v={sha[:16]}", "sha256": sha, "bytes": len(data)}


def _defaults(cls) -> dict:
    """The keyword defaults of a class's __init__: the settings the Python pipeline runs with unless told otherwise."""
    return {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty}


@lru_cache(maxsize=8)
def _files(model: str | None) -> dict[str, Path]:
    """Every file on-device mode may fetch, by its name in the URL: the classifier (and an ensemble's shipped members),
    the detectors, the face-feature models."""
    from ...detect import BlazeFaceDetector, YuNetDetector
    from ...mesh import BLENDSHAPE_MODEL, CANONICAL_FACE, MESH_MODEL
    from ...registry import read_metadata, resolve_model, shipped_member_files

    classifier = resolve_model(model)
    paths = [classifier, *(p for p, _ in shipped_member_files(classifier, read_metadata(classifier))),
             YuNetDetector.MODEL, BlazeFaceDetector.MODEL, MESH_MODEL, BLENDSHAPE_MODEL, CANONICAL_FACE]
    return {p.name: p for p in paths}


@lru_cache(maxsize=8)
def _classifier(model: str | None) -> dict:
    from ...registry import read_metadata, resolve_model, shipped_member_files

    path = resolve_model(model)
    meta = read_metadata(path)
    members = [{**_entry(p), "weight": float(e["weight"])} for p, e in shipped_member_files(path, meta)]
    return {"name": meta.get("name", path.stem), **_entry(path), "labels": list(meta["labels"]),
            "metadata": {"preprocess": meta["preprocess"], "labels": list(meta["labels"])}, "members": members}


@lru_cache(maxsize=8)
def _head(path: str, size: int, mtime_ns: int) -> dict:
    """The manifest's "adapter": what ondevice/head.js needs of the head file at `path` (once per version of the
    file). Every number as Head.load read it, so both runtimes apply the same head."""
    from ...head import PROBABILITY_FLOOR, Head

    head = Head.load(path)
    return {"name": head.name, "classes": list(head.classes), "features": list(head.feature_names),
            "mean": head.mean.tolist(), "scale": head.scale.tolist(), "weights": head.weights.tolist(),
            "bias": head.bias.tolist(), "probability_floor": PROBABILITY_FLOOR,
            "base_model": {k: head.base_model.get(k) for k in ("name", "file", "sha256")},
            "stage_features": list(head.stage_features)}


def _adapter(path: str | None) -> dict | None:
    if not path:
        return None
    st = Path(path).stat()
    return _head(str(path), st.st_size, st.st_mtime_ns)


def manifest(settings) -> dict:
    """The manifest for a server running with `settings`."""
    from ...detect import BlazeFaceDetector, YuNetDetector
    from ...mesh import ACTION_UNITS, BLENDSHAPE_INPUT_POINTS, BLENDSHAPE_MODEL, BLENDSHAPES, CANONICAL_FACE, MESH_MODEL
    from ...recognizer import MESH_BATCH
    from ...track import FaceTracker

    yunet, blaze, tracker = _defaults(YuNetDetector), _defaults(BlazeFaceDetector), _defaults(FaceTracker)
    reason = None
    if settings.detector != "yunet" or settings.live_detector_name != "yunet":
        reason = UNSUPPORTED_DETECTOR.format(name=settings.detector if settings.detector != "yunet"
                                             else settings.live_detector_name)
    adapter = _adapter(settings.adapter)
    # the embedding model only where the head reads it: the other pages load the shipped mesh model
    embedding = {"mesh_embedding": _embedding_model()[1]} if adapter and "embedding" in adapter["stage_features"] else {}
    return {
        "available": reason is None, "reason": reason,
        # the head Recognizer applies after the classifier (and the face-feature stages it reads), or None
        "adapter": adapter,
        "runtime": {"module": f"{RUNTIME_DIR}ort.wasm.min.mjs", "wasm_dir": RUNTIME_DIR},
        "classifier": _classifier(settings.model),
        "detector": {"name": "yunet", **_entry(YuNetDetector.MODEL),
                     "long_side": settings.detect_side or yunet["long_side"],
                     "score_threshold": yunet["score_threshold"], "nms_threshold": yunet["nms_threshold"],
                     "frame": list(yunet["frame"]), "margin_threshold": yunet["margin_threshold"]},
        "closeup": {"name": "blazeface", **_entry(BlazeFaceDetector.MODEL),
                    "score_threshold": yunet["fallback_threshold"], "nms_threshold": blaze["nms_threshold"],
                    "frame": list(blaze["frame"])},
        "features": {"mesh": _entry(MESH_MODEL), "blendshapes": _entry(BLENDSHAPE_MODEL),
                     "canonical_face": _entry(CANONICAL_FACE), **embedding},
        # mesh.py's lists, so that features.js does not write them again
        "feature_tables": {"blendshapes": list(BLENDSHAPES), "blendshape_input_points": list(BLENDSHAPE_INPUT_POINTS),
                           "action_units": {au: list(names) for au, (_, names) in ACTION_UNITS.items()}},
        "settings": {"max_faces": settings.max_faces, "mesh_batch": MESH_BATCH,
                     "detect_every": settings.live_detect_every, "live_detect_side": settings.live_detect_side,
                     "iou_threshold": tracker["iou_threshold"], "max_missed": tracker["max_missed"],
                     "follow_min_score": tracker["follow_min_score"],
                     "identity_threshold": tracker["identity_threshold"], "cut_threshold": tracker["cut_threshold"]},
    }


@router.get("/api/v1/ondevice", tags=["info"], summary="What the page needs to run the analysis in the browser")
async def ondevice(settings: SettingsDep, model: ModelDep) -> dict:  # model: answers 503 until the workers loaded
    return manifest(settings)


@router.get(MODEL_ROUTE + "/{name}", include_in_schema=False)
async def model_file(name: str, request: Request) -> Response:
    if name == EMBEDDING_MODEL:
        return Response(_embedding_model()[0], media_type="application/octet-stream",
                        headers={"Cache-Control": IMMUTABLE})
    path = _files(request.app.state.settings.model).get(name)
    if path is None:
        raise HTTPException(404, f"no on-device model file {name!r}; the manifest (/api/v1/ondevice) lists them")
    return FileResponse(path, media_type="application/octet-stream", headers={"Cache-Control": IMMUTABLE})
