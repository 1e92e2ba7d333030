"""Adapters: a small head over the recognizer's outputs, fitted on a user's own labelled photos (`ferkit adapt`).

Read top to bottom: a labelled set (a folder of label/image, or a CSV of path,label[,person]) -> the recognizer run
once over it -> one feature vector per face (face_features: the base model's log-probabilities, plus blendshapes and
head pose where the face carries them) -> k-fold cross-validation of the base model against the adapted head ->
the head fitted on every image -> a JSON file of a few KB (Head) that `load_recognizer(adapter=...)` applies.

The head is multinomial logistic regression with an L2 penalty, fitted by Newton's method in NumPy, so the base
install adapts and loads heads without scikit-learn. Nothing is chosen on the folds that score it: the penalty is a
fixed setting, and the folds only measure.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT = "ferkit-adapter"
FORMAT_VERSION = 1
FEATURE_GROUPS = ("log_probabilities", "blendshapes", "head_pose")  # feature names are "group:key"
FACE_CHOICES = ("single", "largest")
GROUP_COLUMNS = ("person", "group")     # a CSV column naming whose photo it is: folds never split one person
from .images import IMAGE_SUFFIXES as PHOTO_SUFFIXES  # noqa: E402  (one list for every command: TIFF too)
PROBABILITY_FLOOR = 1e-6                # log(0) guard on the base probabilities
BATCH = 32                              # images analysed together while collecting faces


class AdapterError(ValueError):
    """A labelled set or a head file that cannot be used; the message names the file and, where it applies, the
    row, the field or the class."""


@dataclass(frozen=True)
class AdaptConfig:
    """How `adapt` fits and measures a head. `ferkit adapt` has one flag per field."""
    folds: int = 5              # cross-validation folds (grouped by person when the data has a person/group column)
    l2: float = 1.0             # L2 penalty on the head's weights (standardised features); fixed, never tuned on the folds
    min_per_class: int = 20     # fewer usable images than this in a class is an error
    face: str = "single"        # an image with several faces: "single" skips it, "largest" keeps its largest face
    seed: int = 0               # the random order in which images (or persons) are dealt into folds

    def __post_init__(self):
        if self.folds < 2:
            raise ValueError(f"folds must be 2 or more, got {self.folds}")
        if not self.l2 > 0:
            raise ValueError(f"l2 must be above 0, got {self.l2}")
        if self.min_per_class < 2:
            raise ValueError(f"min_per_class must be 2 or more, got {self.min_per_class}")
        if self.face not in FACE_CHOICES:
            raise ValueError(f"face must be one of {', '.join(FACE_CHOICES)}, got {self.face!r}")


# ---------------------------------------------------------------- the labelled set
@dataclass
class LabelledSet:
    """Images with their labels. `images`: paths, or arrays (BGR/grey) for sets built in code; `names`: how each
    is named in messages ("photos.csv row 12 (a.jpg)"); `groups`: whose photo each is, or None."""
    images: list
    labels: list[str]
    names: list[str]
    groups: list[str] | None = None
    source: str = ""

    def __post_init__(self):
        if not (len(self.images) == len(self.labels) == len(self.names)) or \
                (self.groups is not None and len(self.groups) != len(self.images)):
            raise ValueError("images, labels, names (and groups) must have one entry per image")
        self.labels = [str(v) for v in self.labels]
        self.groups = None if self.groups is None else [str(v) for v in self.groups]


def read_labelled(data: str | Path) -> LabelledSet:
    """A folder of `label/image` (sub-folders below a label folder count as that label), or a CSV with a header
    holding `path` and `label` columns (and optionally `person` or `group`), paths relative to the CSV's folder."""
    data = Path(data)
    if data.is_dir():
        return _read_folder(data)
    if data.is_file():
        return _read_csv(data)
    raise FileNotFoundError(f"{data}: no such folder or CSV file")


def _read_folder(root: Path) -> LabelledSet:
    images, labels = [], []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix.lower() in PHOTO_SUFFIXES:
            raise AdapterError(f"{entry}: an image outside a label folder; put each image in a folder named by its "
                               f"label ({root}/LABEL/{entry.name})")
        if entry.is_dir():
            found = sorted(p for p in entry.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES
                           and not any(part.startswith(".") for part in p.relative_to(root).parts))
            images += found
            labels += [entry.name] * len(found)
    if not images:
        raise AdapterError(f"{root}: no images in label folders (looked for {', '.join(PHOTO_SUFFIXES)} in "
                           f"{root}/LABEL/)")
    return LabelledSet(images, labels, [str(p) for p in images], None, str(root))


