"""The labelling session's state, without any web code: the photos, their faces (each photo analysed once, in the
background, its face crops and probabilities cached on disk), the order faces are asked in, and the answers.

Files, for `--out labels.csv`:
- labels.csv: path,label[,person],box: exactly what `ferkit adapt` reads (paths relative to the CSV's folder; `box`
  "x y w h" in the photo's pixels only where the photo has several faces, empty otherwise). Only labelled faces are
  rows; a skipped face and "no usable face" are not.
- labels.csv.ferkit/answers.jsonl: every answer (label, skip, no usable face), one JSON line each, appended and
  fsync'ed before the call returns: the record that survives kill -9. labels.csv is derived from it (a new label is
  appended to it, a changed one rewrites it atomically, and it is rewritten from the answers on every start).
- labels.csv.ferkit/analysed.jsonl and crops/: one line per analysed photo (its faces' boxes and probabilities, or
  why it could not be read) and the JPEG crops shown on the page; a photo whose size and modification time match its
  line, analysed by the same model and detector, is never decoded again.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..adapt import PROBABILITY_FLOOR, AdaptConfig, AdapterError, cross_validate
from ..images import IMAGE_SUFFIXES as PHOTO_SUFFIXES  # one list for every command

MAX_LABELS = 9           # keys 1-9 pick a label
CROP_SIDE = 320          # px, the longer side of a face crop as shown
CROP_MARGIN = 0.25       # of the face box's side, added around it in the crop
CONTEXT_SIDE = 360       # px, the longer side of the whole photo shown beside a face of a photo with several faces
JPEG_QUALITY = 90
SKIP, NO_FACE = "skip", "no_face"  # the answers that are not labels (kinds in answers.jsonl)
MIN_PER_CLASS = AdaptConfig().min_per_class  # the estimate starts where adapt would: this many labels in a class
ORDER_RULE = ("Faces come in this order: the rest of a photo's faces after one of them; otherwise the face the model "
              "is least sure of (lowest top probability), from the person with the fewest answers so far, among the "
              "faces analysed so far. Skipped faces come back when no other face is left.")


class LabelError(ValueError):
    """Bad input to a labelling session; the message names the file or the flag."""


# ---------------------------------------------------------------- inputs
def parse_labels(text: str | None, model_labels) -> tuple[str, ...]:
    """--labels a,b,c -> ('a', 'b', 'c'); None: the model's own labels. 2 to 9 distinct, non-empty names."""
    if text is None:
        labels = tuple(model_labels)
    else:
        labels = tuple(part.strip() for part in text.split(","))
        if any(not part for part in labels):
            raise LabelError(f"--labels {text!r}: an empty label; give names separated by commas, e.g. happy,sad")
    folded = Counter(c.lower() for c in labels)
    twice = sorted(c for c in labels if folded[c.lower()] > 1)
    if twice:
        raise LabelError(f"--labels {text!r}: {', '.join(twice)} given more than once (labels are compared "
                         f"without case)")
    if not 2 <= len(labels) <= MAX_LABELS:
        given = f"--labels {text!r}" if text is not None else f"the model's labels ({','.join(labels)})"
        raise LabelError(f"{given}: {len(labels)} labels; give 2 to {MAX_LABELS} (keys 1-{MAX_LABELS} "
                         f"pick them)")
    return labels


def find_photos(inputs) -> list[Path]:
    """Files as given and the photos (PHOTO_SUFFIXES) below folders, each once, folders' contents sorted."""
    photos, seen = [], set()
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not found:
                raise LabelError(f"{path}: no photos in this folder (looked for {', '.join(PHOTO_SUFFIXES)})")
        elif path.is_file():
            found = [path]
        else:
            raise LabelError(f"{path}: no such file or folder")
        for p in found:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                photos.append(p)
    if not photos:
        raise LabelError("no photos given")
    return photos


