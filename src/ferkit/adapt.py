"""Adapters: a small head over the recognizer's outputs, fitted on a user's own labelled photos (`ferkit adapt`). The
head file and its use at run time are ferkit.head's; this module fits and measures.

Read top to bottom: a labelled set (a folder of label/image, or a CSV of path,label[,person]) -> the recognizer run
once over it -> one feature vector per face (face_features: the base model's log-probabilities, plus blendshapes,
head pose and the face mesh's 512-number embedding where the face carries them) -> k-fold cross-validation of the
base model against heads on growing feature groups (FEATURE_STEPS), the best kept -> the head fitted on every image
-> a JSON file (Head) that `load_recognizer(adapter=...)` applies.

The head is multinomial logistic regression with an L2 penalty, fitted in NumPy (Newton's method on the log-probabilities
alone, L-BFGS on more), so the base install adapts and loads heads without scikit-learn. Nothing is chosen
on the folds that score it: the penalty is chosen from L2_GRID by an inner cross-validation on each training part.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .head import FEATURE_GROUPS, AdapterError, Head, available_features, face_features, file_sha256
from .images import IMAGE_SUFFIXES

# The heads compared by cross-validation: each step adds its groups to the last (a step whose groups no face offers
# is left out). The spike on 1,415 real photos: 62.3 % on log-probabilities, 65.1 % with blendshapes,
# 68.3 % with the embedding.
FEATURE_STEPS = (("log_probabilities",), ("blendshapes", "head_pose"), ("mesh_embedding",))
L2_GRID = (1.0, 10.0, 100.0, 1000.0)  # penalties the inner cross-validation chooses among (standardised features)
NEWTON_MAX = 100   # K (D + 1) unknowns above which the fit is L-BFGS (7 x 63: 0.09 s against Newton's 8 s, same optimum)
FACE_CHOICES = ("single", "largest")
GROUP_COLUMNS = ("person", "group")     # a CSV column naming whose photo it is: folds never split one person
BOX_OVERLAP = 0.3                       # a labelled box picks the detected face overlapping it most, by at least this IoU
BATCH = 32                              # images analysed together while collecting faces
SMALL_GROUPS = 12                       # with fewer persons than this, the verdict explains itself person by person


PHOTO_SUFFIXES = IMAGE_SUFFIXES  # folder mode: the one list every command reads (images.py; TIFF too)


@dataclass(frozen=True)
class AdaptConfig:
    """How `adapt` fits and measures a head. `ferkit adapt` has one flag per field."""
    folds: int = 5              # cross-validation folds (grouped by person when the data has a person/group column)
    inner_folds: int = 3        # folds inside each training part that choose the L2 penalty (never the scoring fold)
    min_per_class: int = 20     # fewer usable images than this in a class is an error
    face: str = "single"        # an image with several faces: "single" skips it, "largest" keeps its largest face
    seed: int = 0               # the random order in which images (or persons) are dealt into folds

    def __post_init__(self):
        if self.folds < 2:
            raise ValueError(f"folds must be 2 or more, got {self.folds}")
        if self.inner_folds < 2:
            raise ValueError(f"inner_folds must be 2 or more, got {self.inner_folds}")
        if self.min_per_class < 2:
            raise ValueError(f"min_per_class must be 2 or more, got {self.min_per_class}")
        if self.face not in FACE_CHOICES:
            raise ValueError(f"face must be one of {', '.join(FACE_CHOICES)}, got {self.face!r}")


# ---------------------------------------------------------------- the labelled set
@dataclass
class LabelledSet:
    """Images with their labels. `images`: paths, or arrays (BGR/grey) for sets built in code; `names`: how each
    is named in messages ("photos.csv row 12 (a.jpg)"); `groups`: whose photo each is, or None; `boxes`: per image
    the labelled face's (x, y, w, h) in image pixels, or None (the image's one face), or None for all."""
    images: list
    labels: list[str]
    names: list[str]
    groups: list[str] | None = None
    source: str = ""
    boxes: list | None = None

    def __post_init__(self):
        if not (len(self.images) == len(self.labels) == len(self.names)) or \
                (self.groups is not None and len(self.groups) != len(self.images)) or \
                (self.boxes is not None and len(self.boxes) != len(self.images)):
            raise ValueError("images, labels, names (and groups, boxes) must have one entry per image")
        self.labels = [str(v) for v in self.labels]
        self.groups = None if self.groups is None else [str(v) for v in self.groups]


def labelled_rows(rows, source: str = "") -> LabelledSet:
    """A LabelledSet from rows of (path, label, person, box): person None or "" for none (then no row may have one),
    box None or (x, y, w, h) of the labelled face in image pixels (for a photo with several faces). `ferkit label`
    hands its answers over this way."""
    rows = list(rows)
    persons = [r[2] or None for r in rows]
    if any(persons) and not all(persons):
        missing = next(i for i, p in enumerate(persons) if not p)
        raise AdapterError(f"{source or 'rows'} row {missing + 1} ({rows[missing][0]}): no person, while other rows "
                           f"have one")
    boxes = [None if r[3] is None else tuple(float(v) for v in r[3]) for r in rows]
    return LabelledSet([Path(r[0]) for r in rows], [r[1] for r in rows], [str(r[0]) for r in rows],
                       [str(p) for p in persons] if any(persons) else None, source,
                       boxes if any(b is not None for b in boxes) else None)


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
    box_col = header.index("box") if "box" in header else None
    images, labels, names, groups, boxes = [], [], [], [], []
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
        if box_col is not None:
            boxes.append(_parse_box(row[box_col] if box_col < len(row) else "", f"{path} row {n}"))
        images.append(image)
        labels.append(cells["label"])
        names.append(f"{path} row {n} ({cells['path']})")
    if not images:
        raise AdapterError(f"{path}: no rows below the header")
    return LabelledSet(images, labels, names, groups if group_col is not None else None, str(path),
                       boxes if any(b is not None for b in boxes) else None)


def _parse_box(text: str, where: str) -> tuple[float, float, float, float] | None:
    """A CSV `box` cell: "x y w h" in image pixels (the labelled face of a photo with several), or empty for none."""
    if not text.strip():
        return None
    try:
        box = tuple(float(v) for v in text.split())
    except ValueError:
        box = ()
    if len(box) != 4 or box[2] <= 0 or box[3] <= 0:
        raise AdapterError(f"{where}: field 'box' is {text!r}; expected four numbers \"x y w h\" (pixels, w and h "
                           f"above 0), or empty")
    return box



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
    gives its largest face with face="largest"; one with none is skipped; with a labelled box, the face overlapping it
    most). An unreadable image raises AdapterError naming it (and its CSV row)."""
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
            box = None if data.boxes is None else data.boxes[i]
            if box is not None:
                overlap = [_iou(f.box, box) for f in faces]
                faces = [faces[int(np.argmax(overlap))]] if overlap and max(overlap) >= BOX_OVERLAP else []
            if not faces:
                kept.skipped.append((data.names[i], "no face found" + (" at the labelled box" if box else "")))
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