def _read_csv(path: Path) -> LabelledSet:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError as e:
        raise AdapterError(f"{path}: not a UTF-8 CSV file ({e.reason} at byte {e.start})") from None
    if not rows:
        raise AdapterError(f"{path}: empty; a CSV needs a header with the columns path,label")
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in ("path", "label") if c not in header]
    if missing:
        raise AdapterError(f"{path}: no {' or '.join(repr(c) for c in missing)} column in the header "
                           f"({','.join(rows[0])}); a CSV needs path,label and optionally person or group")
    col = {name: header.index(name) for name in ("path", "label")}
    group_col = next((header.index(c) for c in GROUP_COLUMNS if c in header), None)
    images, labels, names, groups = [], [], [], []
    for n, row in enumerate(rows[1:], start=2):  # row numbers as a spreadsheet shows them
        if not any(cell.strip() for cell in row):
            continue
        cells = {name: row[i].strip() if i < len(row) else "" for name, i in col.items()}
        for name, value in cells.items():
            if not value:
                raise AdapterError(f"{path} row {n}: empty {name!r}")
        image = path.parent / cells["path"]
        if not image.is_file():
            raise AdapterError(f"{path} row {n}: {cells['path']}: no such file (looked for {image})")
        if group_col is not None:
            group = row[group_col].strip() if group_col < len(row) else ""
            if not group:
                raise AdapterError(f"{path} row {n}: empty {header[group_col]!r}")
            groups.append(group)
        images.append(image)
        labels.append(cells["label"])
        names.append(f"{path} row {n} ({cells['path']})")
    if not images:
        raise AdapterError(f"{path}: no rows below the header")
    return LabelledSet(images, labels, names, groups if group_col is not None else None, str(path))


# ---------------------------------------------------------------- faces and features
def face_features(face, names) -> np.ndarray:
    """One face's features, in the order of `names` ("log_probabilities:happy", "blendshapes:jawOpen",
    "head_pose:yaw", ...): the base model's log-probabilities (its own, also on a face an adapter has relabelled),
    and the face's `blendshapes` / `head_pose` dicts where the face-features stage filled them. A name the face
    lacks raises AdapterError saying which group is missing."""
    sources = _face_groups(face)
    out = np.empty(len(names), np.float64)
    for i, name in enumerate(names):
        group, _, key = name.partition(":")
        values = sources.get(group)
        if values is None:
            raise AdapterError(f"this adapter needs the face's {group}, which the face does not carry"
                               + (": load the recognizer with the face-features stage that gives them "
                                  f"(load_recognizer(features=(..., {group!r})))" if group != "log_probabilities" else ""))
        if key not in values:
            raise AdapterError(f"this adapter needs {group} {key!r}, which the face's {group} lack")
        v = float(values[key])
        out[i] = math.log(max(v, PROBABILITY_FLOOR)) if group == "log_probabilities" else v
    return out


def available_features(face) -> list[str]:
    """The feature names a face offers (see face_features), each group's keys sorted."""
    return [f"{group}:{key}" for group, values in _face_groups(face).items() if values is not None
            for key in (values if group == "log_probabilities" else sorted(values))]


def _face_groups(face) -> dict:
    base = getattr(face, "base_probabilities", None) or face.probabilities
    return {"log_probabilities": base, "blendshapes": getattr(face, "blendshapes", None),
            "head_pose": getattr(face, "head_pose", None)}


@dataclass
class Collected:
    """The faces kept from a LabelledSet (one per image), with their labels, groups and names; `skipped`: (name,
    reason) for each image left out (no face, several faces)."""
    faces: list
    labels: list[str]
    names: list[str]
    groups: list[str] | None
    skipped: list[tuple[str, str]] = field(default_factory=list)