def person_rule(spec: str | None):
    """--person-from: None (no person column), "folder" (the photo's folder's name), or a regular expression
    searched in the photo's path (as found, with /): its first group, or the whole match without groups.
    -> a function path -> person (LabelError naming a photo it does not match), or None."""
    if spec is None:
        return None
    if spec == "folder":
        return lambda path: path.parent.name or "."
    try:
        pattern = re.compile(spec)
    except re.error as e:
        raise LabelError(f"--person-from {spec!r}: not 'folder' nor a regular expression ({e})") from None

    def person(path: Path) -> str:
        m = pattern.search(path.as_posix())
        found = (m.group(1) if pattern.groups else m.group(0)) if m else None
        if not found:
            raise LabelError(f"--person-from {spec!r}: does not match {path.as_posix()} (or matches an empty "
                             f"person); every photo needs a person")
        return found
    return person


# ---------------------------------------------------------------- faces
@dataclass
class FaceItem:
    """One face to label. `id` is the page's name for it ("photo-face"); `key` the answers' ((CSV path, index))."""
    id: str
    photo: int                   # index into the session's photos
    index: int                   # the face's place in the photo (left to right, as the recognizer gives them)
    faces_in_photo: int
    box: tuple[int, int, int, int]
    probabilities: dict[str, float]
    crop: str                    # file name in the crops folder
    context: str | None          # the whole photo, small, where it has several faces
    size: tuple[int, int]        # the photo's width, height

    @property
    def top(self) -> float:
        return max(self.probabilities.values())


def face_crop(image: np.ndarray, box) -> np.ndarray:
    """The face box with a margin of CROP_MARGIN, its longer side scaled to CROP_SIDE."""
    x, y, w, h = box
    m = int(CROP_MARGIN * max(w, h))
    H, W = image.shape[:2]
    x0, y0, x1, y1 = max(0, x - m), max(0, y - m), min(W, x + w + m), min(H, y + h + m)
    crop = image[y0:y1, x0:x1]
    return _scaled(crop, CROP_SIDE)


def _scaled(image: np.ndarray, side: int) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    s = side / max(h, w, 1)
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))),
                      interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)


def _jpeg(image: np.ndarray) -> bytes:
    import cv2

    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def _append_line(path: Path, record: dict, sync: bool) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        if sync:
            os.fsync(f.fileno())


def _read_lines(path: Path) -> list[dict]:
    """JSON lines; a torn last line (the process killed while writing it) is dropped."""
    if not path.is_file():
        return []
    out = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines, start=1):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if n == len(lines):
                break
            raise LabelError(f"{path} line {n}: not JSON; the file is damaged (move it away to start over)") from None
    return out


