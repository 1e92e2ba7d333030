"""One track per person, and boxes that move only when faces do: how well a face's look (track.appearance) and its
mesh's shape (ferkit.mesh) tell one person from another, how much the detector jitters on a still face, and what the
tracker's timelines do with it, on FER-2013 Training faces, as the tracker's thresholds were chosen. Prints figures;
a run is kept in docs/benchmarks/tracking.txt.

    python benchmarks/tracking.py [--pairs 1000] [--clips 40]

Still faces: a Training face pasted at 110 px into a 640x480 frame (tests/_videos' layout), 30 identical frames
written to an mp4v clip and decoded (the codec's noise), or the face drifting 1 px a frame. The detector's jitter: how
far each frame's detection (centre, size, each landmark) lies from the clip's first, as a share of the face's side
(track.STILL is chosen above it). The timeline: the largest frame-to-frame change of any probability, per clip, with
the tracker's defaults, detecting every frame and every 3rd (`ferkit video`'s default), and with STILL = 0 (every
detected box taken, whatever following says). Run with PYTHONPATH at an older ferkit's src/ to see its tracker.

Same person: a face against a copy of itself moved (+-2 px), scaled (+-10 %), turned (+-12 degrees) and relit
(gain 0.8-1.2, offset +-20), the "strong" change a track's running average absorbs; and against a small change
(0.4x those) or a blink (eyes blurred and darkened), what happens between two detections. Different people: two
random Training faces.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import cpu_name  # noqa: E402
from face_features import auc  # noqa: E402


def perturb(face: np.ndarray, rng, k: float = 1.0) -> np.ndarray:
    h, w = face.shape
    m = cv2.getRotationMatrix2D((w / 2 + rng.uniform(-2, 2) * k, h / 2 + rng.uniform(-2, 2) * k),
                                rng.uniform(-12, 12) * k, 1 + rng.uniform(-0.1, 0.1) * k)
    out = cv2.warpAffine(face, m, (w, h), borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    return np.clip(out * rng.uniform(0.8, 1.2) + rng.uniform(-20, 20), 0, 255).astype(np.uint8)


def blink(face: np.ndarray) -> np.ndarray:
    f = face.astype(np.float32)
    f[14:22, 8:40] = cv2.GaussianBlur(f, (0, 0), 3)[14:22, 8:40] * 0.8
    return f.astype(np.uint8)


def look(face: np.ndarray) -> np.ndarray:
    from ferkit.track import appearance

    return appearance(face, (0, 0, face.shape[1], face.shape[0]))


def mesh_shape(rec, face: np.ndarray) -> np.ndarray | None:
    """The face's mesh (drawn at 200 px into a scene), similarity-aligned: (468 * 2,) unit vector, or None."""
    from ferkit.scenes import place_face

    frame = place_face(np.full((320, 320, 3), 110, np.uint8), face, 200, (160, 160))
    faces = rec.analyze(frame)
    if len(faces) != 1:
        return None
    p = faces[0].mesh[:468, :2].astype(np.float64)
    p -= p.mean(0)
    return (p / np.linalg.norm(p)).ravel()


