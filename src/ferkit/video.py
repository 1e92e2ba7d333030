"""Emotion timelines from video files: `ferkit video IN`.

Reads every frame (or every `every`-th) with OpenCV, follows faces with `FaceTracker` (stable ids) and writes,
into one output folder:

    timeline.csv     one row per face per analysed frame: time, frame, face, x, y, w, h, emotion, one column per label
    timeline.json    the same rows, plus the video's facts and the frames that could not be decoded
    annotated.mp4    the video with a box, id and emotion per face (boxes of the last analysed frame on the others)
    emotions.png     probability of each emotion over time, one panel per face
    summary.json     per face: seconds on screen and the share of its time per dominant emotion
    summary.txt      the same as a table (what the CLI prints)

Timeline rows are written frame by frame: an interruption (Ctrl-C, an error) closes the files with every row
analysed so far, and the files are flushed every second, so even a killed process loses at most the last second.
A frame that fails to decode is skipped and listed; a file that stops decoding before its announced end is
reported as truncated, with the frames before the damage still analysed.
"""
from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .annotate import EMOTION_COLORS_BGR, draw_tracked
from .records import columns as _columns
from .recognizer import Recognizer
from .track import FaceTracker, TrackedFace

# Failed reads in a row after which the file is taken to end there (damaged or truncated), when the
# container announced more frames: isolated bad frames are skipped, a damaged tail stops the loop.
MAX_FAILED_READS = 25
MAX_PLOTTED_FACES = 8
FLUSH_EVERY_S = 1.0  # wall-clock seconds between flushes of the timeline files
FEATURE_KEYS = ("mesh", "blendshapes", "action_units", "head_pose")  # Face.to_dict's keys for the face features
LOOKING_AWAY_DEGREES = 25.0  # a face turned further than this in yaw or pitch counts as looking away (summary)


class VideoError(ValueError):
    """A video that cannot be opened or decoded: not a video, an unsupported codec, or a damaged file."""


@dataclass
class VideoInfo:
    path: str
    fps: float
    frame_count: int          # as announced by the container (0 when unknown)
    width: int
    height: int

    @property
    def duration(self) -> float:
        return self.frame_count / self.fps if self.fps else 0.0


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
        out = [self.skip_message(i) for i in self.skipped_frames]
        if self.truncated_at is not None:
            out.append(self.truncation_message())
        return out

    @staticmethod
    def skip_message(index: int) -> str:
        return f"frame {index}: could not be decoded, skipped"

    def truncation_message(self) -> str:
        return (f"{self.info.path}: video ends at frame {self.truncated_at} of the {self.info.frame_count} "
                f"it announces (truncated or damaged); frames before that were analysed")