# ---------------------------------------------------------------- the session
class LabelStore:
    """Photos -> faces -> answers, for one `--out` CSV. Thread-safe: the page's requests, the analysing thread and
    the estimating thread share it under one lock."""

    def __init__(self, photos: list[Path], out: str | Path, labels: tuple[str, ...], recognizer, persons=None):
        self.out = Path(out)
        if self.out.suffix.lower() != ".csv":
            raise LabelError(f"--out {out}: the labels file ends in .csv")
        if not self.out.parent.is_dir():
            raise LabelError(f"--out {out}: no folder {self.out.parent}")
        self.work = self.out.with_name(self.out.name + ".ferkit")
        self.answers_file = self.work / "answers.jsonl"
        self.analysed_file = self.work / "analysed.jsonl"
        self.crops = self.work / "crops"
        if self.out.exists() and not self.answers_file.exists():
            raise LabelError(f"--out {out}: the file exists and was not written by ferkit label (no "
                             f"{self.answers_file}); choose another --out, or move it away")
        self.labels = labels
        self.recognizer = recognizer
        self.model_labels = tuple(recognizer.labels)
        # the cache holds this model's and detector's answers: another pair analyses the photos again
        self.analyser = f"{recognizer.name} ({Path(recognizer.model_path).name}), {recognizer.detector.name}"
        self.has_persons = persons is not None
        self.photos = photos
        self.paths = [Path(os.path.relpath(p.resolve(), self.out.parent.resolve())).as_posix() for p in photos]
        self.where = {p: i for i, p in enumerate(self.paths)}
        self.persons = [persons(p) for p in photos] if persons else [""] * len(photos)
        self.lock = threading.RLock()
        self.version = 0                      # goes up with every answer: the estimator's cue
        self.faces: dict[str, FaceItem] = {}  # by id, in the order analysed
        self.analysed = 0
        self.unreadable: list[tuple[str, str]] = []  # (path, why)
        self.answers: dict[tuple[str, int], dict] = {}  # latest answer per face, in the order first answered
        self.last_photo: int | None = None
        self.crops.mkdir(parents=True, exist_ok=True)
        self._load()

    # ------------------------------------------------------------ start
    def _load(self) -> None:
        records = _read_lines(self.answers_file)
        for record in records:
            key = (record["path"], record["face"])
            if record["kind"] == "label" and record["label"] not in self.labels:
                raise LabelError(f"{self.answers_file}: holds the label {record['label']!r}, which is not in "
                                 f"--labels {','.join(self.labels)}: add it, or choose another --out")
            self.answers[key] = record  # a changed answer keeps its first place (Backspace walks this order)
        for key, record in self.answers.items():  # the person of today's rule (--person-from may have changed)
            i = self.where.get(key[0])
            if i is not None:
                record["person"] = self.persons[i]
        if records:  # stopped between two faces of one photo: its next face comes first
            self.last_photo = self.where.get(records[-1]["path"])
        self._cached = {r["path"]: r for r in _read_lines(self.analysed_file)}
        self._write_csv()

    def pending_photos(self) -> list[int]:
        """Photos not analysed yet, spread over persons (one of each person in turn), for the analysing thread;
        photos already in the cache are taken in here."""
        todo: dict[str, list[int]] = {}
        for i, path in enumerate(self.paths):
            st = self.photos[i].stat() if self.photos[i].exists() else None
            cached = self._cached.get(path)
            if cached and st and cached.get("size") == st.st_size and cached.get("mtime_ns") == st.st_mtime_ns and \
                    cached.get("analyser") == self.analyser and all((self.crops / f["crop"]).is_file() for f in cached.get("faces", [])):
                self._take(i, cached)
            else:
                todo.setdefault(self.persons[i], []).append(i)
        queues = list(todo.values())
        order = []
        for turn in range(max(map(len, queues), default=0)):
            order += [q[turn] for q in queues if turn < len(q)]
        return order

    # ------------------------------------------------------------ analysis (the background thread)
    def analyse(self, i: int) -> None:
        """Decode photo i once, find and classify its faces, cache the crops and the probabilities."""
        from ..images import load_image

        path = self.photos[i]
        record = {"path": self.paths[i], "analyser": self.analyser}
        try:
            st = path.stat()
            record.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
            image = load_image(path)
        except (ValueError, OSError) as e:  # UnreadableImageError and friends name the file; the others get it here
            record["error"] = str(e) if str(path) in str(e) else f"{path}: {e}"
        else:
            faces = self.recognizer.analyze(image)
            stem = hashlib.sha1(self.paths[i].encode()).hexdigest()[:16]
            record["faces"] = []
            record["shape"] = [image.shape[1], image.shape[0]]
            if len(faces) > 1:
                (self.crops / f"{stem}-photo.jpg").write_bytes(_jpeg(_scaled(image, CONTEXT_SIDE)))
            for n, face in enumerate(faces):
                name = f"{stem}-{n}.jpg"
                (self.crops / name).write_bytes(_jpeg(face_crop(image, face.box)))
                record["faces"].append({"box": [int(v) for v in face.box],
                                        "probabilities": {k: float(v) for k, v in face.probabilities.items()},
                                        "crop": name, "context": f"{stem}-photo.jpg" if len(faces) > 1 else None})
        _append_line(self.analysed_file, record, sync=False)  # a lost line only means analysing that photo again
        self._take(i, record)

    def _take(self, i: int, record: dict) -> None:
        with self.lock:
            self.analysed += 1
            if "error" in record:
                self.unreadable.append((self.paths[i], record["error"]))
                return
            faces = record["faces"]
            for n, f in enumerate(faces):
                item = FaceItem(f"{i}-{n}", i, n, len(faces), tuple(f["box"]), f["probabilities"], f["crop"],
                                f.get("context"), tuple(record.get("shape") or (0, 0)))
                self.faces[item.id] = item

    # ------------------------------------------------------------ answers
    def key(self, item: FaceItem) -> tuple[str, int]:
        return self.paths[item.photo], item.index

    def answer(self, face_id: str, kind: str, label: str | None = None) -> None:
        """Record an answer (kind "label" with a label, SKIP or NO_FACE): appended to answers.jsonl and fsync'ed,
        then the CSV follows."""
        if kind not in ("label", SKIP, NO_FACE):
            raise LabelError(f"unknown answer {kind!r}")
        if kind == "label" and label not in self.labels:
            raise LabelError(f"unknown label {label!r}; the labels are {', '.join(self.labels)}")
        with self.lock:
            item = self.faces.get(face_id)
            if item is None:
                raise LabelError(f"no face {face_id!r}")
            key = self.key(item)
            record = {"path": key[0], "face": key[1], "kind": kind, "label": label if kind == "label" else None,
                      "person": self.persons[item.photo],
                      "box": list(item.box) if item.faces_in_photo > 1 else None,
                      "probabilities": item.probabilities}
            _append_line(self.answers_file, record, sync=True)
            before = self.answers.get(key)
            self.answers[key] = record  # a changed answer keeps its place
            self.version += 1
            self.last_photo = item.photo
            if before is None and kind == "label" and self.out.exists():
                self._append_csv(record)
            elif before is not None or kind == "label":
                self._write_csv()

    def _columns(self) -> list[str]:
        return ["path", "label"] + (["person"] if self.has_persons else []) + ["box"]

    def _row(self, record: dict) -> list[str]:
        box = " ".join(map(str, record["box"])) if record.get("box") else ""
        return [record["path"], record["label"]] + ([record["person"]] if self.has_persons else []) + [box]

    def _append_csv(self, record: dict) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(self._row(record))
        with open(self.out, "a", encoding="utf-8", newline="") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())

    def _write_csv(self) -> None:
        """The whole CSV from the answers, written beside and renamed over: never half a file."""
        tmp = self.out.with_name(self.out.name + ".tmp")
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(self._columns())
            w.writerows(self._row(r) for r in self.answers.values() if r["kind"] == "label")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.out)
        try:
            fd = os.open(self.out.parent, os.O_RDONLY)
            os.fsync(fd)  # the rename itself
            os.close(fd)
        except OSError:  # a filesystem or OS without directory fsync
            pass

    # ------------------------------------------------------------ what to show
    def next_face(self) -> FaceItem | None:
        """The next face to ask (ORDER_RULE), or None when every analysed face has an answer."""
        with self.lock:
            fresh, skipped = [], []
            for item in self.faces.values():
                a = self.answers.get(self.key(item))
                if a is None:
                    fresh.append(item)
                elif a["kind"] == SKIP:
                    skipped.append(item)
            pool = fresh or skipped
            if not pool:
                return None
            same = [f for f in pool if f.photo == self.last_photo]
            if same:
                return min(same, key=lambda f: f.index)
            done = Counter(a["person"] for a in self.answers.values() if a["kind"] != SKIP)
            return min(pool, key=lambda f: (done[self.persons[f.photo]], f.top, f.photo, f.index))

    def back(self, steps: int) -> FaceItem | None:
        """The face answered `steps` answers ago (1: the last), or None past the first."""
        with self.lock:
            keys = list(self.answers)
            if not 1 <= steps <= len(keys):
                return None
            path, index = keys[-steps]
        return self.find(path, index)

    def find(self, path: str, index: int) -> FaceItem | None:
        i = self.where.get(path)
        with self.lock:
            return None if i is None else self.faces.get(f"{i}-{index}")

    def recent(self, n: int) -> list[tuple[FaceItem | None, dict]]:
        """The last n answers (in the order first answered), each with its face."""
        with self.lock:
            return [(self.find(*key), a) for key, a in list(self.answers.items())[-n:]]

    def answer_of(self, item: FaceItem) -> dict | None:
        with self.lock:
            return self.answers.get(self.key(item))

    def guess(self, item: FaceItem) -> str | None:
        """The model's most probable label among the session's labels (None when it has none of them)."""
        own = [c for c in self.labels if c in item.probabilities]
        return max(own, key=item.probabilities.get) if own else None

    def counts(self) -> dict:
        with self.lock:
            kinds = Counter(a["label"] if a["kind"] == "label" else a["kind"] for a in self.answers.values())
            return {"labels": {c: kinds.get(c, 0) for c in self.labels}, "skipped": kinds.get(SKIP, 0),
                    "no_face": kinds.get(NO_FACE, 0), "answered": len(self.answers) - kinds.get(SKIP, 0),
                    "faces": len(self.faces), "photos": len(self.photos), "analysed": self.analysed,
                    "unreadable": len(self.unreadable)}

    def labelled(self) -> list[dict]:
        """The label answers (path, label, person, probabilities), for the estimate."""
        with self.lock:
            return [a for a in self.answers.values() if a["kind"] == "label"]