def _iou(a, b) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(w, 0) * max(h, 0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter) if inter > 0 else 0.0


# ---------------------------------------------------------------- fitting a head
def fit_logistic(x: np.ndarray, y: np.ndarray, n_classes: int, l2: float, start=None, max_steps: int = 50):
    """Multinomial logistic regression: (N, D) features, (N,) class indices -> weights (K, D), bias (K,) minimising
    the summed cross-entropy + l2 / 2 * |weights|^2 (the bias is not penalised): Newton's method with backtracking
    up to NEWTON_MAX unknowns, L-BFGS above. `start`: (weights, bias) to begin from (a fit at a nearby penalty).
    x should be standardised."""
    n, d = x.shape
    k = n_classes
    xa = np.hstack([x, np.ones((n, 1))])                    # (N, D + 1): the bias as a last column
    onehot = np.eye(k)[y]
    penalty = np.full(d + 1, l2)
    penalty[-1] = 1e-8                                      # bias: only enough to fix the softmax's free offset
    theta = np.zeros((k, d + 1)) if start is None else np.hstack([start[0], start[1][:, None]])

    def loss(t):
        z = xa @ t.T
        z -= z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        return -(onehot * logp).sum() + 0.5 * (penalty * t * t).sum(), np.exp(logp)

    if k * (d + 1) > NEWTON_MAX:
        theta = _lbfgs(lambda t: _with_gradient(loss, t, xa, onehot, penalty), theta, tolerance=1e-4 * n)
        return theta[:, :d], theta[:, d]
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