def collect_faces(recognizer, data: LabelledSet, face: str = "single") -> Collected:
    """Run the recognizer once over every image: one Face per image (an image with several faces is skipped, or
    gives its largest face with face="largest"; one with none is skipped). An unreadable image raises AdapterError
    naming it (and its CSV row)."""
    from .images import load_image

    if face not in FACE_CHOICES:
        raise ValueError(f"face must be one of {', '.join(FACE_CHOICES)}, got {face!r}")
    kept = Collected([], [], [], [] if data.groups is not None else None)
    for start in range(0, len(data.images), BATCH):
        part = range(start, min(start + BATCH, len(data.images)))
        arrays = []
        for i in part:
            try:
                arrays.append(load_image(data.images[i]))
            except (ValueError, OSError) as e:  # UnreadableImageError and friends name the file already
                raise AdapterError(f"{data.names[i]}: unreadable image: {e}") from e
        for i, faces in zip(part, recognizer.analyze_many(arrays)):
            if not faces:
                kept.skipped.append((data.names[i], "no face found"))
                continue
            if len(faces) > 1 and face == "single":
                kept.skipped.append((data.names[i], f"{len(faces)} faces (face='largest' keeps the largest)"))
                continue
            kept.faces.append(max(faces, key=lambda f: f.box[2] * f.box[3]))
            kept.labels.append(data.labels[i])
            kept.names.append(data.names[i])
            if kept.groups is not None:
                kept.groups.append(data.groups[i])
    return kept


# ---------------------------------------------------------------- the head's model
def fit_logistic(x: np.ndarray, y: np.ndarray, n_classes: int, l2: float, max_steps: int = 50):
    """Multinomial logistic regression: (N, D) features, (N,) class indices -> weights (K, D), bias (K,) minimising
    the summed cross-entropy + l2 / 2 * |weights|^2 (the bias is not penalised), by Newton's method with
    backtracking. x should be standardised."""
    n, d = x.shape
    k = n_classes
    xa = np.hstack([x, np.ones((n, 1))])                    # (N, D + 1): the bias as a last column
    onehot = np.eye(k)[y]
    penalty = np.full(d + 1, l2)
    penalty[-1] = 1e-8                                      # bias: only enough to fix the softmax's free offset
    theta = np.zeros((k, d + 1))

    def loss(t):
        z = xa @ t.T
        z -= z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        return -(onehot * logp).sum() + 0.5 * (penalty * t * t).sum(), np.exp(logp)

    f, p = loss(theta)
    for _ in range(max_steps):
        grad = (p - onehot).T @ xa + penalty * theta          # (K, D + 1)
        zx = (p[:, :, None] * xa[:, None, :]).reshape(n, -1)  # (N, K (D + 1))
        hess = -zx.T @ zx
        for c in range(k):                                  # the diagonal blocks: X^T diag(p_c) X
            s = slice(c * (d + 1), (c + 1) * (d + 1))
            hess[s, s] += (xa * p[:, c:c + 1]).T @ xa
        hess[np.diag_indices_from(hess)] += np.tile(penalty, k) + 1e-9
        step = np.linalg.solve(hess, grad.ravel()).reshape(k, d + 1)
        rate, slope = 1.0, float((grad * step).sum())
        while True:
            f_new, p_new = loss(theta - rate * step)
            if f_new <= f - 1e-4 * rate * slope or rate < 1e-6:
                break
            rate /= 2
        theta, f, p = theta - rate * step, f_new, p_new
        if slope < 1e-10 * max(1.0, abs(f)):
            break
    return theta[:, :d], theta[:, d]


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
                               f"(sha256 {sha[:12]}...); load it with that model, or adapt again on this one")

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
        try:
            classes = tuple(str(c) for c in doc["classes"])
            names = tuple(str(n) for n in doc["features"]["names"])
            arrays = {"mean": np.asarray(doc["standardise"]["mean"], np.float64),
                      "scale": np.asarray(doc["standardise"]["scale"], np.float64),
                      "weights": np.asarray(doc["weights"], np.float64), "bias": np.asarray(doc["bias"], np.float64)}
            base = dict(doc["base_model"])
        except (KeyError, TypeError, ValueError) as e:
            raise AdapterError(f"{path}: malformed adapter file (field {e})") from None
        k, d = len(classes), len(names)
        shapes = {"mean": (d,), "scale": (d,), "weights": (k, d), "bias": (k,)}
        for key, shape in shapes.items():
            if arrays[key].shape != shape:
                raise AdapterError(f"{path}: field {key!r} has shape {arrays[key].shape}, expected {shape} "
                                   f"({k} classes, {d} features)")
        if k < 2 or not np.all(arrays["scale"] > 0) or not all(np.isfinite(a).all() for a in arrays.values()):
            raise AdapterError(f"{path}: malformed adapter file (fewer than 2 classes, or a scale not above 0, or "
                               f"a value that is not a finite number)")
        for n in names:
            if n.partition(":")[0] not in FEATURE_GROUPS:
                raise AdapterError(f"{path}: unknown feature {n!r}; known groups: {', '.join(FEATURE_GROUPS)}")
        own = {"format", "format_version", "name", "classes", "base_model", "features", "standardise", "weights", "bias"}
        return cls(str(doc.get("name") or path.stem), classes, names, arrays["mean"], arrays["scale"],
                   arrays["weights"], arrays["bias"], base, {k: v for k, v in doc.items() if k not in own})


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


