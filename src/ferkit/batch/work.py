"""The work itself, the same in every engine: a chunk of tasks -> rows, with one Recognizer.

The rows are ferkit.records' one schema (docs/batch.md): one row per face, plus one per image or analysed frame
with no face ("no_face") or that could not be analysed ("error", with the message); a face's values come from
Face.to_row. Video frames are read through ferkit.frames, with `ferkit video`'s rules for damaged frames.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import NamedTuple

import cv2

from ..records import Schema, column_type, columns  # noqa: F401  (the one schema; re-exported)
from .inputs import Chunk, Task

FRAME_BATCH = 16           # video frames analysed together
PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
             "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]}


class Described(NamedTuple):
    """What the rows need of a Recognizer, read from the model file (and the adapter's head) by the driver."""
    name: str                              # the model's name (`base+HEAD` with an adapter)
    labels: list[str]                      # the classes of `prob_*` (the adapter's with one)
    detector: str
    base_labels: list[str] | None = None   # with an adapter: the base model's labels (`base_prob_*`)
    adapter: str | None = None             # with an adapter: its name


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
    mesh_column: bool = False         # the mesh's column, only when `mesh` was named (records.mesh_named)

    def describe(self) -> Described:
        """What the rows need, from the model file, without a session: for the driver, before any worker starts.
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
            from ..adapt import load_adapter

            head = load_adapter(self.adapter, path, meta["labels"])
            return Described(f"{meta.get('name', path.stem)}+{head.name}", list(head.classes), str(detector),
                             list(meta["labels"]), head.name)
        return Described(meta.get("name", path.stem), list(meta["labels"]), str(detector))

    def effective_detect_side(self) -> int | None:
        from ..recognizer import load_recognizer

        return effective_detect_side(self.detector or inspect.signature(load_recognizer).parameters["detector"].default,
                                     self.detect_side)

    def schema(self, described) -> Schema:
        """The columns of this spec's rows, for a Recognizer or its Described."""
        adapted = described.adapter is not None if isinstance(described, Described) else \
            getattr(described, "adapter", None) is not None
        return Schema(tuple(described.labels), tuple(self.features),
                      tuple(described.base_labels) if adapted else None,
                      self.mesh_column and "mesh" in self.features)

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


def effective_detect_side(detector: str | None, detect_side: int | None) -> int | None:
    """detect_side as the detector will use it: yunet's default working size when none is given, so that
    `--detect-side 640` (the default) is the same setting as none; as given for other detectors."""
    from ..detect import YuNetDetector

    if detector != "yunet" or detect_side is not None:
        return detect_side
    return inspect.signature(YuNetDetector.__init__).parameters["long_side"].default


# ---------------------------------------------------------------- rows
def _time(task: Task, frame: int | None) -> float | None:
    return round(frame / task.video_fps, 3) if frame is not None and task.video_fps else None


def face_rows(rec, schema: Schema, task: Task, frame: int | None, faces) -> list[dict]:
    if not faces:
        return [schema.row(rec, task.source, task.kind, "no_face", frame=frame, time=_time(task, frame))]
    return [schema.face_row(rec, f, i, task.source, task.kind, frame=frame, time=_time(task, frame))
            for i, f in enumerate(faces)]


def stand_in(described: Described, features=()) -> SimpleNamespace:
    """What the rows read of a Recognizer (from RecognizerSpec.describe() and its features), for error rows written
    without one: a worker that died."""
    name, labels, detector, base_labels, adapter = Described(*described)
    return SimpleNamespace(name=name, labels=list(labels), detector=SimpleNamespace(name=detector),
                           features=tuple(features), base_labels=base_labels, adapter=adapter)


def error_row(rec, schema: Schema, task: Task, message: str, frame: int | None = None) -> dict:
    return schema.row(rec, task.source, task.kind, "error", frame=frame, time=_time(task, frame), message=message)


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
def process_chunk(rec, chunk: Chunk, fps: float, schema: Schema | None = None) -> list[tuple[str, list[dict]]]:
    """(task key, rows) for each task of the chunk, in order, in `schema`'s columns (None: Schema.of(rec)). Never
    raises for a bad input: it becomes a row."""
    schema = schema or Schema.of(rec)
    images = [t for t in chunk.tasks if t.kind == "image"]
    done = dict(_process_images(rec, schema, images)) if images else {}
    for t in chunk.tasks:
        if t.kind == "video":
            done[t.key] = _process_video(rec, t, fps, schema)
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


def _process_images(rec, schema: Schema, tasks: list[Task]):
    from ..images import read_photo

    decoded, results, scales = [], {}, {}
    for t in tasks:
        try:
            image, scales[t.key] = read_photo(t.file)  # a photo over 40 MP comes reduced (by a power of 2)
            decoded.append((t, None, image))
        except (ValueError, OSError, cv2.error) as e:   # UnreadableImageError / ImageTooLargeError are ValueErrors
            results[t.key] = [error_row(rec, schema, t, describe_error(t, e))]
    for (t, _, _), faces in zip(decoded, _analyze_each(rec, decoded)):
        results[t.key] = ([error_row(rec, schema, t, describe_error(t, faces))] if isinstance(faces, BaseException)
                          else face_rows(rec, schema, t, None, [f.scaled(scales[t.key]) for f in faces]))  # file's pixels
    return [(t.key, results[t.key]) for t in tasks]


def _process_video(rec, task: Task, fps: float, schema: Schema) -> list[dict]:
    from ..frames import FrameReader, VideoError, open_video, per_second, seek, skip_message, truncation_message

    try:
        cap, info = open_video(task.file)
    except (OSError, VideoError) as e:
        return [error_row(rec, schema, task, describe_error(task, e))]
    if not task.video_fps:  # unknown while planning: use what the file says now
        task = dataclasses.replace(task, video_fps=info.fps)
    rows: list[dict] = []
    pending: list[tuple[Task, int, object]] = []

    def flush():
        for (t, i, _), faces in zip(pending, _analyze_each(rec, pending)):
            rows.extend([error_row(rec, schema, t, describe_error(t, faces), i)] if isinstance(faces, BaseException)
                        else face_rows(rec, schema, t, i, faces))
        pending.clear()

    seek(cap, task.start)
    frames = FrameReader(cap, info, start=task.start, stop=task.stop, choose=per_second(task.video_fps, fps),
                         name=task.source)
    try:
        for frame in frames:
            if frame.image is None:
                flush()
                rows.append(error_row(rec, schema, task, f"{task.source}: {skip_message(frame.index)}", frame.index))
                continue
            pending.append((task, frame.index, frame.image))
            if len(pending) >= FRAME_BATCH:
                flush()
        flush()
        if frames.truncated_at is not None:
            rows.append(error_row(rec, schema, task, truncation_message(info, frames.truncated_at, task.source),
                                  frames.truncated_at))
    except VideoError as e:  # no frame of the segment could be decoded
        flush()
        rows.append(error_row(rec, schema, task, describe_error(task, e), task.start or None))
    finally:
        cap.release()
    return rows