def _with_gradient(loss, theta, xa, onehot, penalty):
    f, p = loss(theta)
    return f, (p - onehot).T @ xa + penalty * theta


def _lbfgs(fun, theta: np.ndarray, tolerance: float, memory: int = 10, max_steps: int = 2000) -> np.ndarray:
    """Minimise a smooth convex fun(theta) -> (value, gradient) from theta, until the largest gradient entry is below
    `tolerance`: limited-memory BFGS with a backtracking (Armijo) line search."""
    f, g = fun(theta)
    history: list[tuple[np.ndarray, np.ndarray]] = []
    for _ in range(max_steps):
        if np.abs(g).max() < tolerance:
            break
        q, alphas = g.ravel().copy(), []
        for s, v in reversed(history):                      # the two-loop recursion: q <- H g
            a = (s @ q) / (v @ s)
            alphas.append(a)
            q -= a * v
        if history:
            s, v = history[-1]
            q *= (s @ v) / (v @ v)
        for (s, v), a in zip(history, reversed(alphas)):
            q += s * (a - (v @ q) / (v @ s))
        step = -q.reshape(theta.shape)
        slope = float((g * step).sum())
        if slope >= 0:                                      # not a descent direction: start the memory afresh
            history, step, slope = [], -g, -float((g * g).sum())
        rate = 1.0
        while True:
            f_new, g_new = fun(theta + rate * step)
            if f_new <= f + 1e-4 * rate * slope or rate < 1e-10:
                break
            rate /= 2
        s, v = (rate * step).ravel(), (g_new - g).ravel()
        if s @ v > 1e-12:
            history = [*history[-(memory - 1):], (s, v)]
        theta, f, g = theta + rate * step, f_new, g_new
    return theta



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


def fit_head_arrays(x: np.ndarray, y: np.ndarray, k: int, l2: float, start=None):
    """-> mean, scale, weights, bias of a head on features x (N, D) and class indices y."""
    mean, scale = standardiser(x)
    w, b = fit_logistic((x - mean) / scale, y, k, l2, start)
    return mean, scale, w, b