# ---------------------------------------------------------------- cross-validation
def make_folds(labels: np.ndarray, groups: np.ndarray | None, n_folds: int, seed: int = 0) -> np.ndarray:
    """(N,) fold index per image. Without groups: stratified (each class dealt round the folds in a random order).
    With groups: every image of a group in one fold (groups dealt, largest first, to the fold with fewest images)."""
    rng = np.random.default_rng(seed)
    folds = np.empty(len(labels), np.int64)
    if groups is None:
        offset = 0
        for c in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == c))
            folds[idx] = (np.arange(len(idx)) + offset) % n_folds
            offset += len(idx)
        return folds
    names, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    if len(names) < n_folds:
        raise AdapterError(f"{len(names)} persons/groups for {n_folds} grouped folds: need at least {n_folds} "
                           f"(or fewer folds)")
    order = rng.permutation(len(names))
    order = order[np.argsort(-sizes[order], kind="stable")]
    load = np.zeros(n_folds, np.int64)
    group_fold = np.empty(len(names), np.int64)
    for g in order:
        f = int(np.argmin(load))
        group_fold[g] = f
        load[f] += sizes[g]
    return group_fold[inverse]


def scores(y: np.ndarray, pred: np.ndarray, k: int) -> dict:
    """Accuracy, macro-F1 (over the classes present in y) and the confusion matrix (rows true, columns predicted)."""
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (y, pred), 1)
    tp, support, predicted = np.diag(cm), cm.sum(1), cm.sum(0)
    f1 = np.where(support + predicted > 0, 2 * tp / np.maximum(support + predicted, 1), 0.0)
    return {"n": int(len(y)), "accuracy": float(tp.sum() / max(len(y), 1)),
            "macro_f1": float(f1[support > 0].mean()) if (support > 0).any() else 0.0, "confusion": cm.tolist()}


def standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, scale = x.mean(0), x.std(0)
    return mean, np.where(scale > 1e-12, scale, 1.0)


def fit_head_arrays(x: np.ndarray, y: np.ndarray, k: int, l2: float):
    """-> mean, scale, weights, bias of a head on features x (N, D) and class indices y."""
    mean, scale = standardiser(x)
    w, b = fit_logistic((x - mean) / scale, y, k, l2)
    return mean, scale, w, b


def base_predictions(base: np.ndarray, base_labels, classes) -> tuple[np.ndarray | None, str]:
    """How the base model labels the images, over the head's classes: its most probable label among `classes`
    when each class is one of its labels; otherwise (new classes) it has no answer, and the baseline is the most
    common class of the training part. -> (class indices or None, what the baseline is)."""
    if all(c in base_labels for c in classes):
        cols = [list(base_labels).index(c) for c in classes]
        return base[:, cols].argmax(1), "base model"
    return None, "most common class"


