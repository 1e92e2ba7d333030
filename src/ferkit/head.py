"""An adapter's runtime half: the head file `ferkit adapt` writes (Head), loading it onto the model it was fitted on
(load_adapter), and reading a face's features in the head's order (face_features). What load_recognizer(adapter=...)
needs, without the fitting code (ferkit.adapt).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT = "ferkit-adapter"
FORMAT_VERSION = 1
FEATURE_GROUPS = ("log_probabilities", "blendshapes", "head_pose", "mesh_embedding")  # feature names "group:key"
STAGE_FEATURES = {"blendshapes": "blendshapes", "head_pose": "pose", "mesh_embedding": "embedding"}  # group -> mesh.py
PROBABILITY_FLOOR = 1e-6                # log(0) guard on the base probabilities


class AdapterError(ValueError):
    """A labelled set or a head file that cannot be used; the message names the file and, where it applies, the
    row, the field or the class."""


def face_features(face, names) -> np.ndarray:
    """One face's features, in the order of `names` ("log_probabilities:happy", "blendshapes:jawOpen",
    "head_pose:yaw", "mesh_embedding:17", ...): the base model's log-probabilities (its own, also on a face an adapter
    has relabelled), and the face's `blendshapes` / `head_pose` / `mesh_embedding` where the face-features stage
    filled them. A name the face lacks raises AdapterError saying which group is missing."""
    sources = _face_groups(face)
    out = np.empty(len(names), np.float64)
    for i, name in enumerate(names):
        group, _, key = name.partition(":")
        values = sources.get(group)
        if values is None:
            raise AdapterError(f"this adapter needs the face's {group}, which the face does not carry"
                               + (": load the recognizer with the face-features stage that gives them "
                                  f"(load_recognizer(features=(..., {STAGE_FEATURES[group]!r})))"
                                  if group in STAGE_FEATURES else ""))
        if key not in values:
            raise AdapterError(f"this adapter needs {group} {key!r}, which the face's {group} lack")
        v = float(values[key])
        out[i] = math.log(max(v, PROBABILITY_FLOOR)) if group == "log_probabilities" else v
    return out


def available_features(face) -> list[str]:
    """The feature names a face offers (see face_features), each group's keys sorted."""
    return [f"{group}:{key}" for group, values in _face_groups(face).items() if values is not None
            for key in (values if group in ("log_probabilities", "mesh_embedding") else sorted(values))]


def _face_groups(face) -> dict:
    """{group: {key: value}} for each feature group; None where the face lacks it. The embedding's keys are its
    indices, "0" to "511"."""
    base = getattr(face, "base_probabilities", None) or face.probabilities
    embedding = getattr(face, "mesh_embedding", None)
    return {"log_probabilities": base, "blendshapes": getattr(face, "blendshapes", None),
            "head_pose": getattr(face, "head_pose", None),
            "mesh_embedding": None if embedding is None else dict(zip(map(str, range(len(embedding))),
                                                                      np.asarray(embedding, np.float64).tolist()))}