def open_video(path: str | Path) -> tuple[cv2.VideoCapture, VideoInfo]:
    """An opened capture and the video's facts; FileNotFoundError / VideoError with the reason otherwise."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise VideoError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        with open(path, "rb") as fh:
            head = fh.read(8)
        raise VideoError(f"{path}: not a video OpenCV can read (starts with {head!r}); "
                         f"a damaged or truncated file, or an unsupported format")
    if cap.get(cv2.CAP_PROP_FRAME_COUNT) <= 1 and cv2.haveImageReader(str(path)):
        cap.release()
        raise VideoError(f"{path}: a still image, not a video (use `ferkit analyze` for photos)")
    fps = cap.get(cv2.CAP_PROP_FPS)
    info = VideoInfo(str(path), fps if fps and 0 < fps < 1000 else 30.0, max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))),
                     int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    return cap, info


def read_frames(cap: cv2.VideoCapture, info: VideoInfo, report: VideoReport, start: int = 0,
                on_problem: Callable[[str], None] | None = None):
    """Yield (index, frame) for each decodable frame; records skipped frames and an early end in `report`.
    `start`: the index of the capture's next frame (frames before it were read by the caller, who counts them
    in `report.frames_read`). `on_problem(message)` hears each entry of `report.problems` as soon as it is known:
    a skipped frame when the next good one is read, an early end when reading stops. Raises VideoError when the
    report ends with no frame read."""
    index, failed = start, []
    while True:
        ok, frame = cap.read()
        if ok and frame is not None:
            report.skipped_frames.extend(failed)   # bad frames followed by a good one: skipped, not the end
            for i in failed if on_problem else ():
                on_problem(report.skip_message(i))
            failed = []
            report.frames_read += 1
            yield index, frame
        else:
            if info.frame_count == 0 or index >= info.frame_count or len(failed) >= MAX_FAILED_READS:
                break
            failed.append(index)
        index += 1
    if report.frames_read == 0:
        raise VideoError(f"{info.path}: no frame could be decoded")
    # Containers sometimes estimate their frame count: failures in the last 1 % (at least 2 frames) are the end.
    if failed and failed[0] < info.frame_count - max(2, info.frame_count // 100):
        report.truncated_at = failed[0]
        if on_problem:
            on_problem(report.truncation_message())


def analyze_video(path: str | Path, recognizer: Recognizer, out_dir: str | Path, *, every: int = 1,
                  detect_every: int | None = None, detect_side: int | None = None, smoothing: float = 0.0,
                  annotate: bool = True, progress: Callable[[int], None] | None = None,
                  on_problem: Callable[[str], None] | None = None) -> VideoReport:
    """Analyse a video file and write the timeline, annotated copy, chart and summary into `out_dir`.

    `every`: analyse every n-th frame (the annotated copy keeps every frame). `detect_every`: run the face
    detector on every n-th analysed frame and follow faces in between (None: 3 when every frame is analysed,
    else 1, since faces move further between analysed frames); `detect_side`: longest side of the copy
    the detector sees (None: the detector's default). `progress(n)` is called after each frame read with n = 1;
    `on_problem(message)` hears each skipped frame and an early end as it is met (`read_frames`), and the report
    lists them all at the end.
    Raises FileNotFoundError / VideoError before writing anything when the file cannot be opened.
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if detect_every is None:
        detect_every = 3 if every == 1 else 1
    cap, info = open_video(path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = VideoReport(info)
    labels = list(recognizer.labels)
    tracker = FaceTracker(recognizer, detect_every=detect_every, detect_side=detect_side, smoothing=smoothing)
    files = {"timeline_csv": out / "timeline.csv", "timeline_json": out / "timeline.json"}
    if annotate:
        files["annotated"] = out / "annotated.mp4"
    report.files = {k: str(v) for k, v in files.items()}
    rows_by_face: dict[int, list[tuple[float, np.ndarray]]] = {}
    features_by_face: dict[int, list[dict]] = {}   # per face id, per row: its action units and head pose, when read
    extra_columns = [c for c in _columns((), recognizer.features) if c.startswith(('bs_', 'au_')) or c in ('yaw', 'pitch', 'roll')]
    writer = None
    with open(files["timeline_csv"], "w", newline="") as csv_fh, open(files["timeline_json"], "w") as json_fh:
        table = csv.writer(csv_fh)
        table.writerow(["time", "frame", "face", "x", "y", "w", "h", "emotion", *labels, *extra_columns])
        head = {"video": info.path, "fps": info.fps, "frame_count": info.frame_count, "width": info.width,
                "height": info.height, "every": every, "labels": labels, "model": recognizer.name}
        json_fh.write(json.dumps(head)[:-1] + ', "rows": [\n')
        first_row, faces, flushed = True, [], time.monotonic()
        try:
            for index, frame in read_frames(cap, info, report, on_problem=on_problem):
                if index % every == 0:
                    faces = tracker.process(frame)
                    report.frames_analysed += 1
                    t = index / info.fps
                    for f in faces:
                        p = [f.probabilities[k] for k in labels]
                        flat = f.to_row() if extra_columns else {}
                        table.writerow([f"{t:.3f}", index, f.id, *f.box, f.emotion, *(f"{v:.4f}" for v in p),
                                        *(f"{flat[c]:.4f}" for c in extra_columns)])
                        d = f.to_dict(decimals=4)
                        row = {"time": round(t, 3), "frame": index, "face": f.id,
                               **{k: d[k] for k in ("box", "emotion", "probabilities", *FEATURE_KEYS) if k in d}}
                        json_fh.write(("" if first_row else ",\n") + json.dumps(row))
                        first_row = False
                        rows_by_face.setdefault(f.id, []).append((t, np.array(p)))
                        if f.action_units is not None or f.head_pose is not None:
                            features_by_face.setdefault(f.id, []).append(
                                {"action_units": f.action_units, "head_pose": f.head_pose})
                        report.rows += 1
                    if time.monotonic() - flushed >= FLUSH_EVERY_S:
                        csv_fh.flush()
                        json_fh.flush()
                        flushed = time.monotonic()
                if annotate:
                    if writer is None:
                        writer = _open_writer(files["annotated"], info.fps, frame.shape)
                    writer.write(_draw(frame, faces))
                if progress:
                    progress(1)
        finally:
            cap.release()
            if writer is not None:
                writer.release()
            tail = {"frames_read": report.frames_read, "frames_analysed": report.frames_analysed,
                    "skipped_frames": report.skipped_frames, "truncated_at": report.truncated_at}
            json_fh.write("\n], " + json.dumps(tail)[1:] + "\n")

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
                                                 "problems": report.problems, "faces": report.summary}, indent=2))
    files["summary_txt"].write_text(format_summary(report.summary, labels) + "\n")
    if "chart" in files:
        plot_timeline(rows_by_face, labels, files["chart"], title=Path(info.path).name)
    report.files = {k: str(v) for k, v in files.items()}
    return report


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


