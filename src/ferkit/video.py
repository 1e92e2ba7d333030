"""Emotion timelines from video files: `ferkit video IN` (the command: ferkit.cli.video).

Reads the frames through ferkit.frames (every `every`-th analysed, within a time range), follows faces with
`FaceTracker` (stable ids) and writes, into one output folder:

    timeline.csv     ferkit.records' one row schema plus `track`: a row per face per analysed frame, one per
                     analysed frame with no face (no_face) or that could not be decoded (error); the same columns
                     and values as `ferkit batch` on the same clip (track aside). .jsonl or .parquet by its name.
    timeline.csv.meta.json   the run's metadata (model, labels, detector, adapter, features, ferkit version)
    annotated.mp4    the video with a box, id and emotion per face (boxes of the last analysed frame on the others)
    emotions.png     probability of each emotion over time, one panel per face
    summary.json     the video's facts, the frames read and skipped, and per face: seconds on screen, the share
                     of its time per dominant emotion
    summary.txt      the same as a table (what the CLI prints)

With face features the work runs in two stages: the caller's thread decodes and tracks (detect or follow, classify),
a second thread reads the face features of each frame's faces and writes the outputs in frame order, a few frames
behind (analyze_video's `pipeline`; docs/face-features.md measures it). Outputs are the same bytes either way.

Timeline rows are written frame by frame: an interruption (Ctrl-C, an error) closes the file with every row
analysed so far, and it is flushed every second, so even a killed process loses at most the last second.
Damaged frames and truncated files follow ferkit.frames' rules.
"""
from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .annotate import EMOTION_COLORS_BGR, draw_tracked
from .frames import (FrameReader, VideoError, VideoInfo, every_nth, frame_range, open_video, seek, skip_message,
                     truncation_message)
from .records import Schema, output_format, recognizer_meta, run_meta, write_meta, writer_for
from .recognizer import Recognizer
from .track import FaceTracker, TrackedFace

__all__ = ["analyze_video", "VideoReport", "VideoError", "VideoInfo", "open_video", "summarize", "format_summary",
           "plot_timeline"]

MAX_PLOTTED_FACES = 8
FLUSH_EVERY_S = 1.0  # wall-clock seconds between flushes of the timeline
LOOKING_AWAY_DEGREES = 25.0  # a face turned further than this in yaw or pitch counts as looking away (summary)


@dataclass
class VideoReport:
    """What analyze_video did: the video's facts, counts, problems met, the per-face summary and the files written."""
    info: VideoInfo
    frames_read: int = 0
    frames_analysed: int = 0
    rows: int = 0
    skipped_frames: list[int] = field(default_factory=list)   # frames that failed to decode (then skipped)
    truncated_at: int | None = None                           # first frame that was never read, if the file ends early
    summary: dict = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        out = [skip_message(i) for i in self.skipped_frames]
        if self.truncated_at is not None:
            out.append(truncation_message(self.info, self.truncated_at))
        return out