# ---------------------------------------------------------------- the running estimate
def estimate(answers: list[dict], labels, model_labels, grouped: bool, config: AdaptConfig = AdaptConfig()) -> dict:
    """Cross-validated accuracy of a head on the base model's log-probabilities (adapt's first head) against the
    base model, over the classes with MIN_PER_CLASS labels or more. -> {"ready": False, "reason"} below that, else
    the figures. Features come from the answers' stored probabilities: nothing is decoded."""
    counts = Counter(a["label"] for a in answers)
    classes = [c for c in labels if counts[c] >= MIN_PER_CLASS]
    left_out = {c: counts[c] for c in labels if 0 < counts[c] < MIN_PER_CLASS}
    if len(classes) < 2:
        return {"ready": False, "reason": f"the estimate starts at {MIN_PER_CLASS} labels in each of 2 classes"}
    rows = [a for a in answers if a["label"] in classes]
    base = np.array([[a["probabilities"].get(c, 0.0) for c in model_labels] for a in rows])
    x = np.log(np.maximum(base, PROBABILITY_FLOOR))
    y = np.array([classes.index(a["label"]) for a in rows])
    groups = np.array([a["person"] for a in rows]) if grouped else None
    note = ""
    if groups is not None and len(set(groups)) < config.folds:
        groups, note = None, (f"folds not grouped by person ({len(set(groups))} persons for {config.folds} folds): "
                              f"the figure is optimistic")
    elif groups is None:
        note = "no person column (--person-from): folds may hold the same person on both sides, an optimistic figure"
    try:
        r = cross_validate(x, y, base, tuple(model_labels), tuple(classes), groups, config)
    except AdapterError as e:
        return {"ready": False, "reason": str(e)}
    acc = r["accuracy"]
    return {"ready": True, "n": len(rows), "classes": classes, "left_out": left_out, "grouped": r["grouped"],
            "baseline": r["baseline"], "adapted": acc["adapted_mean"], "adapted_std": acc["adapted_std"],
            "base": acc["base_mean"], "base_std": acc["base_std"], "helps": r["helps"], "note": note,
            "folds": r["folds"]}