def choose_l2(x: np.ndarray, y: np.ndarray, k: int, groups: np.ndarray | None, config: AdaptConfig, seed: int) -> float:
    """The penalty in L2_GRID whose heads are right most often over an inner cross-validation of these images alone
    (config.inner_folds folds, grouped by person where there are persons enough; a tie goes to the smaller penalty,
    since on a small training part every penalty can be right as often, and the largest then flattened an easy head):
    called on a training part, it never sees the fold that scores the head. Accuracy, the outer folds' own measure,
    rather than log-likelihood, which one outlying face (a blendshape far outside the training range) can swing to
    the largest penalty."""
    if groups is not None and len(np.unique(groups)) < 2:
        groups = None
    n_folds = config.inner_folds if groups is None else min(config.inner_folds, len(np.unique(groups)))
    folds = make_folds(y, groups, n_folds, seed)
    right = np.zeros(len(L2_GRID))
    for f in range(n_folds):
        test, train = folds == f, folds != f
        if not test.any() or not train.any():
            continue
        start = None
        for j in np.argsort(L2_GRID)[::-1]:                 # the largest penalty first; each fit starts from the last
            mean, scale, w, b = fit_head_arrays(x[train], y[train], k, L2_GRID[j], start)
            start = (w, b)
            right[j] += int(((((x[test] - mean) / scale) @ w.T + b).argmax(1) == y[test]).sum())
    best = max(range(len(L2_GRID)), key=lambda j: (right[j], -L2_GRID[j]))
    return float(L2_GRID[best])


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
    """k-fold cross-validation: per fold, the baseline (base_predictions) and a head fitted on the other folds (its
    penalty chosen by choose_l2 on those folds alone), scored on this one; their mean, spread, gain, the out-of-fold
    confusion matrices and, with groups, accuracy per group. `helps`: the mean gain in accuracy is above 0 and above
    the spread (standard deviation) of the per-fold gains."""
    k = len(classes)
    folds = make_folds(y, groups, config.folds, config.seed)
    pred_base, pred_head = np.empty_like(y), np.empty_like(y)
    per_fold, baseline = [], "base model"
    for f in range(config.folds):
        test, train = folds == f, folds != f
        if not test.any():
            continue
        l2 = choose_l2(x[train], y[train], k, None if groups is None else groups[train], config, config.seed + 1 + f)
        mean, scale, w, b = fit_head_arrays(x[train], y[train], k, l2)
        pred_head[test] = (((x[test] - mean) / scale) @ w.T + b).argmax(1)
        fixed, baseline = base_predictions(base[test], base_labels, classes)
        pred_base[test] = fixed if fixed is not None else np.bincount(y[train], minlength=k).argmax()
        per_fold.append({"fold": f, "n": int(test.sum()), "l2": l2, "base": scores(y[test], pred_base[test], k),
                         "adapted": scores(y[test], pred_head[test], k)})
    out = {"folds": len(per_fold), "grouped": groups is not None, "baseline": baseline, "l2_grid": list(L2_GRID),
           "inner_folds": config.inner_folds, "seed": config.seed, "classes": list(classes)}
    for metric in ("accuracy", "macro_f1"):
        b_ = np.array([p["base"][metric] for p in per_fold])
        a_ = np.array([p["adapted"][metric] for p in per_fold])
        gain = a_ - b_
        out[metric] = {"base_mean": _r(b_.mean()), "base_std": _r(b_.std(ddof=1)), "adapted_mean": _r(a_.mean()),
                       "adapted_std": _r(a_.std(ddof=1)), "gain_mean": _r(gain.mean()), "gain_std": _r(gain.std(ddof=1))}
    acc = out["accuracy"]
    out["helps"] = bool(acc["gain_mean"] > 0 and acc["gain_mean"] > acc["gain_std"])
    out["out_of_fold"] = {"base": scores(y, pred_base, k), "adapted": scores(y, pred_head, k)}
    out["per_fold"] = [{"fold": p["fold"], "n": p["n"], "l2": p["l2"], "base_accuracy": _r(p["base"]["accuracy"]),
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
    kept face offers (available_features), and the heads compared are FEATURE_STEPS over them. AdapterError for
    fewer than 2 classes or fewer than config.min_per_class usable images in a class. Warns (and lists in the
    report's "warnings") where labels differ only in case, and where there is no person column."""
    m = _measure(recognizer, data, config)
    l2 = choose_l2(m.x, m.y, len(m.classes), m.groups, config, config.seed)
    mean, scale, w, b = fit_head_arrays(m.x, m.y, len(m.classes), l2)
    from .version import __version__

    info = {"created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "ferkit_version": __version__, "counts": m.counts, "images": len(data.images),
            "skipped": len(m.collected.skipped), "face": config.face, "l2": l2, "cross_validation": m.report}
    base_model = {"name": recognizer.name, "file": Path(recognizer.model_path).name,
                  "sha256": file_sha256(recognizer.model_path), "labels": list(recognizer.labels)}
    head = Head(name, m.classes, tuple(m.names), mean, scale, w, b, base_model, info)
    return Adaptation(head, m.report, m.collected.skipped)


def estimate(recognizer, rows, config: AdaptConfig = AdaptConfig()) -> dict:
    """The cross-validation report adapt() would give for rows of (path, label, person, box) (labelled_rows), without
    fitting the final head: `ferkit label`'s running estimate. Its "accuracy" holds base_mean, adapted_mean, their
    spreads and gain_mean; "feature_sets" each head compared; "warnings" what adapt would warn of; "counts" the usable
    faces per class; "skipped" (row's path, reason) for each row left out."""
    m = _measure(recognizer, labelled_rows(rows), config)
    return {**m.report, "counts": m.counts, "skipped": m.collected.skipped}


@dataclass
class _Measured:
    collected: Collected
    classes: tuple[str, ...]
    counts: dict
    x: np.ndarray            # (N, D) the chosen head's features
    y: np.ndarray            # (N,) class indices
    names: list[str]         # the chosen head's feature names
    groups: np.ndarray | None
    report: dict


def _measure(recognizer, data: LabelledSet, config: AdaptConfig) -> _Measured:
    """adapt() up to the final fit: the faces, the classes, every head of FEATURE_STEPS cross-validated on the same
    folds, the best kept (the smaller on a tie), and the report with its warnings and verdict."""
    if getattr(recognizer, "adapter", None) is not None:
        raise ValueError("adapt() needs the recognizer without an adapter: load it without adapter=")
    labels, notes = unify_case(data.labels, recognizer.labels)
    data = dataclasses.replace(data, labels=labels)
    if data.groups is None:
        notes.append("no person column: photos of one person may sit in both the training and the test folds, which "
                     "inflates the figure (by several points where each person has many photos); add a person column "
                     "to the CSV")
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
    base = np.array([[f.probabilities[c] for c in base_labels] for f in collected.faces])  # no adapter: its own
    groups = None if collected.groups is None else np.array(collected.groups)
    # Heads on growing feature groups, cross-validated on the same folds; the better mean accuracy is kept (the
    # smaller head on a tie), and each is reported. Choosing the best of a few on the folds flatters the winner a
    # little. (On FER-2013 faces in scenes blendshapes and pose lose 5-6 points; on a field set of real photos they
    # added 3.4, the embedding 3.2 more: docs/adapt.md.)
    candidates, kept = {}, []
    for step in FEATURE_STEPS:
        added = [n for n in names if n.partition(":")[0] in step]
        if added:
            kept += added
            groups_so_far = [g for g in FEATURE_GROUPS[1:] if any(n.startswith(g + ":") for n in kept)]
            label = "network outputs" + (" + " + ", ".join(groups_so_far) if groups_so_far else " alone")
            candidates[label] = list(kept)
    reports = {k: cross_validate(x[:, [names.index(n) for n in v]], y, base, base_labels, classes, groups, config)
               for k, v in candidates.items()}
    chosen = max(reports, key=lambda k: (reports[k]["accuracy"]["adapted_mean"], -len(candidates[k])))
    report = reports[chosen]
    if len(reports) > 1:
        report["feature_sets"] = {k: {"features": len(candidates[k]), "accuracy_mean": r["accuracy"]["adapted_mean"],
                                      "accuracy_std": r["accuracy"]["adapted_std"],
                                      "gain_mean": r["accuracy"]["gain_mean"], "chosen": k == chosen}
                                  for k, r in reports.items()}
    x = x[:, [names.index(n) for n in candidates[chosen]]]
    if groups is not None:  # what the figure would be had the folds ignored who is who
        loose = cross_validate(x, y, base, base_labels, classes, None, config)["accuracy"]
        report["ungrouped"] = {key: loose[key] for key in ("base_mean", "adapted_mean", "gain_mean")}
    report["verdict"] = verdict(report)
    report["warnings"] = notes
    for note in notes:
        warnings.warn(f"{where}{note}", stacklevel=3)
    return _Measured(collected, classes, counts, x, y, candidates[chosen], groups, report)


def unify_case(labels, model_labels) -> tuple[list[str], list[str]]:
    """Labels that differ only in case (or surrounding spaces) are one class: each takes the model's own spelling
    where it names one of the model's labels, else its most common spelling. -> (labels, a note per class whose
    spellings were merged or changed, naming them with their counts)."""
    spellings: dict[str, dict[str, int]] = {}
    for label in labels:
        key = label.strip().casefold()
        spellings.setdefault(key, {}).setdefault(label, 0)
        spellings[key][label] += 1
    own = {m.casefold(): m for m in model_labels}
    chosen, notes = {}, []
    for key, seen in spellings.items():
        pick = own.get(key) or max(sorted(seen), key=lambda v: seen[v])
        chosen[key] = pick
        if set(seen) != {pick}:
            notes.append("labels compared without case: " + ", ".join(f"{v!r} ({n})" for v, n in sorted(seen.items()))
                         + f" are one class, {pick!r}" + (" (the model's own label)" if key in own else ""))
    return [chosen[label.strip().casefold()] for label in labels], notes


def verdict(report: dict) -> str:
    """The verdict in words: whether the head's mean gain in accuracy is above the folds' spread, and, with fewer
    than SMALL_GROUPS persons, why the rule is cautious there (and the per-person figures to read instead)."""
    acc = report["accuracy"]
    if report["helps"]:
        return (f"the adapter helps: its mean gain ({acc['gain_mean']:+.1%}) is above the spread of the per-fold "
                f"gains ({acc['gain_std']:.1%})")
    text = (f"the adapter does not beat the baseline beyond the folds' spread (mean gain {acc['gain_mean']:+.1%}, "
            f"spread {acc['gain_std']:.1%})")
    persons = report.get("per_group") or {}
    if report["grouped"] and 0 < len(persons) < SMALL_GROUPS:
        better = sum(v["adapted_accuracy"] > v["base_accuracy"] for v in persons.values())
        worse = sum(v["adapted_accuracy"] < v["base_accuracy"] for v in persons.values())
        text += (f". With {len(persons)} persons in {report['folds']} folds each fold holds one or two people, so "
                 f"the per-fold gains swing with who is in the fold and this rule is cautious: the head did better "
                 f"for {better} of {len(persons)} persons and worse for {worse} (per person below). More persons, "
                 f"or a check on people outside this set, would settle it; --force writes the head")
    return text


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
    if report.get("ungrouped"):
        loose = report["ungrouped"]
        lines.append(f"  grouped by person: adapted {acc['adapted_mean']:.1%}; on folds that ignore the person column "
                     f"{loose['adapted_mean']:.1%} ({loose['adapted_mean'] - acc['adapted_mean']:+.1%}: what photos "
                     f"of one person on both sides would add)")
    persons = report.get("per_group") or {}
    if persons and len(persons) < SMALL_GROUPS:
        lines.append("  per person (accuracy base -> adapted, out of fold): " + ", ".join(
            f"{g} {v['base_accuracy']:.0%} -> {v['adapted_accuracy']:.0%} (n={v['n']})" for g, v in persons.items()))
    lines.append("  verdict: " + report.get("verdict", verdict(report)))
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
          f"Baseline: {r['baseline']}. L2 penalty per fold {', '.join(str(p['l2']) for p in r['per_fold'])}, each "
          f"chosen from {', '.join(map(str, r['l2_grid']))} by {r['inner_folds']}-fold cross-validation inside that "
          f"fold's training part; {head.info.get('l2')} for the head written, chosen the same way on every image.", "",
          "| | base | adapted | gain |", "|---|---|---|---|",
          f"| accuracy (mean ± sd over folds) | {acc['base_mean']:.1%} ± {acc['base_std']:.1%} | "
          f"{acc['adapted_mean']:.1%} ± {acc['adapted_std']:.1%} | {acc['gain_mean']:+.1%} ± {acc['gain_std']:.1%} |",
          f"| macro-F1 | {f1['base_mean']:.3f} ± {f1['base_std']:.3f} | {f1['adapted_mean']:.3f} ± "
          f"{f1['adapted_std']:.3f} | {f1['gain_mean']:+.3f} ± {f1['gain_std']:.3f} |", "",
          f"**Verdict:** {r.get('verdict', verdict(r))}.", ""]
    md += [f"**Warning:** {w}." for w in r.get("warnings", [])] + [""] * bool(r.get("warnings"))
    if r.get("feature_sets"):
        md += ["| head on | numbers | accuracy (mean ± sd) | gain over base | |", "|---|---|---|---|---|"]
        md += [f"| {k} | {v['features']} | {v['accuracy_mean']:.1%} ± {v['accuracy_std']:.1%} | {v['gain_mean']:+.1%} | "
               f"{'kept' if v['chosen'] else ''} |" for k, v in r["feature_sets"].items()] + [""]
    if r.get("ungrouped"):
        md += [f"Folds that ignored the person column would give {r['ungrouped']['adapted_mean']:.1%} adapted "
               f"(grouped: {acc['adapted_mean']:.1%}).", ""]
    md += ["| fold | images | base accuracy | adapted accuracy | base macro-F1 | adapted macro-F1 |",
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