def analyze_video(path: str | Path, recognizer: Recognizer, out_dir: str | Path, *, every: int = 1,
                  detect_every: int | None = None, search_side: int | None = None, smoothing: float = 0.0,
                  start: float | None = None, end: float | None = None, timeline: str = "timeline.csv",
                  mesh: bool = False, annotate: bool = True, progress: Callable[[int], None] | None = None,
                  on_problem: Callable[[str], None] | None = None, pipeline: bool = True) -> VideoReport:
    """Analyse a video file and write the timeline, annotated copy, chart and summary into `out_dir`.

    `every`: analyse every n-th frame (the annotated copy keeps every frame). `detect_every`: run the face
    detector on every n-th analysed frame and follow faces in between (None: 3 when every frame is analysed,
    else 1, since faces move further between analysed frames); `search_side`: longest side of the downscaled
    copy the tracker searches for faces (None: the detector's own scaling). `start`, `end`: the time range in
    seconds (None: from the start, to the end). `timeline`: the timeline's file name, .csv, .jsonl or .parquet.
    `mesh`: the mesh's column in the timeline (a mesh computed: load_recognizer(features=("mesh", ...))).
    `pipeline`: read the face features (when the recognizer has them) in a second thread while the next frames are
    tracked, and write the outputs there in frame order (the same rows and values as without; False: all in one).
    `progress(n)` is called after each frame read with n = 1; `on_problem(message)` hears each skipped frame and
    an early end as it is met, and the report lists them all at the end.
    Raises FileNotFoundError / VideoError / ValueError before writing anything when the file cannot be opened or
    the range is empty.
    """
    choose = every_nth(every)
    output_format(timeline)  # an unknown format (or Parquet without pyarrow) refused before anything is opened
    if detect_every is None:
        detect_every = 3 if every == 1 else 1
    cap, info = open_video(path)
    try:
        first, stop = frame_range(info, start, end)
    except ValueError:
        cap.release()
        raise
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = VideoReport(info)
    labels = list(recognizer.labels)
    tracker = FaceTracker(recognizer, detect_every=detect_every, detect_side=search_side, smoothing=smoothing)
    schema = Schema.of(recognizer, mesh=mesh, track=True)
    files = {"timeline": out / timeline}
    writer = writer_for(files["timeline"], schema.columns)
    meta = run_meta(recognizer_meta(recognizer), command="ferkit video", cols=schema.columns, video=asdict(info),
                    every=every, detect_every=detect_every, search_side=search_side, smoothing=smoothing,
                    start=start, end=end)
    files["timeline_meta"] = write_meta(files["timeline"], meta)
    if annotate:
        files["annotated"] = out / "annotated.mp4"
    report.files = {k: str(v) for k, v in files.items()}
    # The face features in a second stage when there are some and nothing in the first needs them (an adapter that
    # reads them is applied with the classifier's output, and the tracker smooths what it gives).
    pipelined = pipeline and recognizer.face_mesh is not None and not getattr(recognizer.adapter, "stage_features", ())
    outputs = _Outputs(recognizer, schema, writer, str(path), info.fps, files.get("annotated"), report,
                       add_features=pipelined)
    seek(cap, first)
    frames = FrameReader(cap, info, start=first, stop=stop, choose=choose, decode_all=annotate, on_problem=on_problem)
    stage = _SecondStage(outputs.frame, PIPELINE_DEPTH) if pipelined else None
    try:
        with writer:
            try:
                for frame in frames:
                    faces = None
                    if frame.image is not None and frame.chosen:
                        faces = tracker.process(frame.image, features=not pipelined)
                        report.frames_analysed += 1
                    (stage.put if stage else outputs.frame)(frame, faces)
                    if progress and frame.image is not None:
                        progress(1)
            except BaseException:
                if stage:  # the frames already tracked are written; stage 1's error is the one raised
                    stage.close(check=False)
                raise
            if stage:
                stage.close()
            if frames.truncated_at is not None:
                outputs.row("error", frames.truncated_at,
                            message=truncation_message(info, frames.truncated_at, str(path)))
    finally:
        cap.release()
        outputs.release()
        report.frames_read, report.skipped_frames = frames.frames_read, frames.skipped
        report.truncated_at = frames.truncated_at

    rows_by_face, features_by_face = outputs.rows_by_face, outputs.features_by_face
    report.summary = summarize(rows_by_face, labels, every / info.fps, features_by_face)
    files["summary_json"] = out / "summary.json"
    files["summary_txt"] = out / "summary.txt"
    try:  # the chart needs matplotlib, an extra (ferkit[plot]); the timeline and summary do not
        import matplotlib  # noqa: F401
        files["chart"] = out / "emotions.png"
    except ImportError:
        pass
    files["summary_json"].write_text(json.dumps({"video": asdict(info), "frames_read": report.frames_read,
                                                 "frames_analysed": report.frames_analysed, "every": every,
                                                 "skipped_frames": report.skipped_frames,
                                                 "truncated_at": report.truncated_at,
                                                 "problems": report.problems, "faces": report.summary}, indent=2))
    files["summary_txt"].write_text(format_summary(report.summary, labels) + "\n")
    if "chart" in files:
        plot_timeline(rows_by_face, labels, files["chart"], title=Path(info.path).name)
    report.files = {k: str(v) for k, v in files.items()}
    return report


PIPELINE_DEPTH = 4  # frames tracked ahead of the face features at most: memory stays flat
POLL_S = 0.1  # how often a stage waiting on the other checks that it is still running


