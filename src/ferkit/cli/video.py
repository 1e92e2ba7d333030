"""`ferkit video IN`: an emotion timeline of a video file (ferkit.video does the work)."""
from __future__ import annotations

import sys
from pathlib import Path

from ..frames import open_video, quiet_opencv
from ._args import add_adapter, add_detector, add_features, add_model, add_search_side
from .errors import EXIT_ERROR, EXIT_NO_FACE, EXIT_OK, EXIT_USAGE, CommandError, print_error


def add_parser(sub) -> None:
    p = sub.add_parser("video", help="emotion timeline of a video file",
                       description="Analyse a video: timeline (docs/batch.md's columns plus track), annotated copy, "
                                   "emotion chart and summary.")
    p.add_argument("input", help="a video file (mp4, avi, mkv, mov ... whatever OpenCV's FFmpeg reads)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: <input name>_ferkit beside the input)")
    p.add_argument("--every", type=int, default=1, metavar="N", help="analyse every N-th frame (default: 1, all)")
    p.add_argument("--start", type=float, default=None, metavar="S", help="analyse from S seconds in (default: the start)")
    p.add_argument("--end", type=float, default=None, metavar="S", help="analyse up to S seconds in (default: the end)")
    p.add_argument("--detect-every", type=int, default=None, metavar="N",
                   help="run the face detector on every N-th analysed frame, follow faces in between "
                        "(default: 3 with --every 1; 1 otherwise, as faces move further between analysed frames)")
    add_search_side(p, default=None)
    p.add_argument("--smoothing", type=float, default=0.0, help="per-face probability smoothing over time, 0 (off) to <1")
    p.add_argument("--timeline", default="timeline.csv", metavar="NAME",
                   help="the timeline's file name in the output folder: .csv (default), .jsonl or .parquet")
    add_model(p)
    add_detector(p, exclude=("none",))
    add_features(p)
    add_adapter(p)
    p.add_argument("--no-annotate", action="store_true", help="skip the annotated copy of the video (faster)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args) -> int:
    """`ferkit video`: errors stop it through ferkit.cli.main (CommandError, or the library's VideoError/OSError)."""
    from tqdm import tqdm

    from ..recognizer import load_recognizer
    from ..records import output_format
    from ..video import analyze_video, format_summary

    src = Path(args.input)
    out = Path(args.out) if args.out else src.with_name(f"{src.stem}_ferkit")
    if args.every < 1 or (args.detect_every is not None and args.detect_every < 1):
        raise CommandError("--every and --detect-every must be >= 1", EXIT_USAGE)
    try:
        output_format(args.timeline)
    except ValueError as e:
        raise CommandError(f"--timeline {e}", EXIT_USAGE) from None
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
                               search_side=args.search_side, smoothing=args.smoothing, start=args.start, end=args.end,
                               timeline=args.timeline, mesh=args.mesh_column, annotate=not args.no_annotate,
                               progress=bar.update, on_problem=on_problem)
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