# ---------------------------------------------------------------- CLI
def add_parser(sub) -> None:
    from .cli._args import add_adapter, add_detector, add_features, add_model

    p = sub.add_parser("video", help="emotion timeline of a video file",
                       description="Analyse a video: timeline CSV/JSON, annotated copy, emotion chart and summary.")
    p.add_argument("input", help="a video file (mp4, avi, mkv, mov ... whatever OpenCV's FFmpeg reads)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: <input name>_ferkit beside the input)")
    p.add_argument("--every", type=int, default=1, metavar="N", help="analyse every N-th frame (default: 1, all)")
    p.add_argument("--detect-every", type=int, default=None, metavar="N",
                   help="run the face detector on every N-th analysed frame, follow faces in between "
                        "(default: 3 with --every 1; 1 otherwise, as faces move further between analysed frames)")
    p.add_argument("--detect-side", type=int, default=None, metavar="PX",
                   help="longest side of the copy the detector searches (default: the detector's, 640)")
    p.add_argument("--smoothing", type=float, default=0.0, help="per-face probability smoothing over time, 0 (off) to <1")
    add_model(p)
    add_detector(p, exclude=("none",))
    add_features(p)
    add_adapter(p)
    p.add_argument("--no-annotate", action="store_true", help="skip the annotated copy of the video (faster)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run_video)


def quiet_opencv() -> None:
    """For the CLI edges: OpenCV's and FFmpeg's own log lines (a missing camera, a damaged frame) repeat what
    ferkit reports in its own words, so keep OpenCV's errors only and silence FFmpeg's."""
    import os

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # read when FFmpeg is first used
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def run_video(args) -> int:
    """`ferkit video`: errors stop it through ferkit.cli.main (CommandError, or the library's VideoError/OSError)."""
    import sys

    from tqdm import tqdm

    from . import load_recognizer
    from .cli.errors import EXIT_ERROR, EXIT_NO_FACE, EXIT_OK, EXIT_USAGE, CommandError, print_error

    src = Path(args.input)
    out = Path(args.out) if args.out else src.with_name(f"{src.stem}_ferkit")
    if args.every < 1 or (args.detect_every is not None and args.detect_every < 1):
        raise CommandError("--every and --detect-every must be >= 1", EXIT_USAGE)
    quiet_opencv()
    rec = load_recognizer(args.model, detector=args.detector, features=args.features, adapter=args.adapter)
    cap, info = open_video(src)  # fail before the progress bar appears
    cap.release()
    bar = tqdm(total=info.frame_count or None, unit="frame", desc=src.name, disable=args.no_progress, file=sys.stderr)

    def on_problem(problem: str) -> None:  # a frame that failed: said above the bar, and the run goes on
        with tqdm.external_write_mode(file=sys.stderr):
            print_error(problem)

    try:
        report = analyze_video(src, rec, out, every=args.every, detect_every=args.detect_every,
                               detect_side=args.detect_side, smoothing=args.smoothing,
                               annotate=not args.no_annotate, progress=bar.update, on_problem=on_problem)
    finally:
        bar.close()
    # `ferkit video x.mp4 | head`: the files are written; a closed pipe ends it through main() (exit 141)
    print(f"{info.path}: {report.frames_analysed} of {report.frames_read} frames analysed "
          f"({info.width}x{info.height}, {info.fps:g} fps), {len(report.summary)} face(s)")
    print(format_summary(report.summary, list(rec.labels)))
    print(f"wrote {', '.join(Path(v).name for v in report.files.values())} to {out}", flush=True)
    if "chart" not in report.files:
        print_error('no emotions.png: the chart needs matplotlib: pip install "ferkit[plot]"')
    return EXIT_ERROR if report.problems else (EXIT_NO_FACE if not report.summary else EXIT_OK)