class _Outputs:
    """What comes of each frame once tracked, in frame order: the face features when they were left to this stage,
    the timeline's rows (flushed every FLUSH_EVERY_S), the per-face series for the summary and the chart, and the
    annotated copy's frame."""

    def __init__(self, recognizer: Recognizer, schema: Schema, writer, source: str, fps: float,
                 annotated: Path | None, report: VideoReport, *, add_features: bool):
        self.recognizer, self.schema, self.writer, self.source, self.fps = recognizer, schema, writer, source, fps
        self.annotated, self.report, self.add_features = annotated, report, add_features
        self.rows_by_face: dict[int, list[tuple[float, np.ndarray]]] = {}
        self.features_by_face: dict[int, list[dict]] = {}  # per face id, per row: its action units and head pose
        self.faces: list[TrackedFace] = []  # the last analysed frame's, drawn on the frames between analysed ones
        self.video_out = None
        self.flushed = time.monotonic()

    def row(self, status: str, index: int, **fields) -> None:
        self.writer.write(self.schema.row(self.recognizer, self.source, "video", status, frame=index,
                                          time=round(index / self.fps, 3), **fields))
        self.report.rows += 1

    def frame(self, frame, faces: list[TrackedFace] | None) -> None:
        """One frame read: `faces` its tracked faces when it was analysed, None when not."""
        index, t = frame.index, round(frame.index / self.fps, 3)
        if frame.image is None:  # chosen, damaged: skipped, as a row says
            self.row("error", index, message=f"{self.source}: {skip_message(index)}")
            return
        if faces is not None:
            if self.add_features:
                faces = self.recognizer.add_features(frame.image, faces)
            self.faces = faces
            rows = [self.schema.face_row(self.recognizer, f, i, self.source, "video", frame=index, time=t, track=f.id)
                    for i, f in enumerate(faces)] or \
                [self.schema.row(self.recognizer, self.source, "video", "no_face", frame=index, time=t)]
            self.writer.write_many(rows)
            self.report.rows += len(rows)
            labels = self.recognizer.labels
            for f in faces:
                self.rows_by_face.setdefault(f.id, []).append((t, np.array([f.probabilities[k] for k in labels])))
                if f.action_units is not None or f.head_pose is not None:
                    self.features_by_face.setdefault(f.id, []).append(
                        {"action_units": f.action_units, "head_pose": f.head_pose})
            if time.monotonic() - self.flushed >= FLUSH_EVERY_S:
                self.writer.flush()
                self.flushed = time.monotonic()
        if self.annotated is not None:
            if self.video_out is None:
                self.video_out = _open_writer(self.annotated, self.fps, frame.image.shape)
            self.video_out.write(_draw(frame.image, self.faces))

    def release(self) -> None:
        if self.video_out is not None:
            self.video_out.release()


_END = object()  # after the last item put: the second stage's thread returns