def cross_validate(x: np.ndarray, y: np.ndarray, base: np.ndarray, base_labels, classes, groups, config: AdaptConfig
                   ) -> dict:
    """k-fold cross-validation: per fold, the baseline (base_predictions) and a head fitted on the other folds,
    scored on this one; their mean, spread, gain, the out-of-fold confusion matrices and, with groups, accuracy per
    group. `helps`: the mean gain in accuracy is above 0 and above the spread (standard deviation) of the per-fold
    gains."""
    k = len(classes)
    folds = make_folds(y, groups, config.folds, config.seed)
    pred_base, pred_head = np.empty_like(y), np.empty_like(y)
    per_fold, baseline = [], "base model"
    for f in range(config.folds):
        test, train = folds == f, folds != f
        if not test.any():
            continue
        mean, scale, w, b = fit_head_arrays(x[train], y[train], k, config.l2)
        pred_head[test] = (((x[test] - mean) / scale) @ w.T + b).argmax(1)
        fixed, baseline = base_predictions(base[test], base_labels, classes)
        pred_base[test] = fixed if fixed is not None else np.bincount(y[train], minlength=k).argmax()
        per_fold.append({"fold": f, "n": int(test.sum()), "base": scores(y[test], pred_base[test], k),
                         "adapted": scores(y[test], pred_head[test], k)})
    out = {"folds": len(per_fold), "grouped": groups is not None, "baseline": baseline, "l2": config.l2,
           "seed": config.seed, "classes": list(classes)}
    for metric in ("accuracy", "macro_f1"):
        b_ = np.array([p["base"][metric] for p in per_fold])
        a_ = np.array([p["adapted"][metric] for p in per_fold])
        gain = a_ - b_
        out[metric] = {"base_mean": _r(b_.mean()), "base_std": _r(b_.std(ddof=1)), "adapted_mean": _r(a_.mean()),
                       "adapted_std": _r(a_.std(ddof=1)), "gain_mean": _r(gain.mean()), "gain_std": _r(gain.std(ddof=1))}
    acc = out["accuracy"]
    out["helps"] = bool(acc["gain_mean"] > 0 and acc["gain_mean"] > acc["gain_std"])
    out["out_of_fold"] = {"base": scores(y, pred_base, k), "adapted": scores(y, pred_head, k)}
    out["per_fold"] = [{"fold": p["fold"], "n": p["n"], "base_accuracy": _r(p["base"]["accuracy"]),
                        "adapted_accuracy": _r(p["adapted"]["accuracy"]), "base_macro_f1": _r(p["base"]["macro_f1"]),
                        "adapted_macro_f1": _r(p["adapted"]["macro_f1"]), "adapted_confusion": p["adapted"]["confusion"]}
                       for p in per_fold]
    for key in ("base", "adapted"):
        for metric in ("accuracy", "macro_f1"):
            out["out_of_fold"][key][metric] = _r(out["out_of_fold"][key][metric])
    if groups is not None:
        out["per_group"] = {str(g): {"n": int(m.sum()), "base_accuracy": _r((pred_base[m] == y[m]).mean()),
                                     "adapted_accuracy": _r((pred_head[m] == y[m]).mean())}
                            for g in np.unique(groups) for m in [groups == g]}
    return out


def _r(v) -> float:
    return round(float(v), 4) if np.isfinite(v) else float("nan")


# ---------------------------------------------------------------- the whole stage
@dataclass
class Adaptation:
    """What adapt() returns: the fitted head (its file not yet written), the cross-validation report (also in
    head.info), and the images left out."""
    head: Head
    report: dict
    skipped: list[tuple[str, str]]

    @property
    def helps(self) -> bool:
        return bool(self.report["helps"])


