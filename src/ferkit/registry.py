"""The model registry: which models ship, what each file says about itself (labels, preprocessing, metrics), and
how a name or a path becomes a model file."""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import onnxruntime as ort

from .modelfile import metadata_from_map
from .sessions import open_session

WEIGHTS_DIR = Path(__file__).parent / "weights"
# The default agrees best with people (the FER+ majority of ten annotators) by the rule in docs/quality.md
# (2026-12-07, issue 37); `fer2013` stays under its name for comparisons with the FER-2013 literature.
DEFAULT_MODEL = "ferplus"
# Names that once shipped and were retired because another model beats them on both test splits: the name still
# loads, as its replacement, with a FutureWarning, so code written against it keeps working (docs/quality.md).
RETIRED_MODELS = {"ferplus-accurate": "ferplus"}


def available_models() -> list[str]:
    """Names of the models shipped in the package, for load_recognizer(name)."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.onnx"))


def describe_models() -> list[dict]:
    """One summary per shipped model, from its file's metadata and its published metrics (weights/NAME.metrics.json,
    written by `ferkit evaluate --model-card`): what `ferkit models` prints. Figures are PrivateTest, no TTA:
    `agreement` with people (the FER+ majority, faces whose majority is one of FER-2013's seven classes),
    `fer2013_accuracy` on FER-2013's single labels, and `ms_per_face` (classifier, batch 1, from
    benchmarks/agreement.py on the CPU named in the metrics file's `speed`).
    `size_mb` is everything the model runs: its file and the shipped models an ensemble adds (see
    shipped_member_files), though those are on disk once for both."""
    rows = []
    for name in available_models():
        path = WEIGHTS_DIR / f"{name}.onnx"
        meta, metrics = read_metadata(path), read_metrics(path)
        members = meta.get("ensemble")
        files = [path] + [p for p, _ in shipped_member_files(path, meta, check=False)]
        rows.append({"name": name, "default": name == DEFAULT_MODEL, "labels": list(meta["labels"]),
                     "size_mb": round(sum(p.stat().st_size for p in files) / 1e6, 1),
                     "networks": len(members) if isinstance(members, list) else 1,
                     "test_set": metrics.get("test_set"), "test_accuracy": metrics.get("test_accuracy"),
                     "robustness_mean": metrics.get("robustness_mean"),
                     "agreement": (metrics.get("agreement") or {}).get("accuracy"),
                     "fer2013_accuracy": (metrics.get("fer2013_labels") or {}).get("accuracy"),
                     "ms_per_face": (metrics.get("speed") or {}).get("ms_per_face")})
    return rows


def read_metrics(model_path: str | Path) -> dict:
    """A model's published figures (weights/NAME.metrics.json beside the .onnx, written by `ferkit evaluate
    --model-card`), or {} where none were published."""
    path = Path(model_path).with_suffix(".metrics.json")
    return json.loads(path.read_text()) if path.is_file() else {}


def shipped_member_files(model_path: str | Path, meta: dict, *, check: bool = True) -> list[tuple[Path, dict]]:
    """The shipped model files an ensemble runs beside its own graph, each with its `shipped_members` entry (name,
    member, weight, sha256): an ensemble whose members also ship alone (`fer2013-accurate` holds `fer2013` and
    `fer2013-robust`) can store each of those networks once, as the model file of that name in its own directory
    (store_once.py: the wheel's `fer2013-accurate` is stored so; the file in git is whole, docs/quality.md). [] for
    any other model. A missing file raises FileNotFoundError
    naming it; with `check`, a file that is not the one the ensemble was built with (its sha256) raises ValueError."""
    model_path = Path(model_path)
    if meta.get("shipped_members") and "class_offsets" in meta:  # offsets inside the graph would miss the added members
        raise ValueError(f"{model_path}: an ensemble with shipped members cannot also carry class offsets")
    out = []
    for entry in meta.get("shipped_members") or []:
        path = model_path.parent / f"{entry['name']}.onnx"
        what = f"the shipped model {entry['name']!r} (its member {entry.get('member')}, weight {entry['weight']})"
        if not path.is_file():
            raise FileNotFoundError(f"{model_path}: this ensemble runs {what} from {path}, which is missing; keep the "
                                    f"model files of one ferkit release together")
        if check and entry.get("sha256") and hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
            raise ValueError(f"{model_path}: this ensemble runs {what} from {path}, but that file is not the one it was "
                             f"built with (another sha256); keep the model files of one ferkit release together")
        out.append((path, entry))
    return out


def resolve_model(model: str | os.PathLike | None) -> Path:
    if model is None:
        model = DEFAULT_MODEL
    path = Path(model)
    if path.suffix == ".onnx":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such model file")
        return path
    name, shipped = str(model), available_models()
    if name in RETIRED_MODELS and name not in shipped:  # a file shipped again under the name wins over the alias
        warnings.warn(f"model {name!r} is retired: {RETIRED_MODELS[name]!r}, which beats it on both test splits, is "
                      f"loaded instead (see docs/quality.md)", FutureWarning, stacklevel=3)
        name = RETIRED_MODELS[name]
    if name in shipped:
        return WEIGHTS_DIR / f"{name}.onnx"
    raise ValueError(f"unknown model {name!r}; valid: {', '.join(shipped) or '(none shipped)'}, or a path to an .onnx file")


def read_metadata(path: str | Path) -> dict:
    """The facts ferkit's export writes into the ONNX file (labels, preprocessing, config, metrics)."""
    return session_metadata(open_session(path, run=False, optimize=False), path)


def session_metadata(session: ort.InferenceSession, path: str | Path) -> dict:
    return metadata_from_map(session.get_modelmeta().custom_metadata_map, path)