def aligned_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Procrustes: the correlation of two centred, unit shapes after the best rotation."""
    a2, b2 = a.reshape(-1, 2), b.reshape(-1, 2)
    u, s, vt = np.linalg.svd(a2.T @ b2)
    return float(s.sum())


def still_clip(face: np.ndarray, drift: float, path: Path) -> list[np.ndarray]:
    """30 frames of one face at 110 px in a 640x480 frame, moving `drift` px a frame, through mp4v and back."""
    from ferkit.scenes import pad_face

    patch = cv2.cvtColor(pad_face(face, 110), cv2.COLOR_GRAY2BGR)
    background = np.clip(np.linspace(60, 120, 640)[None, :] + np.linspace(0, 40, 480)[:, None], 0, 255).astype(np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (640, 480))
    for i in range(30):
        frame = cv2.cvtColor(background, cv2.COLOR_GRAY2BGR)
        m = np.float32([[1, 0, 220 + drift * i], [0, 1, 140]])
        writer.write(cv2.warpAffine(patch, m, (640, 480), dst=frame, borderMode=cv2.BORDER_TRANSPARENT))
    writer.release()
    cap, out = cv2.VideoCapture(str(path)), []
    while (got := cap.read())[0]:
        out.append(got[1])
    return out


def timelines(args, train) -> None:
    """The detector's jitter on still faces, and the tracker's frame-to-frame changes with and without STILL."""
    import tempfile

    import ferkit
    from ferkit import track
    from ferkit.track import FaceTracker

    rec = ferkit.load_recognizer()
    rng = np.random.default_rng(1)
    faces = train.pixels[rng.choice(len(train.labels), 3 * args.clips, replace=False)]
    tmp = Path(tempfile.mkdtemp())
    jitter, used, clips = [], 0, {0.0: [], 1.0: []}
    for face in faces:
        frames = still_clip(face, 0.0, tmp / "still.mp4")
        found = [rec.detect(f) for f in frames]
        if any(len(d) != 1 for d in found):
            continue
        b0, l0 = found[0].boxes[0].astype(float), found[0].landmarks[0]
        side = max(b0[2:])
        for d in found[1:]:
            b, lm = d.boxes[0].astype(float), d.landmarks[0]
            centre = np.hypot(*(b[:2] + b[2:] / 2 - b0[:2] - b0[2:] / 2))
            jitter.append(max(centre, *np.abs(b[2:] - b0[2:]), *np.linalg.norm(lm - l0, axis=1)) / side)
        clips[0.0].append(frames)
        clips[1.0].append(still_clip(face, 1.0, tmp / "drift.mp4"))
        used += 1
        if used == args.clips:
            break
    jitter = np.array(jitter)
    print(f"\nthe detector on {used} still faces in encoded clips, 29 frames each against the first (centre, size and "
          f"landmarks; largest, as a share of the face's side): median {np.median(jitter):.3f}, 95th percentile "
          f"{np.percentile(jitter, 95):.3f}, 99th {np.percentile(jitter, 99):.3f}, max {jitter.max():.3f} "
          f"(track.STILL = {getattr(track, 'STILL', None)})")
    print("largest frame-to-frame change of any probability per clip (median over clips / the worst clip):")
    still = getattr(track, "STILL", None)  # (None: an older ferkit, without it)
    for name, every, settle in (("detect every frame", 1, True), ("detect every 3rd (default)", 3, True),
                                ("detect every 3rd, STILL = 0", 3, False))[:3 if still is not None else 2]:
        track.STILL = still if settle else 0.0
        row = []
        for drift, frames_list in clips.items():
            worst = []
            for frames in frames_list:
                tracker = FaceTracker(rec, detect_every=every, detect_side=None)
                p = [[f.probabilities[k] for k in rec.labels] for o in map(tracker.process, frames) for f in o[:1]]
                worst.append(float(np.abs(np.diff(np.array(p), axis=0)).max()))
            row.append(f"{'still' if drift == 0 else f'{drift:g} px/frame'}: {np.median(worst):.3f} / {max(worst):.3f}")
        print(f"  {name:<32} {';  '.join(row)}")
    track.STILL = still


def main() -> None:
    import ferkit
    from _data import fer2013
    from ferkit.data import load_dataset
    from ferkit.track import IDENTITY_THRESHOLD, JUMP_THRESHOLD

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=1000)
    p.add_argument("--mesh-pairs", type=int, default=150)
    p.add_argument("--clips", type=int, default=40, help="still faces for the jitter and timeline part")
    p.add_argument("--part", choices=("identity", "timelines"), action="append")
    p.add_argument("--data", default=None)
    args = p.parse_args()
    print(f"CPU: {cpu_name()}")
    train = load_dataset(fer2013(args.data)).split("Training")
    if "timelines" in (args.part or ("identity", "timelines")):
        timelines(args, train)
    if "identity" not in (args.part or ("identity",)):
        return
    rng = np.random.default_rng(0)
    idx = rng.choice(len(train.labels), 2 * args.pairs, replace=False)
    faces = train.pixels[idx]
    strong = np.array([look(f) @ look(perturb(f, rng)) for f in faces[:args.pairs]])
    small = np.array([look(f) @ look(perturb(f, rng, 0.4)) for f in faces[:args.pairs]])
    blinks = np.array([look(f) @ look(blink(f)) for f in faces[:args.pairs]])
    other = np.array([look(faces[2 * k]) @ look(faces[2 * k + 1]) for k in range(args.pairs)])
    print(f"appearance (24x24 look, normalised correlation), {args.pairs} pairs each:")
    for name, th, same in (("running average", IDENTITY_THRESHOLD, strong), ("last detection", JUMP_THRESHOLD, small)):
        print(f"  vs {name} (threshold {th}): same person kept {np.mean(same >= th):.1%}, "
              f"two people split {np.mean(other < th):.1%}")
    print(f"  a blink kept at {JUMP_THRESHOLD}: {np.mean(blinks >= JUMP_THRESHOLD):.1%}")
    print(f"  AUC same (strong change) vs two people: {auc(np.r_[np.ones(len(strong)), np.zeros(len(other))] > 0, np.r_[strong, other]):.3f}")
    rec = ferkit.load_recognizer(features="mesh")
    same_m, other_m = [], []
    for k in range(args.mesh_pairs):
        a, b = faces[2 * k], faces[2 * k + 1]
        ma, mp, mb = mesh_shape(rec, a), mesh_shape(rec, perturb(a, rng)), mesh_shape(rec, b)
        if ma is None or mp is None or mb is None:
            continue
        same_m.append(aligned_similarity(ma, mp))
        other_m.append(aligned_similarity(ma, mb))
    same_m, other_m = np.array(same_m), np.array(other_m)
    print(f"mesh shape (468 points, Procrustes-aligned correlation), {len(same_m)} pairs: AUC same (strong change) vs "
          f"two people {auc(np.r_[np.ones(len(same_m)), np.zeros(len(other_m))] > 0, np.r_[same_m, other_m]):.3f}")


if __name__ == "__main__":
    main()
