"""The front end (face detector + crop + alignment) measured, and its defaults chosen, in one run.

    python benchmarks/front_end.py [--data ../shared/data/fer2013] [--faces 400]

Choices are made on FER-2013 Training faces placed in scenes and on face-free images, never on a test split:
  1. YuNet's score threshold: found rate against false faces per face-free image; for close-ups, the thresholds of
     the second look inside a margin and of the BlazeFace fallback.
  2. The framing (scale, shift) that turns YuNet's box into FER-2013's crop, fitted on upright Training scenes.
Then reported: found rates on PublicTest faces in scenes (20-300 px, rolls within +-30 degrees, lighting), on the
public-domain sample photo at many sizes, on close-ups (with and without the BlazeFace fallback); alignment's
effect on accuracy on PublicTest (where it is chosen) and PrivateTest (reported) faces at rolls 0, +-15, +-30;
the detector's time per 640x480 frame by working resolution.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np

from ferkit import load_recognizer
from ferkit.data import load_dataset
from _data import fer2013  # --data, $FERKIT_DATA or ../shared/data/fer2013 (benchmarks/_data.py)
from ferkit.detect import YuNetDetector, create_detector
from ferkit.scenes import background, place_face

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.png"
BINS = ((20, 40), (40, 100), (100, 300))


def scene(face48, rng, size=None, roll=None, shape=(480, 640)):
    """A frame with one face at a random place, size 20-300 px (log-uniform), roll, gain and tint -> frame, truth."""
    size = float(np.exp(rng.uniform(np.log(20), np.log(300)))) if size is None else float(size)
    roll = float(rng.uniform(-30, 30)) if roll is None else float(roll)
    h, w = shape
    m = min(size * 0.75, h / 2)
    centre = (rng.uniform(m, w - m), rng.uniform(m, h - m))
    frame = place_face(background(h, w, rng), face48, size, centre, roll, rng.uniform(0.5, 1.3), tuple(rng.uniform(0.8, 1.1, 3)))
    return frame, (centre, size, roll)


def match(det, truth):
    """Index of the detection that is the true face (centre within 0.35 of its size, side within 0.5-2x), or None."""
    (cx, cy), size, _ = truth
    best = None
    for i, (b, s) in enumerate(zip(det.boxes, det.scores)):
        if np.hypot(b[0] + b[2] / 2 - cx, b[1] + b[3] / 2 - cy) < 0.35 * size and 0.5 < (b[2] + b[3]) / 2 / size < 2:
            if best is None or s > det.scores[best]:
                best = i
    return best


def face_free_images(rng, n):
    """Generated backdrops, plus scikit-image's face-free sample photos (textures, objects) where it is installed."""
    images = [background(480, 640, rng) for _ in range(n)]
    try:
        from skimage import data
        for name in ("brick", "grass", "gravel", "coffee", "rocket", "coins", "horse", "clock", "hubble_deep_field",
                     "moon", "page", "text", "cell", "colorwheel", "chelsea"):
            try:
                im = np.asarray(getattr(data, name)())
            except Exception:  # some fetch from the internet: not here
                continue
            im = im.astype(np.uint8) if im.dtype != bool else (im * 255).astype(np.uint8)
            images.append(cv2.cvtColor(im, cv2.COLOR_RGB2BGR) if im.ndim == 3 and im.shape[2] == 3 else
                          cv2.cvtColor(im[:, :, :3], cv2.COLOR_RGB2BGR) if im.ndim == 3 else im)
    except ImportError:
        pass
    return images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None)
    ap.add_argument("--faces", type=int, default=400, help="faces per scene set")
    ap.add_argument("--speed-only", action="store_true", help="only part 5, the detector's time (no data needed)")
    ap.add_argument("--photo-sizes-only", action="store_true",
                    help="only part 6, the found rate by face size in 640 and 1280 px photos (no data needed)")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {_cpu_name()}")
    if args.speed_only:
        return speed()
    if args.photo_sizes_only:
        return photo_sizes()
    ds = load_dataset(fer2013(args.data))
    train, public, private = ds.split("Training"), ds.split("PublicTest"), ds.split("PrivateTest")
    n = args.faces
    raw = YuNetDetector(score_threshold=0.3, fallback=None)
    default = create_detector("yunet")

    # 1. choose the threshold on Training scenes and face-free images
    rng = np.random.default_rng(0)
    dets = []
    for i in range(n):
        frame, truth = scene(train.pixels[i], rng)
        dets.append((raw.raw(frame), truth))
    free_images = face_free_images(np.random.default_rng(1), 60)
    free = [raw.raw(im) for im in free_images]
    print(f"\n1. score threshold, {n} Training faces in scenes, {len(free)} face-free images")
    print(f"{'threshold':>9} {'found':>6} " + " ".join(f"{f'{lo}-{hi}px':>8}" for lo, hi in BINS) + f" {'false/img':>9} {'imgs w/ false':>13}")
    for thr in (0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        found = np.array([(m := match(d, t)) is not None and d.scores[m] >= thr for d, t in dets])
        sizes = np.array([t[1] for _, t in dets])
        fp = [int((d.scores >= thr).sum()) for d in free]
        print(f"{thr:>9.1f} {found.mean():>6.1%} " + " ".join(f"{found[(sizes >= lo) & (sizes < hi)].mean():>8.1%}" for lo, hi in BINS)
              + f" {np.mean(fp):>9.2f} {np.mean(np.array(fp) > 0):>13.1%}")
    print(f"default in code: score_threshold={default.score_threshold}")

    # 1b. close-ups (Training faces alone, 48 and 200 px: the face fills the image). When YuNet finds nothing, it
    # looks again inside a margin (its own threshold there), then BlazeFace is the last resort: both thresholds are
    # chosen here, each the lowest with no false face on the face-free images that reach that step.
    closeups = [cv2.cvtColor(cv2.resize(train.pixels[i], (s, s)), cv2.COLOR_GRAY2BGR) for i in range(n) for s in (48, 200)]
    low = YuNetDetector(score_threshold=0.2, fallback=None)
    best_margin = lambda im: float(max(low.raw_with_margin(im, score_threshold=0.2).scores, default=0.0))  # noqa: E731
    free_more = free_images + [background(480, 640, rng) for rng in [np.random.default_rng(11)] for _ in range(300)]
    yunet_only = np.array([len(default.raw(c)) > 0 for c in closeups])
    free_first = np.array([len(default.raw(im)) > 0 for im in free_more])  # a false face in the first look already
    margin_close, margin_free = np.array([best_margin(c) for c in closeups]), np.array([best_margin(im) for im in free_more])
    print(f"\n1b. close-ups ({len(closeups)}: Training faces alone at 48 and 200 px): YuNet alone {yunet_only.mean():.1%}; "
          f"{len(free_more)} face-free images (the {len(free_images)} above and 300 more backdrops), "
          f"{int(free_first.sum())} with a false face at the first look")
    print("   YuNet again inside a margin, by its threshold there:")
    for thr in (0.25, 0.3, 0.35, 0.4, 0.5, 0.6):
        print(f"   margin >= {thr:.2f}: close-ups found {np.mean(yunet_only | (margin_close >= thr)):.1%}, face-free images "
              f"with a false face from it {int((~free_first & (margin_free >= thr)).sum())}")
    print(f"   default in code: margin_threshold={default.margin_threshold}")
    with_margin = yunet_only | (margin_close >= default.margin_threshold)
    free_left = [im for im, first, m in zip(free_more, free_first, margin_free) if not first and m < default.margin_threshold]
    blaze = create_detector("blazeface", score_threshold=0.3)
    best = lambda im: max(blaze.detect(im)[1], default=0.0)  # noqa: E731
    blaze_close, blaze_free = np.array([best(c) for c in closeups]), np.array([best(im) for im in free_left])
    print(f"   then BlazeFace, by its threshold (on the {len(free_left)} face-free images YuNet passed on):")
    for thr in (0.5, 0.6, 0.65, 0.7, 0.75, 0.8):
        print(f"   blazeface >= {thr:.2f}: close-ups found {np.mean(with_margin | (blaze_close >= thr)):.1%}, face-free "
              f"images with a false face from it {int((blaze_free >= thr).sum())}")
    print(f"   default in code: fallback threshold {default.fallback.score_threshold}")

    # 2. framing: truth side / YuNet's mean side and the centre's offset, upright Training scenes
    rng = np.random.default_rng(2)
    ratios = []
    for i in range(n, 2 * n):
        frame, truth = scene(train.pixels[i], rng, size=rng.uniform(60, 200), roll=0)
        d = raw.raw(frame)
        m = match(d, truth)
        if m is not None:
            b = d.boxes[m]
            side = (b[2] + b[3]) / 2
            ratios.append([truth[1] / side, (truth[0][0] - b[0] - b[2] / 2) / truth[1], (truth[0][1] - b[1] - b[3] / 2) / truth[1]])
    r = np.median(ratios, 0)
    print(f"\n2. framing on {len(ratios)} upright Training scenes: FER crop side = {r[0]:.3f} x YuNet's mean side, "
          f"centre offset x {r[1]:+.3f}, y {r[2]:+.3f} of the side; default in code: frame={default.frame}")

    # 3. found rates, reported
    print(f"\n3. found rate at the default threshold ({default.score_threshold})")
    rng = np.random.default_rng(3)
    found, sizes = [], []
    for i in range(n):
        frame, truth = scene(public.pixels[i], rng)
        found.append(match(default.raw(frame), truth) is not None)
        sizes.append(truth[1])
    found, sizes = np.array(found), np.array(sizes)
    print(f"PublicTest faces in scenes (FER-2013 48 px crops, enlarged):  {found.mean():.1%}  " +
          "  ".join(f"{lo}-{hi} px {found[(sizes >= lo) & (sizes < hi)].mean():.1%}" for lo, hi in BINS))
    photo = cv2.imread(str(SAMPLE))
    frames = photo_frames(photo, np.random.default_rng(4), 200)
    found = np.array([match(default.raw(f), t) is not None for f, t in frames])
    sizes = np.array([t[1] for _, t in frames])
    print(f"the sample photo's face in {len(found)} frames:                 {found.mean():.1%}  " +
          "  ".join(f"{lo}-{hi} px {found[(sizes >= lo) & (sizes < hi)].mean():.1%}" for lo, hi in BINS))
    closeups = [cv2.resize(photo[40:200, 150:300], None, fx=f, fy=f) for f in (0.5, 1, 2, 4)]
    closeups += [cv2.cvtColor(cv2.resize(public.pixels[i], (s, s)), cv2.COLOR_GRAY2BGR)
                 for i in range(100) for s in (48, 200)]
    full = np.mean([len(default.detect_faces(c)) > 0 for c in closeups])
    margin = np.mean([len(default.raw(c)) > 0 or len(default.raw_with_margin(c)) > 0 for c in closeups])
    without = np.mean([len(default.raw(c)) > 0 for c in closeups])
    print(f"close-ups (the face fills the image; 4 crops of the photo, 100 PublicTest faces at 48 and 200 px): "
          f"{full:.1%} the default (YuNet, with a margin, BlazeFace), {margin:.1%} without BlazeFace, {without:.1%} YuNet alone")
    fp = [len(default.detect_faces(im)) for im in free_images]
    print(f"face-free images, the default detector with its fallbacks: {np.mean(fp):.2f} false faces per image, "
          f"{np.mean(np.array(fp) > 0):.1%} with any")

    # 4. alignment
    print("\n4. accuracy of the emotion on faces in scenes (100-140 px), by roll, aligned vs not (missed faces count as wrong)")
    aligned, plain = load_recognizer(align=True), load_recognizer(align=False)
    for split_name, split in (("PublicTest", public), ("PrivateTest", private)):
        row = []
        for roll in (0, 15, -15, 30, -30):
            rng = np.random.default_rng(5)
            hits = np.zeros((2,), int)
            for i in range(n):
                frame, truth = scene(split.pixels[i], rng, size=rng.uniform(100, 140), roll=roll)
                for k, rec in enumerate((aligned, plain)):
                    faces = rec.analyze(frame)
                    d = _as_detections(faces)
                    m = match(d, truth)
                    hits[k] += m is not None and rec.labels.index(faces[m].emotion) == split.labels[i]
            row.append(f"{roll:+d}: {hits[0] / n:.1%} vs {hits[1] / n:.1%}")
        print(f"{split_name:<11} aligned vs not  " + "  ".join(row))
    crop_acc = float((aligned.classify(public.pixels[:n]).argmax(1) == public.labels[:n]).mean())
    print(f"(the same PublicTest faces as FER-2013's own crops, no detector: {crop_acc:.1%})")

    speed()
    photo_sizes()


def photo_frames(photo, rng, n: int, shape=(480, 640), sizes=(20, 300)):
    """The sample photo's face (about 100 px wide in the 512 px photo) at `sizes` px (log-uniform), turned up to
    +-30 degrees, dim to bright, whole in a frame of `shape` -> [(frame, truth)] (fewer than n: faces cut by the edge
    are left out)."""
    h, w = shape
    out = []
    for _ in range(n):
        size = float(np.exp(rng.uniform(np.log(sizes[0]), np.log(sizes[1]))))
        roll, gain = rng.uniform(-30, 30), rng.uniform(0.5, 1.3)
        m = cv2.getRotationMatrix2D((224, 104), -roll, size / 100)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        m[:, 2] += (cx - 224, cy - 104)
        frame = cv2.warpAffine(photo, m, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=(90, 110, 120))
        if size / 2 < cx < w - size / 2 and size / 2 < cy < h - size / 2:
            out.append((np.clip(frame * gain, 0, 255).astype(np.uint8), ((cx, cy), size, roll)))
    return out


def photo_sizes() -> None:
    """6. The smallest face found depends on the face's size at YuNet's working side (640 for photos), not in the
    photo: the sample photo's face at 20-300 px in 640x480 and 1280x960 frames, found by the default and by
    YuNet at a working side of 1280, with the time per frame."""
    print("\n6. found rate by the face's size, in photos of two sizes, by YuNet's working side (the sample photo's face)")
    photo = cv2.imread(str(SAMPLE))
    bins = ((20, 30), (30, 40), (40, 60), (60, 100), (100, 300))
    print(f"{'photo':>9} {'working side':>12} " + " ".join(f"{f'{lo}-{hi}px':>8}" for lo, hi in bins) + f" {'ms/frame':>9}")
    for shape in ((480, 640), (960, 1280)):
        frames = photo_frames(photo, np.random.default_rng(6), 400, shape)
        sizes = np.array([t[1] for _, t in frames])
        for side in (640, 1280):
            det = YuNetDetector(long_side=side, threads=1)
            t0 = time.perf_counter()
            found = np.array([match(det.raw(f), t) is not None for f, t in frames])
            ms = (time.perf_counter() - t0) * 1000 / len(frames)
            print(f"{shape[1]}x{shape[0]:<4} {side:>12} " +
                  " ".join(f"{found[(sizes >= lo) & (sizes < hi)].mean():>8.1%}" for lo, hi in bins) + f" {ms:>9.1f}")
    print("(working side 640 is the default for photos; 1280: YuNetDetector(long_side=1280), or `--detect-side 1280`)")


def speed() -> None:
    """5. YuNet's time per 640x480 frame by working side, on ONNX Runtime (ferkit's way) and on OpenCV's
    cv2.FaceDetectorYN (the fixed 640x640 file OpenCV loads, resized to the same input), side by side."""
    print("\n5. detector time per 640x480 frame with one face (the sample photo), median of 40")
    photo = cv2.imread(str(SAMPLE))
    frame = np.full((480, 640, 3), 96, np.uint8)
    frame[:, 80:560] = cv2.resize(photo, (480, 480), interpolation=cv2.INTER_AREA)

    def median_ms(fn) -> float:
        fn()
        ts = []
        for _ in range(40):
            t = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t) * 1000)
        return float(np.median(ts))

    opencv_model = Path(__file__).resolve().parents[2] / "shared" / "models" / "yunet" / "yunet_s_640_640.onnx"
    for side in (640, 480, 320):
        det = YuNetDetector(long_side=side)
        row = f"long side {side}: ONNX Runtime (ferkit) {median_ms(lambda: det.detect(frame)):.2f} ms"
        if opencv_model.is_file():
            w, h = side, side * 3 // 4
            yn = cv2.FaceDetectorYN.create(str(opencv_model), "", (w, h), 0.6, 0.3, 5000)
            row += f", cv2.FaceDetectorYN {median_ms(lambda: yn.detect(cv2.resize(frame, (w, h))) ):.2f} ms"
        print(row)


def _as_detections(faces):
    from ferkit.detect import Detections
    return Detections(np.array([f.box for f in faces], np.int32).reshape(-1, 4),
                      np.array([f.detector_score for f in faces], np.float32), None, ())


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
