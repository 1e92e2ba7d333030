"""`ferkit live`: faces and emotions in real time from a camera or a video file (ferkit.live does the work)."""
from __future__ import annotations

import json

from ..frames import quiet_opencv
from ._args import add_adapter, add_detector, add_features, add_model, add_search_side
from .errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, CommandError, print_error


def add_parser(sub) -> None:
    p = sub.add_parser("live", help="real-time emotions from a camera or video file in a desktop window",
                       description="Faces and emotions in real time; q or Esc quits. --no-window prints JSON lines.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--camera", type=int, default=0, metavar="N", help="camera index (default: 0)")
    src.add_argument("--source", metavar="FILE", help="a video file instead of a camera")
    p.add_argument("--no-window", action="store_true", help="print one JSON line per frame instead of showing a window")
    p.add_argument("--gui", default="auto", choices=["auto", "opencv", "tk"],
                   help="window toolkit (default: OpenCV's where it has one, else Tk)")
    p.add_argument("--loop", action="store_true", help="restart a --source file when it ends")
    p.add_argument("--max-speed", action="store_true", help="process a --source file as fast as possible, not at its frame rate")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    p.add_argument("--smoothing", type=float, default=0.5, help="per-face probability smoothing over time, 0 (off) to <1 (default: 0.5)")
    p.add_argument("--detect-every", type=int, default=5, metavar="N", help="run the face detector every N frames, follow faces in between (default: 5)")
    add_search_side(p, default=320)
    add_model(p)
    add_detector(p, exclude=("none",))
    add_features(p, help="face features to read too, comma-separated: mesh, blendshapes, pose, or all (default: none); "
                         "the window shows each face's strongest action units (blendshapes) and its head pose (pose)")
    add_adapter(p)
    p.set_defaults(run=run)


def run(args) -> int:
    """`ferkit live`: errors stop it through ferkit.cli.main, the source and window closed first: a source that
    cannot be opened (SourceError, VideoError, FileNotFoundError) or stops working, or no window (exit 1); Ctrl+C
    (130); a reader of --no-window's lines that went away (141). How a normal run ended is a closing note."""
    from ..live import WINDOW_TITLE, GuiUnavailableError, draw_live, frame_record, live_frames, open_source, open_window
    from ..recognizer import load_recognizer
    from ..track import FaceTracker

    quiet_opencv()
    rec = load_recognizer(args.model, detector=args.detector, features=args.features, adapter=args.adapter)
    tracker = FaceTracker(rec, detect_every=args.detect_every, detect_side=args.search_side, smoothing=args.smoothing)
    source = open_source(args.camera, args.source)
    window = None
    if not args.no_window:
        try:
            window = open_window(WINDOW_TITLE, args.gui)
        except GuiUnavailableError as e:
            source.cap.release()
            raise CommandError(str(e), EXIT_ERROR) from e
    n, reason = 0, ""
    try:
        for lf in live_frames(source, tracker, loop=args.loop, pace=not args.max_speed, on_problem=print_error):
            n += 1
            if window is not None:
                if not window.show(draw_live(lf.image, lf.faces, lf.fps, rec.labels)):
                    reason = "quit"
                    break
            else:
                print(json.dumps(frame_record(lf)), flush=True)
            if args.max_frames and n >= args.max_frames:
                reason = f"stopped after {n} frames (--max-frames)"
                break
        else:
            reason = f"{source.name}: source ended after {n} frames"
    # SourceError, VideoError (a looped file that no longer decodes when rewound) and BrokenPipeError (`ferkit live
    # --no-window | head`: the reader left) reach main() as they are, after the finally below
    except KeyboardInterrupt:
        raise CommandError("interrupted", EXIT_INTERRUPTED) from None
    finally:
        source.cap.release()
        if window is not None:
            window.close()
    print_error(reason)
    return EXIT_OK