class _SecondStage:
    """`work(*item)` for each item put, in order, on its own thread (ONNX Runtime and OpenCV release the GIL, so it
    runs beside the caller's stage), with at most `depth` items waiting. An error in `work` ends the thread and is
    raised to the caller by the next put or by close; the caller never waits on a thread that has stopped."""

    def __init__(self, work: Callable, depth: int):
        self._work, self._queue = work, queue.Queue(depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ferkit-video-stage-2", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not _END:
            try:
                self._work(*item)
            except BaseException as e:  # noqa: BLE001 (handed to the caller's thread, raised there)
                self._error = e
                return

    def put(self, *item) -> None:
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._queue.put(item, timeout=POLL_S)
                return
            except queue.Full:
                pass

    def close(self, *, check: bool = True) -> None:
        """Wait for the items put to be worked through (unless the thread stopped on an error); with `check`, raise
        that error."""
        while self._thread.is_alive():
            try:
                self._queue.put(_END, timeout=POLL_S)
                break
            except queue.Full:
                pass
        self._thread.join()
        if check and self._error is not None:
            raise self._error


def _open_writer(path: Path, fps: float, shape) -> cv2.VideoWriter:
    h, w = shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise VideoError(f"{path}: OpenCV cannot write an mp4v video here")
    return writer


def _draw(frame: np.ndarray, faces: list[TrackedFace]) -> np.ndarray:
    return draw_tracked(frame, faces, inplace=True) if faces else frame  # the frame is not used after writing


def summarize(rows_by_face: dict[int, list[tuple[float, np.ndarray]]], labels: list[str], seconds_per_row: float,
              features_by_face: dict[int, list[dict]] | None = None) -> dict:
    """Per face id (one person: the tracker starts a new id for a new person): rows, seconds on screen, first/last
    time, the share of its rows per dominant emotion (sums to 1), the mean probabilities and the dominant emotion
    overall; with face features, its mean action-unit estimates and the share of its rows looking away (head turned
    more than LOOKING_AWAY_DEGREES in yaw or pitch)."""
    out = {}
    for face_id, rows in sorted(rows_by_face.items()):
        probs = np.stack([p for _, p in rows])                       # (T, K)
        top = np.bincount(probs.argmax(1), minlength=len(labels)) / len(rows)
        out[str(face_id)] = {
            "rows": len(rows), "seconds": round(len(rows) * seconds_per_row, 3),
            "first": round(rows[0][0], 3), "last": round(rows[-1][0], 3),
            "share": {k: round(float(v), 4) for k, v in zip(labels, top)},
            "mean_probabilities": {k: round(float(v), 4) for k, v in zip(labels, probs.mean(0))},
            "dominant": labels[int(top.argmax())],
        }
        extra = (features_by_face or {}).get(face_id) or []
        units = [e["action_units"] for e in extra if e["action_units"]]
        if units:
            out[str(face_id)]["mean_action_units"] = {k: round(float(np.mean([u[k] for u in units])), 4) for k in units[0]}
        poses = [e["head_pose"] for e in extra if e["head_pose"]]
        if poses:
            away = [max(abs(q["yaw"]), abs(q["pitch"])) > LOOKING_AWAY_DEGREES for q in poses]
            out[str(face_id)]["looking_away"] = round(float(np.mean(away)), 4)
    return out


def format_summary(summary: dict, labels: list[str]) -> str:
    """The summary as a table: one line per face, share of its time per emotion."""
    if not summary:
        return "no face found in the analysed frames"
    short = [k[:8] for k in labels]
    lines = [f"{'face':>5} {'seconds':>8} {'from-to (s)':>14} {'dominant':<9}" + "".join(f"{s:>9}" for s in short)]
    for face_id, s in summary.items():
        span = f"{s['first']:.1f}-{s['last']:.1f}"
        lines.append(f"{'#' + face_id:>5} {s['seconds']:>8.1f} {span:>14} {s['dominant']:<9}"
                     + "".join(f"{s['share'][k]:>9.1%}" for k in labels))
    return "\n".join(lines)


def plot_timeline(rows_by_face: dict, labels: list[str], path: str | Path, title: str = "") -> None:
    """emotions.png: each emotion's probability over time, one panel per face (the longest-visible faces first)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    faces = sorted(rows_by_face.items(), key=lambda kv: -len(kv[1]))[:MAX_PLOTTED_FACES]
    faces.sort()
    n = max(1, len(faces))
    fig = Figure(figsize=(10, 2.2 * n + 0.8), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(n, 1, squeeze=False, sharex=True)[:, 0]
    if not faces:
        axes[0].text(0.5, 0.5, "no face found", ha="center", va="center", transform=axes[0].transAxes)
        axes[0].set_axis_off()
    for ax, (face_id, rows) in zip(axes, faces):
        t = np.array([r[0] for r in rows])
        probs = np.stack([r[1] for r in rows])
        for k, label in enumerate(labels):
            b, g, r = EMOTION_COLORS_BGR.get(label, (128, 128, 128))
            ax.plot(t, probs[:, k], ".-" if len(t) < 30 else "-", ms=3, lw=1.3, label=label, color=(r / 255, g / 255, b / 255))
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"face #{face_id}\nprobability")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time (s)")
    if faces:
        axes[0].legend(ncol=len(labels), loc="lower left", bbox_to_anchor=(0, 1.02), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, y=0.995, fontsize=10)
    fig.tight_layout()
    fig.savefig(str(path))
