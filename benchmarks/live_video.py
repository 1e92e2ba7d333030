"""Live and video throughput on this machine: prints figures, asserts nothing.

    python benchmarks/live_video.py                 # full run (~2 minutes on a 2-core CPU)
    python benchmarks/live_video.py --tiny          # a smoke run: checks the script works, figures meaningless
    python benchmarks/live_video.py --part video    # part 3 alone

Sources are 640x480 videos of real FER-2013 PrivateTest faces (padded so the Haar cascade finds them) moving
across a canvas, written to a temporary folder with OpenCV (mp4v). Figures:
  1. the detector alone on a 640x480 frame and on the 320-pixel copy the live loop uses;
  2. `ferkit live` end to end (decode -> track/detect -> classify -> draw; no JSON, no window unless --window)
     with 1 and 4 faces, for the detection strategy before (detect every frame at full size) and after
     (detect every 5th frame on a 320-pixel copy, follow faces in between: the live defaults), and with the
     BlazeFace detector (`--detector blazeface`) for comparison;
  3. `ferkit video` on a 30 fps one-face video: seconds of video per second of analysis (x real time),
     before (detect every frame) and after (the default, detect every 3rd frame), all outputs written; then at the
     default without face features and with every one (`--features all`, in two stages, the default, and in one,
     the code path before), interleaved, side by side, with where the time goes: decoding, tracking + classifying,
     the face features, and writing the outputs (timeline, annotated copy, chart, summary; what the full run costs
     beyond the tracker's loop).
Needs FER-2013 (../shared/data/fer2013 or $FERKIT_DATA).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

import ferkit
from ferkit.data import load_dataset
from _data import fer2013  # --data, $FERKIT_DATA or ../shared/data/fer2013 (benchmarks/_data.py)
from ferkit.scenes import pad_face
from ferkit.live import draw_live, live_frames, open_source, open_window
from ferkit.track import FaceTracker
from ferkit.video import analyze_video
from _data import cpu_name

W, H = 640, 480
HAPPY, SURPRISE, NEUTRAL, SAD = 3, 5, 6, 4


def pick_faces(detector, emotions) -> list[np.ndarray]:
    ds = load_dataset(fer2013()).split("PrivateTest")
    out = []
    for e in emotions:
        for i in np.flatnonzero(ds.labels == e):
            if len(detector.detect(pad_face(ds.pixels[i], 144))[0]) == 1:
                out.append(ds.pixels[i])
                break
    return out


def write_video(path: Path, faces: list[np.ndarray], n_frames: int, fps: float) -> Path:
    """1 face: a 130 px face crossing the middle; 4 faces: a 2x2 grid of 100 px faces drifting sideways."""
    face_size = 130 if len(faces) == 1 else 100
    patches = [pad_face(f, face_size) for f in faces]
    ph = patches[0].shape[0]
    background = np.clip(np.linspace(60, 120, W)[None, :] + np.linspace(0, 40, H)[:, None], 0, 255).astype(np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (W, H))
    for i in range(n_frames):
        t = 0.5 - 0.5 * np.cos(2 * np.pi * i / max(1, n_frames))  # back and forth
        grey = background.copy()
        for k, patch in enumerate(patches):
            if len(patches) == 1:
                x, y = int((W - ph) * t), (H - ph) // 2
            else:
                col, row = k % 2, k // 2
                x = int(col * (W // 2) + (W // 2 - ph) * t)
                y = row * (H // 2) + (H // 2 - ph) // 2
            grey[y:y + ph, x:x + ph] = patch
        writer.write(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def time_detector(rec, frame, repeats: int) -> tuple[float, float]:
    full = FaceTracker(rec, detect_side=None)
    small = FaceTracker(rec, detect_side=320)
    out = []
    for t in (full, small):
        t.detect(frame)
        start = time.perf_counter()
        for _ in range(repeats):
            t.detect(frame)
        out.append((time.perf_counter() - start) / repeats * 1000)
    return out[0], out[1]


def live_fps(rec, path: Path, *, detect_every: int, detect_side, window=None) -> tuple[float, float]:
    """End-to-end frames per second over the whole file (as fast as it goes) and mean faces per frame."""
    source = open_source(path=path)
    tracker = FaceTracker(rec, detect_every=detect_every, detect_side=detect_side, smoothing=0.5)
    n, faces = 0, 0
    start = time.perf_counter()
    for lf in live_frames(source, tracker, pace=False):
        image = draw_live(lf.image, lf.faces, lf.fps, rec.labels)
        if window is not None:
            window.show(image)
        n += 1
        faces += len(lf.faces)
    elapsed = time.perf_counter() - start
    source.cap.release()
    return n / elapsed, faces / max(1, n)


def clocks() -> np.ndarray:
    """(wall-clock, this process's CPU time) in seconds: on a shared machine the CPU time is the steadier cost."""
    return np.array([time.perf_counter(), time.process_time()])


def decode_ms(path: Path) -> np.ndarray:
    """(wall, CPU) ms per frame to decode the clip alone."""
    cap, n = cv2.VideoCapture(str(path)), 0
    start = clocks()
    while cap.read()[0]:
        n += 1
    return (clocks() - start) / max(1, n) * 1000


def tracker_ms(rec, path: Path) -> np.ndarray:
    """(wall, CPU) ms per frame to decode and track (detect every 3rd frame, classify and read the features of
    every face)."""
    cap, n = cv2.VideoCapture(str(path)), 0
    tracker = FaceTracker(rec, detect_every=3, detect_side=None)
    start = clocks()
    while (got := cap.read())[0]:
        tracker.process(got[1])
        n += 1
    return (clocks() - start) / max(1, n) * 1000


def video_with_features(clip: Path, seconds: float, tmp: Path, threads, repeats: int) -> None:
    """Part 3, second half: `ferkit video` at its defaults without and with every face feature, same run; with
    features both in two stages (the default: the features and the outputs on a second thread beside the tracker)
    and in one (`pipeline=False`, the code path before the two stages)."""
    plain = ferkit.load_recognizer(threads=threads)
    featured = ferkit.load_recognizer(threads=threads, features="all")
    runs = {"no features": (plain, True), "--features all, 1 stage": (featured, False),
            "--features all": (featured, True)}
    for name, (rec, pipeline) in runs.items():  # warm up: sessions, matplotlib's first figure
        analyze_video(clip, rec, tmp / "warm", pipeline=pipeline)
    full = {k: [] for k in runs}
    loop = {k: [] for k in ("no features", "--features all, 1 stage")}
    decode = []
    for r in range(repeats):  # interleaved: load on a shared machine falls on all alike
        decode.append(decode_ms(clip))
        for name, (rec, pipeline) in runs.items():
            start = clocks()
            report = analyze_video(clip, rec, tmp / f"feat{r}", pipeline=pipeline)
            full[name].append((clocks() - start) / report.frames_analysed * 1000)
            if name in loop:
                loop[name].append(tracker_ms(rec, clip))
    for k, how in ((0, "wall-clock"), (1, "this process's CPU time (all its threads; x real time: with the CPU to "
                                         "itself, one core)")):
        d = float(np.median([x[k] for x in decode]))

        def pick(runs):
            return float(np.median([x[k] for x in runs]))

        print(f"\n   at the default (detect every 3rd frame), ONNX Runtime threads: {threads or 'its default'}; {how}, "
              f"median of {repeats} interleaved runs, ms per frame:")
        print(f"   {'':<24} {'x real time':>11} {'total':>7} {'decode':>7} {'track+classify':>15} {'features':>9} "
              f"{'outputs':>8}")
        base, plain_loop = pick(full["no features"]), pick(loop["no features"])
        for name in runs:
            total = pick(full[name])
            line = f"   {name:<24} {1000 / 30 / total:>10.2f}x {total:>7.1f}"
            if name in loop:  # where the time goes, stage by stage (the two-stage run overlaps them)
                looped = pick(loop[name])
                features = looped - plain_loop if name != "no features" else 0.0
                line += f" {d:>7.1f} {plain_loop - d:>15.1f} {features:>9.1f} {total - looped:>8.1f}"
            else:
                line += "   (features and outputs on a second thread, beside decoding and tracking)"
            print(line)
        for name in ("--features all, 1 stage", "--features all"):
            print(f"   {name}: {pick(full[name]) / base:.2f}x the run without features "
                  f"(target: at most 2x; and at least 2x real time)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="a few frames only: checks the script runs")
    ap.add_argument("--live-frames", type=int, default=300, help="frames per live measurement (default 300)")
    ap.add_argument("--video-seconds", type=float, default=20, help="length of the 30 fps video (default 20 s)")
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: all cores)")
    ap.add_argument("--window", action="store_true", help="also show the live frames in a window (needs a display)")
    ap.add_argument("--part", choices=("all", "video"), default="all", help="video: part 3 alone")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs for part 3's features comparison")
    args = ap.parse_args()
    if args.tiny:
        args.live_frames, args.video_seconds = 20, 1

    rec = ferkit.load_recognizer(threads=args.threads)
    print(f"ferkit {ferkit.__version__}, model {rec.name}, detector {rec.detector.name}, {cpu_name()}, "
          f"{os.cpu_count()} CPU cores, OpenCV {cv2.__version__}, {cv2.getNumThreads()} OpenCV threads; load average "
          f"{os.getloadavg()[0]:.1f} at the start")
    faces = pick_faces(rec.detector, [HAPPY, SURPRISE, NEUTRAL, SAD])
    window = open_window("ferkit live") if args.window else None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.part == "video":
            clip = write_video(tmp / "clip.mp4", faces[:1], int(round(args.video_seconds * 30)), 30.0)
            print(f"\n3. ferkit video on a {args.video_seconds:g} s, 30 fps, 640x480 video with one face (all outputs written):")
            video_with_features(clip, args.video_seconds, tmp, args.threads, 1 if args.tiny else args.repeats)
            print(f"   load average at the end: {os.getloadavg()[0]:.1f}")
            return
        one = write_video(tmp / "one.mp4", faces[:1], args.live_frames, 30.0)
        four = write_video(tmp / "four.mp4", faces[:4], args.live_frames, 30.0)

        frame = cv2.VideoCapture(str(one)).read()[1]
        full_ms, small_ms = time_detector(rec, frame, 5 if args.tiny else 50)
        start = time.perf_counter()
        for _ in range(5 if args.tiny else 100):
            rec.analyze_boxes(frame, [[255, 175, 130, 130]])
        classify_ms = (time.perf_counter() - start) / (5 if args.tiny else 100) * 1000
        print(f"\n1. per call on a 640x480 frame: Haar detection {full_ms:.1f} ms at 640x480, {small_ms:.1f} ms on the "
              f"320x240 copy; classifying one face {classify_ms:.1f} ms")

        print(f"\n2. ferkit live end to end ({args.live_frames} frames of a 640x480 video, as fast as possible"
              f"{', shown in a window' if window else ', drawn, not shown'}):")
        print(f"   {'strategy':<52} {'1 face':>12} {'4 faces':>12}")
        blaze = ferkit.load_recognizer(detector="blazeface", threads=args.threads)
        for name, r, every, side in [("before: detect every frame at 640x480", rec, 1, None),
                                     ("after:  detect every 5th frame on a 320 copy (default)", rec, 5, 320),
                                     ("--detector blazeface, every frame", blaze, 1, None),
                                     ("--detector blazeface, every 5th frame", blaze, 5, None)]:
            fps1, n1 = live_fps(r, one, detect_every=every, detect_side=side, window=window)
            fps4, n4 = live_fps(r, four, detect_every=every, detect_side=side, window=window)
            print(f"   {name:<52} {fps1:>8.1f} fps {fps4:>8.1f} fps   (faces found per frame: {n1:.2f}, {n4:.2f})")

        n = int(round(args.video_seconds * 30))
        clip = write_video(tmp / "clip.mp4", faces[:1], n, 30.0)
        import matplotlib.figure  # noqa: F401  (imported once here, not inside the first timed run)

        print(f"\n3. ferkit video on a {args.video_seconds:g} s, 30 fps, 640x480 video with one face (all outputs written):")
        for name, every in [("before: detect every frame", 1), ("after:  detect every 3rd frame (default)", 3)]:
            start = time.perf_counter()
            report = analyze_video(clip, rec, tmp / f"out{every}", detect_every=every)
            elapsed = time.perf_counter() - start
            print(f"   {name:<52} {elapsed:6.2f} s = {args.video_seconds / elapsed:5.2f}x real time "
                  f"({report.frames_analysed / elapsed:.0f} frames/s, {report.rows} timeline rows)")
        video_with_features(clip, args.video_seconds, tmp, args.threads, 1 if args.tiny else args.repeats)
    if window is not None:
        window.close()
    if args.tiny:
        print("\n(--tiny: a smoke run; the figures above mean nothing)")


if __name__ == "__main__":
    main()