def adapt(recognizer, data: LabelledSet, config: AdaptConfig = AdaptConfig(), *, name: str = "adapter") -> Adaptation:
    """Fit a head for `recognizer` on a labelled set, after measuring it by cross-validation. The recognizer runs
    once over the images (its own detector: detector="none" for sets of face crops); the features are those every
    kept face offers (available_features). AdapterError for fewer than 2 classes or fewer than
    config.min_per_class usable images in a class."""
    if getattr(recognizer, "adapter", None) is not None:
        raise ValueError("adapt() needs the recognizer without an adapter: load it without adapter=")
    collected = collect_faces(recognizer, data, config.face)
    classes = tuple(sorted(set(data.labels), key=_label_order(recognizer.labels)))
    counts = {c: collected.labels.count(c) for c in classes}
    few = {c: n for c, n in counts.items() if n < config.min_per_class}
    where = f"{data.source}: " if data.source else ""
    if len(classes) < 2:
        raise AdapterError(f"{where}one class ({classes[0] if classes else 'none'}); an adapter needs 2 or more")
    if few:
        left = f" ({len(collected.skipped)} images skipped: no face or several)" if collected.skipped else ""
        raise AdapterError(f"{where}too few usable images in {', '.join(f'{c!r} ({n})' for c, n in few.items())}: "
                           f"need at least {config.min_per_class} per class{left}")
    names = available_features(collected.faces[0])
    for f in collected.faces[1:]:
        offered = set(available_features(f))
        names = [n for n in names if n in offered]
    x = np.stack([face_features(f, names) for f in collected.faces])
    y = np.array([classes.index(c) for c in collected.labels])
    base_labels = tuple(recognizer.labels)
    base = np.array([[_face_groups(f)["log_probabilities"][c] for c in base_labels] for f in collected.faces])
    groups = None if collected.groups is None else np.array(collected.groups)
    # With face features, two heads are cross-validated on the same folds: the network's outputs alone, and with the
    # blendshapes and head pose. The better mean accuracy is kept (the smaller head on a tie); both are reported.
    # (On FER-2013 faces in scenes the features overfit and lose 5-6 points; on a field set of real photos they
    # added 3.4: docs/adapt.md. Choosing the better of two on the folds flatters the winner a little.)
    own = [n for n in names if n.startswith("log_probabilities:")]
    candidates = {"log_probabilities": own} if len(own) == len(names) else {"log_probabilities": own, "all": names}
    reports = {k: cross_validate(x[:, [names.index(n) for n in v]], y, base, base_labels, classes, groups, config)
               for k, v in candidates.items()}
    chosen = max(reports, key=lambda k: (reports[k]["accuracy"]["adapted_mean"], k == "log_probabilities"))
    report = reports[chosen]
    if len(reports) > 1:
        extra = ", ".join(g for g in FEATURE_GROUPS[1:] if any(n.startswith(g + ":") for n in names))
        report["feature_sets"] = {(f"network outputs + {extra}" if k == "all" else "network outputs alone"):
                                  {"features": len(candidates[k]), "accuracy_mean": r["accuracy"]["adapted_mean"],
                                   "accuracy_std": r["accuracy"]["adapted_std"], "chosen": k == chosen}
                                  for k, r in reports.items()}
    x = x[:, [names.index(n) for n in candidates[chosen]]]
    names = candidates[chosen]
    mean, scale, w, b = fit_head_arrays(x, y, len(classes), config.l2)
    from .version import __version__

    info = {"created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "ferkit_version": __version__, "counts": counts, "images": len(data.images),
            "skipped": len(collected.skipped), "face": config.face, "cross_validation": report}
    base_model = {"name": recognizer.name, "file": Path(recognizer.model_path).name,
                  "sha256": file_sha256(recognizer.model_path), "labels": list(base_labels)}
    head = Head(name, classes, tuple(names), mean, scale, w, b, base_model, info)
    return Adaptation(head, report, collected.skipped)


def _label_order(model_labels):
    """Sort key: the model's own labels in its order, new labels after them alphabetically."""
    order = {c: i for i, c in enumerate(model_labels)}
    return lambda c: (order.get(c, len(order)), c)


# ---------------------------------------------------------------- reports
def format_report(report: dict) -> str:
    """The cross-validation figures as plain text, for the terminal."""
    acc, f1 = report["accuracy"], report["macro_f1"]
    kind = "grouped by person" if report["grouped"] else "stratified"
    lines = [f"{report['folds']}-fold cross-validation ({kind}), baseline: {report['baseline']}",
             f"  accuracy  base {acc['base_mean']:.1%} ± {acc['base_std']:.1%}   adapted {acc['adapted_mean']:.1%} ± "
             f"{acc['adapted_std']:.1%}   gain {acc['gain_mean']:+.1%} ± {acc['gain_std']:.1%}",
             f"  macro-F1  base {f1['base_mean']:.3f} ± {f1['base_std']:.3f}   adapted {f1['adapted_mean']:.3f} ± "
             f"{f1['adapted_std']:.3f}",
             "  per fold (accuracy base -> adapted): " + ", ".join(
                 f"{p['base_accuracy']:.1%} -> {p['adapted_accuracy']:.1%}" for p in report["per_fold"])]
    for label, fs in (report.get("feature_sets") or {}).items():  # the heads compared on the same folds
        lines.append(f"  head on {label} ({fs['features']} numbers): {fs['accuracy_mean']:.1%} ± "
                     f"{fs['accuracy_std']:.1%}" + ("   <- kept" if fs["chosen"] else ""))
    lines.append("  verdict: the adapter " + ("helps: its gain is above the folds' spread" if report["helps"] else
                                              "does not beat the baseline beyond the folds' spread"))
    return "\n".join(lines)