def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# ---------------------------------------------------------------- the head file
@dataclass
class Head:
    """A fitted adapter: features (standardised by mean and scale) -> probabilities over `classes`.
    `base_model`: {"name", "file", "sha256", "labels"} of the model it was fitted on (it loads onto no other);
    `info`: what the file records besides (counts per class, cross-validation figures, date, settings)."""
    name: str
    classes: tuple[str, ...]
    feature_names: tuple[str, ...]
    mean: np.ndarray           # (D,)
    scale: np.ndarray          # (D,)
    weights: np.ndarray        # (K, D)
    bias: np.ndarray           # (K,)
    base_model: dict
    info: dict = field(default_factory=dict)

    @property
    def feature_groups(self) -> tuple[str, ...]:
        return tuple(g for g in FEATURE_GROUPS if any(n.startswith(g + ":") for n in self.feature_names))

    @property
    def stage_features(self) -> tuple[str, ...]:
        """The face-features stage's outputs (mesh.parse_features names) this head reads: a recognizer loading it
        turns them on."""
        return tuple(STAGE_FEATURES[g] for g in self.feature_groups if g in STAGE_FEATURES)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(N, D) features (face_features) -> (N, K) probabilities over `classes`."""
        return softmax(((features - self.mean) / self.scale) @ self.weights.T + self.bias)

    def apply(self, face):
        """The face relabelled: `probabilities` and `emotion` over the head's classes, the base model's
        probabilities kept in `base_probabilities`, and `adapter` naming this head."""
        p = self.probabilities(face_features(face, self.feature_names)[None])[0]
        base = getattr(face, "base_probabilities", None) or face.probabilities
        return dataclasses.replace(face, probabilities={c: float(v) for c, v in zip(self.classes, p)},
                                   emotion=self.classes[int(np.argmax(p))], base_probabilities=base, adapter=self.name)

    def check_base(self, model_path: str | Path, source: str = "") -> None:
        """AdapterError unless `model_path` is the very model file this head was fitted on (its sha256)."""
        sha = file_sha256(model_path)
        if sha != self.base_model.get("sha256"):
            raise AdapterError(f"{source or self.name}: this adapter was fitted on the model "
                               f"{self.base_model.get('name')!r} ({self.base_model.get('file')}, sha256 "
                               f"{str(self.base_model.get('sha256'))[:12]}...), not on {Path(model_path).name} "
                               f"(sha256 {sha[:12]}...); load it with that model (--model "
                               f"{self.base_model.get('name')}), or adapt again on this one")

    def to_json(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "name": self.name, "classes": list(self.classes),
                "base_model": self.base_model, "features": {"groups": list(self.feature_groups),
                                                            "names": list(self.feature_names)},
                "standardise": {"mean": _rounded(self.mean), "scale": _rounded(self.scale)},
                "weights": [_rounded(row) for row in self.weights], "bias": _rounded(self.bias), **self.info}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Head":
        """A head from its JSON file; AdapterError naming the file and the field for anything malformed."""
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such adapter file") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise AdapterError(f"{path}: not an adapter file (not JSON: {e})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise AdapterError(f"{path}: not an adapter file (no \"format\": \"{FORMAT}\")")
        if doc.get("format_version") != FORMAT_VERSION:
            raise AdapterError(f"{path}: adapter format version {doc.get('format_version')!r}; this ferkit reads "
                               f"{FORMAT_VERSION}")
        classes = _field(doc, path, "classes", "a list of class names", _strings)
        names = _field(doc, path, "features.names", "a list of feature names (\"group:key\")", _strings)
        arrays = {key: _field(doc, path, field_name, "a list of numbers" if key != "weights" else
                              "a list of rows of numbers, one row per class", _numbers)
                  for key, field_name in (("mean", "standardise.mean"), ("scale", "standardise.scale"),
                                          ("weights", "weights"), ("bias", "bias"))}
        base = _field(doc, path, "base_model", "an object with name, file, sha256 and labels", _object)
        k, d = len(classes), len(names)
        shapes = {"mean": (d,), "scale": (d,), "weights": (k, d), "bias": (k,)}
        fields = {"mean": "standardise.mean", "scale": "standardise.scale", "weights": "weights", "bias": "bias"}
        for key, shape in shapes.items():
            if arrays[key].shape != shape:
                raise AdapterError(f"{path}: field {fields[key]!r} has shape {arrays[key].shape}, expected {shape} "
                                   f"({k} classes, {d} features)")
            if not np.isfinite(arrays[key]).all():
                raise AdapterError(f"{path}: field {fields[key]!r} holds a value that is not a finite number")
        if k < 2:
            raise AdapterError(f"{path}: field 'classes' has {k} class; expected 2 or more")
        if not np.all(arrays["scale"] > 0):
            raise AdapterError(f"{path}: field 'standardise.scale' holds a value not above 0; expected scales above 0")
        for n in names:
            if n.partition(":")[0] not in FEATURE_GROUPS:
                raise AdapterError(f"{path}: unknown feature {n!r}; known groups: {', '.join(FEATURE_GROUPS)}")
        own = {"format", "format_version", "name", "classes", "base_model", "features", "standardise", "weights", "bias"}
        return cls(str(doc.get("name") or path.stem), classes, names, arrays["mean"], arrays["scale"],
                   arrays["weights"], arrays["bias"], base, {k: v for k, v in doc.items() if k not in own})


def _field(doc: dict, path: Path, name: str, expected: str, convert):
    """doc's field `name` ("a.b" for a nested one) through convert; AdapterError naming the field and what was
    expected when it is missing or convert refuses it (TypeError, ValueError)."""
    value = doc
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            raise AdapterError(f"{path}: malformed adapter file: no field {name!r} (expected {expected})")
        value = value[part]
    try:
        return convert(value)
    except (TypeError, ValueError):
        shown = json.dumps(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise AdapterError(f"{path}: malformed adapter file: field {name!r} is {shown} ({type(value).__name__}); "
                           f"expected {expected}") from None


def _strings(value) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError
    return tuple(value)


def _numbers(value) -> np.ndarray:
    if not isinstance(value, list):
        raise TypeError
    return np.asarray(value, np.float64)  # ValueError for strings or ragged rows


def _object(value) -> dict:
    if not isinstance(value, dict):
        raise TypeError
    return dict(value)


def load_adapter(adapter: "str | Path | Head", model_path: str | Path, model_labels) -> Head:
    """A head for load_recognizer(adapter=...): a Head or a path to its file, checked against the model it will run
    on (the same file, by sha256; and a base-probability feature for each of the model's labels)."""
    head = adapter if isinstance(adapter, Head) else Head.load(adapter)
    source = str(adapter) if not isinstance(adapter, Head) else head.name
    head.check_base(model_path, source)
    wanted = {n.partition(":")[2] for n in head.feature_names if n.startswith("log_probabilities:")}
    if not wanted <= set(model_labels):
        raise AdapterError(f"{source}: features over labels {sorted(wanted - set(model_labels))} that the model "
                           f"lacks")
    return head


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _rounded(values) -> list[float]:
    return [float(f"{v:.6g}") for v in np.asarray(values, np.float64).ravel()]
