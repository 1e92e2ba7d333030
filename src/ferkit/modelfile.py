"""The ferkit entry of an ONNX model file: one JSON blob under METADATA_KEY in its metadata_props, which says what
the model is (labels, preprocessing, training, members). The Recognizer reads it; export, research and the wheel
build write it. Standard library only (onnx imported where a file is written): the wheel build (store_once.py)
loads this file by its path, in an environment that has onnx but not ferkit's dependencies.
"""
from __future__ import annotations

import json
from pathlib import Path

METADATA_KEY = "ferkit"


def metadata_from_map(meta: dict[str, str], path: str | Path) -> dict:
    """The ferkit entry of an ONNX file's metadata_props (as a key -> value dict)."""
    if METADATA_KEY not in meta:
        raise ValueError(f"{path}: no ferkit metadata; export the model with `ferkit export`")
    return json.loads(meta[METADATA_KEY])


def proto_metadata(proto, path: str | Path) -> dict:
    """The ferkit entry of an already loaded onnx ModelProto."""
    return metadata_from_map({e.key: e.value for e in proto.metadata_props}, path)


def save_with_metadata(proto, meta: dict, path: str | Path) -> None:
    """Write `proto` to `path` with `meta` as its one ferkit metadata entry, after onnx's checker."""
    import onnx

    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    proto.producer_name = "ferkit"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
