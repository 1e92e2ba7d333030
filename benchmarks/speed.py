"""End-to-end speed of the front end, side by side in one run: `Recognizer.analyze` per frame with each detector
(1-face and 4-face 640x480 frames, a 1280x720 frame), the `fer` package's `detect_emotions` on the same frames,
`ferkit video` (x real time) and the live loop (frames per second).

    python benchmarks/speed.py [--fer-python /path/to/venv/bin/python] [--repeat 40]

Frames are built from the public-domain photo in examples/ (a real face, which every detector can find), so no
data set is needed. The `fer` package (TensorFlow) runs where `--fer-python` names an interpreter that has it (a
separate virtual environment: `pip install torch==2.13.0 fer tensorflow-cpu "setuptools<81"`), in a subprocess on the same frames, in this run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

import ferkit
from ferkit.track import FaceTracker

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "astronaut.png"


def frames() -> dict[str, np.ndarray]:
    """640x480 with one face (the photo scaled to 480 px high, the face ~100 px), 640x480 with four (each a
    320x240 tile, faces ~50 px), 1280x720 with one (the photo at 720 px, the face ~150 px)."""
    photo = cv2.imread(str(PHOTO))
    one = np.full((480, 640, 3), 96, np.uint8)
    one[:, 80:560] = cv2.resize(photo, (480, 480), interpolation=cv2.INTER_AREA)
    four = np.full((480, 640, 3), 96, np.uint8)
    tile = cv2.resize(photo, (240, 240), interpolation=cv2.INTER_AREA)
    for y in (0, 240):
        for x in (40, 360):
            four[y:y + 240, x:x + 240] = tile
    hd = np.full((720, 1280, 3), 96, np.uint8)
    hd[:, 280:1000] = cv2.resize(photo, (720, 720), interpolation=cv2.INTER_LINEAR)
    return {"640x480, 1 face": one, "640x480, 4 faces": four, "1280x720, 1 face": hd}


def timed(fn, repeat: int) -> tuple[float, float]:
    fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts), float(np.percentile(ts, 90))


FER_SCRIPT = r"""
import json, sys, time, statistics, os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import cv2
from fer.fer import FER
det = FER()
out = {}
for name in json.loads(sys.argv[2]):
    img = cv2.imread(os.path.join(sys.argv[1], name + ".png"))
    det.detect_emotions(img)
    ts = []
    for _ in range(int(sys.argv[3])):
        t = time.perf_counter(); faces = det.detect_emotions(img); ts.append((time.perf_counter() - t) * 1000)
    out[name] = [statistics.median(ts), len(faces)]
print(json.dumps(out))
"""


def fer_package(python: str, images: dict, repeat: int) -> dict | str:
    with tempfile.TemporaryDirectory() as d:
        names = {}
        for i, (label, img) in enumerate(images.items()):
            cv2.imwrite(os.path.join(d, f"f{i}.png"), img)
            names[f"f{i}"] = label
        try:
            r = subprocess.run([python, "-c", FER_SCRIPT, d, json.dumps(list(names)), str(repeat)], capture_output=True,
                               text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"not run ({e})"
        if r.returncode != 0:
            return f"not run ({r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode})"
        return {names[k]: v for k, v in json.loads(r.stdout.strip().splitlines()[-1]).items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fer-python", default=os.environ.get("FER_PYTHON"), help="a Python with the fer package")
    ap.add_argument("--repeat", type=int, default=40)
    ap.add_argument("--video-seconds", type=float, default=60)
    args = ap.parse_args()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
    print(f"ferkit {ferkit.__version__}, {cpu}, {os.cpu_count()} cores, OpenCV {cv2.__version__}; median of {args.repeat} "
          f"(p90 in brackets)\n")
    images = frames()
    fer = fer_package(args.fer_python, images, args.repeat) if args.fer_python else "not run (no --fer-python)"
    print(f"1. Recognizer.analyze per frame (detect, crop, classify), ms")
    print(f"{'detector':<22}" + "".join(f"{k:>24}" for k in images))
    rows = {}
    for det in ("yunet", "blazeface", "haar"):
        rec = ferkit.load_recognizer(detector=det)
        cells = []
        for label, img in images.items():
            found = len(rec.analyze(img))
            med, p90 = timed(lambda: rec.analyze(img), args.repeat)
            rows[(det, label)] = med
            cells.append(f"{med:7.2f} ({p90:6.2f}) {found} found")
        print(f"{det + (' (default)' if det == 'yunet' else ''):<22}" + "".join(f"{c:>24}" for c in cells))
    if isinstance(fer, dict):
        print(f"{'fer detect_emotions':<22}" + "".join(f"{f'{fer[k][0]:7.2f}          {fer[k][1]} found':>24}" for k in images))
        ratios = [f"{fer[k][0] / rows['yunet', k]:.2f}x" for k in images]
        print(f"{'  fer / ferkit (yunet)':<22}" + "".join(f"{r:>24}" for r in ratios))
    else:
        print(f"fer package: {fer}")

    print("\n2. ferkit video on a 640x480, 30 fps clip with one face moving (all outputs written)")
    with tempfile.TemporaryDirectory() as d:
        clip = Path(d) / "clip.mp4"
        n = int(args.video_seconds * 30)
        writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 30, (640, 480))
        base = images["640x480, 1 face"]
        for i in range(n):
            writer.write(np.roll(base, int(60 * np.sin(i / 30)), axis=1))
        writer.release()
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ferkit", "video", str(clip), "--out", str(Path(d) / "out"),
                        "--no-progress"], check=True, capture_output=True)
        wall = time.perf_counter() - t
        print(f"   ferkit video, default settings: {wall:.2f} s for {args.video_seconds:.0f} s of video = "
              f"{args.video_seconds / wall:.2f}x real time, process start-up included")
        from ferkit.video import analyze_video
        rec = ferkit.load_recognizer()
        t = time.perf_counter()
        analyze_video(clip, rec, Path(d) / "out2")
        inside = time.perf_counter() - t
        print(f"   analyze_video in a running process: {inside:.2f} s = {args.video_seconds / inside:.2f}x real time "
              f"({n / inside:.0f} frames/s)")

        print("\n3. live loop (FaceTracker.process per frame, the defaults of ferkit live: YuNet on a 320 copy every "
              "5th frame, followed between), frames per second, no drawing")
        for label in ("640x480, 1 face", "640x480, 4 faces"):
            rec = ferkit.load_recognizer()
            tracker = FaceTracker(rec, detect_every=5, detect_side=320, smoothing=0.5)
            src = [np.roll(images[label], int(20 * np.sin(i / 15)), axis=1) for i in range(60)]
            for f in src[:10]:
                tracker.process(f)
            t = time.perf_counter()
            faces = 0
            for k in range(300):
                faces += len(tracker.process(src[k % 60]))
            fps = 300 / (time.perf_counter() - t)
            print(f"   {label}: {fps:.1f} fps ({faces / 300:.2f} faces per frame)")


if __name__ == "__main__":
    main()
