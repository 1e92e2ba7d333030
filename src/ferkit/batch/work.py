"""The work itself, the same in every engine: a chunk of tasks -> rows, with one Recognizer.

Row schema (docs/batch.md): one row per face, plus one per image or analysed frame with no face ("no_face") or
that could not be analysed ("error", with the message). Columns are fixed apart from one probability column per
class of the model (`prob_<label>`, in the model's label order) and, with face features, their columns
(face.feature_columns: bs_<blendshape>, au_<AU>, yaw, pitch, roll, mesh_<i>_<x|y|z>). A face's values come from
Face.to_row, the one flat serialiser.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
from dataclasses import dataclass
from types import SimpleNamespace

import cv2

from ..face import LANDMARK_COLUMNS, feature_columns
from .inputs import Chunk, Task, is_sampled

HEAD = ["source", "kind", "frame", "time", "status", "message", "face", "x", "y", "w", "h"]
TAIL = ["detector", "detector_score", "emotion"]
INT_COLUMNS = {"frame", "face", "x", "y", "w", "h"}
FLOAT_COLUMNS = {"time", "detector_score", *LANDMARK_COLUMNS}   # plus every prob_<label>
FRAME_BATCH = 16           # video frames analysed together
MAX_FAILED_READS = 25      # consecutive undecodable frames after which a video is taken to end there (video.py's)
PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
             "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]}


FEATURE_PREFIXES = ("prob_", "bs_", "au_", "mesh_")  # float columns, one per label / blendshape / AU / mesh value


def columns(labels, features=()) -> list[str]:
    """The output's columns for a model's labels and the face features chosen (mesh.parse_features names)."""
    return HEAD + LANDMARK_COLUMNS + TAIL + [f"prob_{k}" for k in labels] + feature_columns(features) + ["model"]


def column_type(name: str) -> type:
    return int if name in INT_COLUMNS else \
        float if name in FLOAT_COLUMNS or name.startswith(FEATURE_PREFIXES) or name in ("yaw", "pitch", "roll") else str


@dataclass(frozen=True)
class RecognizerSpec:
    """How each worker builds its Recognizer (picklable: it travels to worker processes and Ray actors).
    `detector` None: the library's default; `provider`: "cpu", "cuda", "tensorrt" or an ONNX Runtime provider
    name (None: the library's default); `detect_side`: yunet's working size in pixels (None: its default, 640)."""
    model: str | None = None
    detector: str | None = None
    provider: str | None = None
    threads: int = 1
    detect_side: int | None = None
    adapter: str | None = None        # a head file from `ferkit adapt`: labels and the model's name are then its
    features: tuple[str, ...] = ()    # face features (mesh.parse_features names): their columns join every row

    def describe(self) -> tuple[str, list[str], str]:
        """(model name, labels, detector name) from the model file, without a session: for the driver, before any worker starts.
        Raises ValueError / FileNotFoundError for an unknown model or detector."""
        from ..detect import available_detectors, check_detect_side
        from ..recognizer import load_recognizer, read_metadata, resolve_model

        if self.detector is not None and self.detector not in available_detectors():
            raise ValueError(f"unknown detector {self.detector!r}; valid: {', '.join(available_detectors())}")
        path = resolve_model(self.model)
        meta = read_metadata(path)
        self.providers()  # refuses a provider this ferkit cannot pass on, before any worker starts
        detector = self.detector or inspect.signature(load_recognizer).parameters["detector"].default
        check_detect_side(detector, self.detect_side)  # before any worker starts
        if self.adapter is not None:
            from ..head import load_adapter

            head = load_adapter(self.adapter, path, meta["labels"])
            return f"{meta.get('name', path.stem)}+{head.name}", list(head.classes), str(detector)
        return meta.get("name", path.stem), list(meta["labels"]), str(detector)

    def providers(self) -> list[str] | None:
        if self.provider is None:
            return None
        from ..recognizer import Recognizer, load_recognizer

        takes = {*inspect.signature(load_recognizer).parameters, *inspect.signature(Recognizer.__init__).parameters}
        if "providers" not in takes:
            raise ValueError("this ferkit's load_recognizer does not take ONNX Runtime providers yet; "
                             "leave --provider out (CPU)")
        return PROVIDERS.get(self.provider.lower(), [self.provider, "CPUExecutionProvider"])

    def load(self):
        """The Recognizer of one worker: ONNX Runtime and OpenCV on `threads` threads (workers are the parallelism)."""
        from ..recognizer import load_recognizer

        cv2.setNumThreads(self.threads)
        options = {"threads": self.threads}
        if self.detector is not None:
            options["detector"] = self.detector
        if self.detect_side is not None:
            options["detect_side"] = self.detect_side
        if self.adapter is not None:
            options["adapter"] = self.adapter
        if self.features:
            options["features"] = self.features
        providers = self.providers()
        if providers is not None:
            options["providers"] = providers
        return load_recognizer(self.model, **options)


# ---------------------------------------------------------------- rows
def _row(rec, task: Task, frame: int | None, status: str, message: str | None = None) -> dict:
    row = dict.fromkeys(columns(rec.labels, getattr(rec, "features", ())))
    row.update(source=task.source, kind=task.kind, status=status, message=message, model=rec.name,
               detector=getattr(rec.detector, "name", None))
    if frame is not None:
        row["frame"] = int(frame)
        row["time"] = round(frame / task.video_fps, 3) if task.video_fps else None
    return row


def face_rows(rec, task: Task, frame: int | None, faces) -> list[dict]:
    if not faces:
        return [_row(rec, task, frame, "no_face")]
    rows = []
    for i, f in enumerate(faces):
        row = _row(rec, task, frame, "ok")
        row["face"] = i
        flat = f.to_row()
        flat["detector"] = flat["detector"] or row["detector"]
        row.update((k, v) for k, v in flat.items() if k in row)  # adapter faces carry their base model's too
        rows.append(row)
    return rows


def stand_in(name: str, labels, detector: str, features=()) -> SimpleNamespace:
    """What the rows read of a Recognizer (from RecognizerSpec.describe() and its features), for error rows written
    without one: a worker that died."""
    return SimpleNamespace(name=name, labels=list(labels), detector=SimpleNamespace(name=detector),
                           features=tuple(features))


def error_row(rec, task: Task, message: str, frame: int | None = None) -> dict:
    return _row(rec, task, frame, "error", message)


_ADDRESS = re.compile(r"<([\w.]+) object at 0x[0-9a-fA-F]+>")


def describe_error(task: Task, e: BaseException) -> str:
    """The message of an error row: the file as the user gave it (not the absolute path the worker opened), the
    library's message (which names the file already) or the exception's type and text; never an object's memory
    address (PIL's "<_io.BytesIO object at 0x7f...>"), so the same input gives the same message on every run."""
    text = _ADDRESS.sub(r"<\1>", str(e))
    if task.path and task.path != task.source:
        text = text.replace(task.path, task.source)
    return text if task.source in text else f"{task.source}: {type(e).__name__}: {text}"


# ---------------------------------------------------------------- the work
def process_chunk(rec, chunk: Chunk, fps: float) -> list[tuple[str, list[dict]]]:
    """(task key, rows) for each task of the chunk, in order. Never raises for a bad input: it becomes a row."""
    images = [t for t in chunk.tasks if t.kind == "image"]
    done = dict(_process_images(rec, images)) if images else {}
    for t in chunk.tasks:
        if t.kind == "video":
            done[t.key] = _process_video(rec, t, fps)
    return [(t.key, done[t.key]) for t in chunk.tasks]


def analyze_many(rec, images) -> list[list]:
    """Faces per image: the Recognizer's batched analyze_many where it has one, else analyze one by one."""
    many = getattr(rec, "analyze_many", None)
    return many(images) if many is not None else [rec.analyze(img) for img in images]


def _analyze_each(rec, task_frames) -> list:
    """analyze_many over [(task, frame index, image)], falling back to one at a time when the batch raises, so the
    image at fault gets the error row and the others their faces. -> faces list or the exception, per entry."""
    images = [img for _, _, img in task_frames]
    try:
        return analyze_many(rec, images)
    except Exception:  # noqa: BLE001 -- isolated below: each image's own exception becomes its error row
        out = []
        for img in images:
            try:
                out.append(analyze_many(rec, [img])[0])
            except Exception as e:  # noqa: BLE001 -- reported as the row's message
                out.append(e)
        return out


def _process_images(rec, tasks: list[Task]):
    from ..images import read_photo

    decoded, results, scales = [], {}, {}
    for t in tasks:
        try:
            image, scales[t.key] = read_photo(t.file)  # a photo over 40 MP comes reduced (by a power of 2)
            decoded.append((t, None, image))
        except (ValueError, OSError, cv2.error) as e:   # UnreadableImageError / ImageTooLargeError are ValueErrors
            results[t.key] = [error_row(rec, t, describe_error(t, e))]
    for (t, _, _), faces in zip(decoded, _analyze_each(rec, decoded)):
        results[t.key] = ([error_row(rec, t, describe_error(t, faces))] if isinstance(faces, BaseException)
                          else face_rows(rec, t, None, [f.scaled(scales[t.key]) for f in faces]))  # file's pixels
    return [(t.key, results[t.key]) for t in tasks]


def _process_video(rec, task: Task, fps: float) -> list[dict]:
    from ..video import VideoError, open_video

    try:
        cap, info = open_video(task.file)
    except (OSError, VideoError) as e:
        return [error_row(rec, task, describe_error(task, e))]
    if not task.video_fps:  # unknown while planning: use what the file says now
        task = dataclasses.replace(task, video_fps=info.fps)
    rows: list[dict] = []
    pending: list[tuple[Task, int, object]] = []

    def flush():
        for (t, i, _), faces in zip(pending, _analyze_each(rec, pending)):
            rows.extend([error_row(rec, t, describe_error(t, faces), i)] if isinstance(faces, BaseException)
                        else face_rows(rec, t, i, faces))
        pending.clear()

    try:
        if task.start:
            cap.set(cv2.CAP_PROP_POS_FRAMES, task.start)
        i, failed, read_any = task.start, 0, False
        while task.stop is None or i < task.stop:
            want = is_sampled(i, task.video_fps, fps)
            ok = cap.grab()
            frame = cap.retrieve()[1] if ok and want else None
            if not ok or (want and frame is None):
                announced = info.frame_count
                if not announced or i >= announced - max(2, announced // 100):
                    break  # the end (containers estimate their last frames' count)
                failed += 1
                if failed >= MAX_FAILED_READS or not ok:
                    flush()
                    where = (f"frames from {i} on could not be read: the video ends before" if i == task.start else
                             f"video ends at frame {i} of")
                    rows.append(error_row(rec, task, f"{task.source}: {where} the {announced} frames it announces "
                                                     f"(truncated or damaged)", i))
                    break
                if want:
                    flush()
                    rows.append(error_row(rec, task, f"{task.source}: frame {i} could not be decoded", i))
            else:
                failed, read_any = 0, True
                if want:
                    pending.append((task, i, frame))
                    if len(pending) >= FRAME_BATCH:
                        flush()
            i += 1
        flush()
        if not read_any and not rows:
            rows.append(error_row(rec, task, f"{task.source}: no frame could be decoded"
                                             + (f" from frame {task.start}" if task.start else ""), task.start or None))
    finally:
        cap.release()
    return rows