def write_report(adaptation: Adaptation, folder: str | Path) -> list[Path]:
    """adapt-report.md (the figures, per fold, per group, confusion matrices) and adapt-confusion.png (the
    out-of-fold confusion matrices of base and adapted; needs matplotlib, the [plot] extra) in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    r, head = adaptation.report, adaptation.head
    classes = r["classes"]
    acc, f1 = r["accuracy"], r["macro_f1"]
    md = [f"# Adapter `{head.name}`", "",
          f"Base model `{head.base_model['name']}` ({head.base_model['file']}, sha256 "
          f"`{head.base_model['sha256'][:16]}…`); classes: {', '.join(classes)}; features: "
          f"{', '.join(head.feature_groups)} ({len(head.feature_names)} numbers).", "",
          f"Images: {head.info.get('images')}, used {sum(head.info['counts'].values())}, skipped "
          f"{len(adaptation.skipped)}. Per class: " + ", ".join(f"{c} {n}" for c, n in head.info["counts"].items()) + ".",
          "", f"## Cross-validation: {r['folds']} folds, {'grouped by person' if r['grouped'] else 'stratified'}", "",
          f"Baseline: {r['baseline']}. L2 penalty {r['l2']} (fixed, not tuned on these folds).", "",
          "| | base | adapted | gain |", "|---|---|---|---|",
          f"| accuracy (mean ± sd over folds) | {acc['base_mean']:.1%} ± {acc['base_std']:.1%} | "
          f"{acc['adapted_mean']:.1%} ± {acc['adapted_std']:.1%} | {acc['gain_mean']:+.1%} ± {acc['gain_std']:.1%} |",
          f"| macro-F1 | {f1['base_mean']:.3f} ± {f1['base_std']:.3f} | {f1['adapted_mean']:.3f} ± "
          f"{f1['adapted_std']:.3f} | {f1['gain_mean']:+.3f} ± {f1['gain_std']:.3f} |", "",
          "**Verdict:** " + ("the adapter's gain is above the folds' spread." if r["helps"] else
                             "the adapter does not beat the baseline beyond the folds' spread."), "",
          "| fold | images | base accuracy | adapted accuracy | base macro-F1 | adapted macro-F1 |",
          "|---|---|---|---|---|---|"]
    md += [f"| {p['fold']} | {p['n']} | {p['base_accuracy']:.1%} | {p['adapted_accuracy']:.1%} | "
           f"{p['base_macro_f1']:.3f} | {p['adapted_macro_f1']:.3f} |" for p in r["per_fold"]]
    if r.get("per_group"):
        md += ["", "## Per person (out of fold)", "", "| person | images | base | adapted |", "|---|---|---|---|"]
        md += [f"| {g} | {v['n']} | {v['base_accuracy']:.1%} | {v['adapted_accuracy']:.1%} |"
               for g, v in r["per_group"].items()]
    for key in ("base", "adapted"):
        cm = r["out_of_fold"][key]["confusion"]
        md += ["", f"## Confusion matrix, {key} (out of fold; rows true, columns predicted)", "",
               "| | " + " | ".join(classes) + " |", "|---" * (len(classes) + 1) + "|"]
        md += [f"| {c} | " + " | ".join(str(v) for v in row) + " |" for c, row in zip(classes, cm)]
    if adaptation.skipped:
        md += ["", "## Skipped images", ""] + [f"- {n}: {why}" for n, why in adaptation.skipped]
    report_md = folder / "adapt-report.md"
    report_md.write_text("\n".join(md) + "\n")
    png = folder / "adapt-confusion.png"
    _plot_confusions(r, png)
    return [report_md, png]


def _plot_confusions(report: dict, path: Path) -> None:
    from .plots import _pyplot, draw_confusion

    plt = _pyplot()
    classes = report["classes"]
    fig, axes = plt.subplots(1, 2, figsize=(4 + 1.2 * len(classes), 1.5 + 0.6 * len(classes)))
    for ax, key in zip(axes, ("base", "adapted")):
        draw_confusion(ax, report["out_of_fold"][key]["confusion"], classes)
        ax.set_title(f"{key}: accuracy {report['out_of_fold'][key]['accuracy']:.1%} (out of fold)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
