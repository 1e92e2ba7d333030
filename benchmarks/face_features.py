"""Face features (ferkit.mesh): the one-pass crop's calibration, parity with MediaPipe's TFLite files, how well each
action unit separates its emotion, and speed. Prints figures; docs/benchmarks/face_features.txt keeps a run.

    python benchmarks/face_features.py                 # every part
    python benchmarks/face_features.py --part speed    # calibrate | parity | auc | speed | live

Faces: the sample photo (examples/astronaut.png) turned and scaled, and FER-2013 faces drawn into scenes at 120-300 px
(ferkit.scenes.place_face): Training faces to calibrate, PublicTest/PrivateTest faces to check. Needs ai-edge-litert
for the parity part (the [dev] extra).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _data import cpu_name  # noqa: E402
PHOTO = ROOT / "examples" / "astronaut.png"


def scenes(split: str, n: int, seed: int = 0, data=None):
    """n FER-2013 faces of `split` drawn into 480x480 grey-backed scenes at 120-300 px, turned -25..25 degrees ->
    [(image, label)]."""
    from _data import fer2013
    from ferkit.data import load_dataset
    from ferkit.scenes import place_face

    ds = load_dataset(fer2013(data)).split(split)
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.choice(len(ds.labels), n, replace=False):
        frame = np.full((480, 480, 3), 110, np.uint8)
        size = rng.uniform(120, 300)
        img = place_face(frame, ds.pixels[i], size, (240 + rng.uniform(-40, 40), 240 + rng.uniform(-40, 40)),
                         roll=rng.uniform(-25, 25))
        out.append((img, int(ds.labels[i])))
    return out


def photo_views():
    """The sample photo scaled 0.5-2x and turned -30..30 degrees."""
    photo = cv2.imread(str(PHOTO))
    out = []
    for scale in (0.6, 1.0, 1.6):
        for angle in (-30, -15, 0, 15, 30):
            h, w = photo.shape[:2]
            m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
            out.append(cv2.warpAffine(photo, m, (w, h), borderMode=cv2.BORDER_REPLICATE))
    return out


def calibrate(args) -> None:
    """The one-pass crop (mesh.roi_from_five_points) against MediaPipe's own crop (the box of the mesh found from
    a crop, mesh.face_roi), fitted on Training scenes: centre offset and side per eye-mouth distance."""
    import ferkit
    from ferkit.mesh import EYE_OUTER_LEFT, EYE_OUTER_RIGHT, face_roi

    rec = ferkit.load_recognizer(features="mesh")
    offsets, sides = [], []
    images = [img for img, _ in scenes("Training", args.n, data=args.data)] + photo_views()
    for img in images:
        d = rec.detect(img)
        if len(d) != 1 or d.landmarks is None:
            continue
        five = d.landmarks[0].astype(np.float64)
        feats, _ = rec.face_mesh.refine(img, rec.face_mesh.rois(d.boxes, d.landmarks), rounds=2)
        if feats.presence[0] < 0.5:
            continue
        m = feats.mesh[0].astype(np.float64)
        centre, side, angle = face_roi(m[:468, :2], (m[EYE_OUTER_RIGHT, :2], m[EYE_OUTER_LEFT, :2]))
        re, le, _, rm, lm = five
        a = np.arctan2(*(le - re)[::-1])
        right, down = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
        eye_mid, mouth_mid = (re + le) / 2, (rm + lm) / 2
        scale = max(float(np.dot(mouth_mid - eye_mid, down)), 0.5 * float(np.hypot(*(le - re))), 1.0)
        offsets.append((np.dot(centre - eye_mid, right) / scale, np.dot(centre - eye_mid, down) / scale))
        sides.append(side / 1.5 / scale)
    offsets, sides = np.array(offsets), np.array(sides)
    print(f"calibration on {len(sides)} faces (Training scenes + the sample photo's views):")
    print(f"  centre offset (right, down) per eye-mouth distance: median {np.median(offsets, 0).round(3)}, "
          f"IQR {np.subtract(*np.percentile(offsets, [75, 25], 0)).round(3)}")
    print(f"  landmark box side per eye-mouth distance: median {np.median(sides):.3f}, "
          f"IQR {np.subtract(*np.percentile(sides, [75, 25])):.3f}")


def parity(args) -> None:
    """ONNX files against the bundle's TFLite files on the same crops: landmarks (px at 256) and blendshapes."""
    import zipfile
    import tempfile
    from ai_edge_litert.interpreter import Interpreter
    import ferkit
    from ferkit.mesh import BLENDSHAPE_INPUT_POINTS, MESH_INPUT, crop_transform

    task = Path(args.task)
    tmp = Path(tempfile.mkdtemp())
    zipfile.ZipFile(task).extractall(tmp)
    mesh_t = Interpreter(str(tmp / "face_landmarks_detector.tflite"))
    blend_t = Interpreter(str(tmp / "face_blendshapes.tflite"))
    mesh_t.allocate_tensors()
    blend_t.allocate_tensors()
    rec = ferkit.load_recognizer(features="all")
    fm = rec.face_mesh
    worst_mesh = worst_blend = 0.0
    count = 0
    images = [img for img, _ in scenes("PrivateTest", args.n, seed=1, data=args.data)] + photo_views()
    for img in images:
        d = rec.detect(img)
        for roi in fm.rois(d.boxes, d.landmarks):
            rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            x = cv2.warpAffine(rgb, crop_transform(*roi), (MESH_INPUT, MESH_INPUT)).astype(np.float32)[None] / 255
            mesh_t.set_tensor(mesh_t.get_input_details()[0]["index"], x)
            mesh_t.invoke()
            ref = mesh_t.get_tensor(mesh_t.get_output_details()[0]["index"]).reshape(-1, 3)
            got = fm._mesh.run(None, {fm._mesh_input: x})[0].reshape(-1, 3)
            worst_mesh = max(worst_mesh, float(np.abs(ref[:, :2] - got[:, :2]).max()))
            pts = np.ascontiguousarray(ref[list(BLENDSHAPE_INPUT_POINTS), :2][None], np.float32)
            blend_t.set_tensor(blend_t.get_input_details()[0]["index"], pts)
            blend_t.invoke()
            ref_b = blend_t.get_tensor(blend_t.get_output_details()[0]["index"]).reshape(-1)
            got_b = fm.blendshapes(np.concatenate([ref, np.zeros((0, 3))])[None])[0]
            worst_blend = max(worst_blend, float(np.abs(ref_b - got_b).max()))
            count += 1
    print(f"parity with the TFLite files on {count} real face crops: landmarks max |diff| {worst_mesh:.5f} px at 256 px "
          f"(target 0.5), blendshapes max |diff| {worst_blend:.6f} (target 0.01)")


def auc(labels_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of `scores` for the positives in `labels_true` (Mann-Whitney, ties halved)."""
    pos, neg = scores[labels_true], scores[~labels_true]
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    allv = np.concatenate([pos, neg])
    for v in np.unique(allv):  # average ranks of ties
        idx = allv == v
        ranks[idx] = ranks[idx].mean()
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


# Each AU against the emotion it is prototypical of (EMFACS), in FER+'s class names: what the AUC measures
AU_EMOTION = {"AU12": "happy", "AU26": "surprise", "AU25": "surprise", "AU1": "surprise", "AU2": "surprise",
              "AU5": "surprise", "AU4": "angry", "AU7": "angry", "AU23": "angry", "AU10": "disgust", "AU15": "sad",
              "AU17": "sad", "AU20": "fear", "AU14": "contempt"}
DEAD = 0.01  # a blendshape whose largest value over real faces stays below this does not move (mesh.ACTION_UNITS)


def au_auc(args) -> None:
    """Whether each AU moves (its 99th percentile and largest value) and how well it separates its prototypical
    emotion from the rest, and which blendshapes never move: PublicTest faces with a FER+ majority label, drawn into
    scenes at 200 px."""
    import ferkit
    from _data import fer2013
    from ferkit.data import load_dataset, read_ferplus_votes, with_ferplus
    from ferkit.mesh import ACTION_UNITS, BLENDSHAPES
    from ferkit.scenes import place_face

    path = fer2013(args.data)
    ds = load_dataset(path)
    test = with_ferplus(ds, read_ferplus_votes(path.parent / "fer2013new.csv", len(ds))).split("PublicTest")
    rec = ferkit.load_recognizer(features="blendshapes")
    rows, shapes, labels = [], [], []
    for i in np.random.default_rng(2).permutation(len(test.labels))[:args.n]:
        frame = place_face(np.full((400, 400, 3), 110, np.uint8), test.pixels[i], 200, (200, 200))
        faces = rec.analyze(frame)
        if len(faces) == 1:
            rows.append(faces[0].action_units)
            shapes.append([faces[0].blendshapes[b] for b in BLENDSHAPES])
            labels.append(test.classes[test.labels[i]])
    labels, shapes = np.array(labels), np.array(shapes)
    top = shapes.max(0)
    print(f"AU estimates against FER+ majority labels, {len(labels)} PublicTest faces in scenes at 200 px "
          f"(AUC of the AU for its emotion against every other face; 0.5 = chance):")
    for au in ACTION_UNITS:
        s = np.array([r[au] for r in rows])
        emotion = AU_EMOTION.get(au)
        against = f"vs {emotion:8s} (n={int((labels == emotion).sum()):3d}): AUC {auc(labels == emotion, s):.3f}" \
            if emotion else "(no prototypical emotion)"
        print(f"  {au:5s} 99th percentile {np.percentile(s, 99):.3f}, largest {s.max():.3f}   {against}")
    print(f"blendshapes whose largest value stays under {DEAD} on these faces: "
          + ", ".join(f"{b} {v:.4f}" for b, v in zip(BLENDSHAPES, top) if v < DEAD))


def speed(args) -> None:
    """ms per 640x480 frame with one face: analyze without features, with each, with all; and the stage alone."""
    import ferkit

    photo = cv2.imread(str(PHOTO))
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[:, 64:576] = cv2.resize(photo, (512, 480))
    recs = {"no features": ferkit.load_recognizer(threads=1)}
    for f in ("mesh", "blendshapes", "pose", "all"):
        recs[f"features={f}"] = ferkit.load_recognizer(threads=1, features=f)
    times = {k: [] for k in recs}
    for _ in range(args.repeats):
        for k, r in recs.items():  # interleaved, so load on the machine falls on every setting alike
            t = time.perf_counter()
            r.analyze(frame)
            times[k].append(time.perf_counter() - t)
    stage = recs["features=all"].face_mesh
    d = recs["no features"].detect(frame)
    rois = stage.rois(d.boxes, d.landmarks)
    st = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        stage.run(frame, rois)
        st.append(time.perf_counter() - t)
    base = np.median(times["no features"])
    print(f"analyze on a 640x480 frame with one face, one thread, median of {args.repeats} (interleaved):")
    for k, v in times.items():
        print(f"  {k:22s} {np.median(v) * 1000:6.1f} ms  ({np.median(v) / base:.2f}x)   fastest {min(v) * 1000:6.1f} ms")
    print(f"  the stage alone (mesh + blendshapes + pose, one face): median {np.median(st) * 1000:.1f} ms, "
          f"fastest {min(st) * 1000:.1f} ms")
    mesh_against_tflite(args, stage)


def mesh_against_tflite(args, stage) -> None:
    """The mesh model alone, ferkit's ONNX file on ONNX Runtime against MediaPipe's own TFLite file on LiteRT with
    XNNPACK, one thread each, interleaved (needs the bundle and ai-edge-litert)."""
    import tempfile
    import zipfile

    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return
    if not Path(args.task).is_file():
        return
    tmp = Path(tempfile.mkdtemp())
    zipfile.ZipFile(args.task).extractall(tmp)
    lite = Interpreter(str(tmp / "face_landmarks_detector.tflite"), num_threads=1)
    lite.allocate_tensors()
    slot = lite.get_input_details()[0]["index"]
    x = np.random.default_rng(0).random((1, 256, 256, 3), dtype=np.float32)
    theirs, ours = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        lite.set_tensor(slot, x)
        lite.invoke()
        theirs.append(time.perf_counter() - t)
        t = time.perf_counter()
        stage._mesh.run(None, {stage._mesh_input: x})
        ours.append(time.perf_counter() - t)
    print(f"  the mesh model alone, one thread: ferkit's ONNX on ONNX Runtime median {np.median(ours) * 1000:.1f} ms "
          f"(fastest {min(ours) * 1000:.1f}); MediaPipe's TFLite on LiteRT/XNNPACK median {np.median(theirs) * 1000:.1f} ms "
          f"(fastest {min(theirs) * 1000:.1f})")


def live(args) -> None:
    """`ferkit live`'s loop end to end (decode, track, classify, face features, draw) on a 640x480 clip of the sample
    photo drifting and turning, as fast as it goes: frames per second without and with every feature, same run."""
    import tempfile

    import ferkit
    from ferkit.live import draw_live, live_frames, open_source
    from ferkit.track import FaceTracker

    photo = cv2.resize(cv2.imread(str(PHOTO)), (360, 360))
    path = Path(tempfile.mkdtemp()) / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (640, 480))
    for k in range(args.live_frames):
        frame = np.full((480, 640, 3), 90, np.uint8)
        m = cv2.getRotationMatrix2D((180, 180), 10 * np.sin(k / 15), 1.0)
        m[:, 2] += (60 + 80 * (1 + np.sin(k / 40)), 60)
        writer.write(cv2.warpAffine(photo, m, (640, 480), dst=frame, borderMode=cv2.BORDER_TRANSPARENT))
    writer.release()
    print(f"ferkit live's loop on a 640x480 clip with one face ({args.live_frames} frames, default settings: detect "
          f"every 5th frame on a 320-px copy), threads: ONNX Runtime's default:")
    for label, features in (("no features", None), ("features=all", "all"), ("no features", None),
                            ("features=all", "all")):
        rec = ferkit.load_recognizer(features=features)
        tracker = FaceTracker(rec, detect_every=5, detect_side=320, smoothing=0.5)
        source = open_source(path=path)
        n, faces, start = 0, 0, time.perf_counter()
        for lf in live_frames(source, tracker, pace=False):
            draw_live(lf.image, lf.faces, lf.fps, rec.labels)
            n += 1
            faces += len(lf.faces)
        source.cap.release()
        print(f"  {label:14s} {n / (time.perf_counter() - start):6.1f} frames/s  ({faces / max(1, n):.2f} faces per frame)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("calibrate", "parity", "auc", "speed", "live"), action="append")
    p.add_argument("--live-frames", type=int, default=300)
    p.add_argument("--n", type=int, default=300, help="faces per part")
    p.add_argument("--repeats", type=int, default=60)
    p.add_argument("--data", default=None, help="FER-2013 folder (default: $FERKIT_DATA or ../shared/data/fer2013)")
    p.add_argument("--task", default=str(ROOT.parent / "shared" / "models" / "mediapipe" / "face_landmarker.task"))
    args = p.parse_args()
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores")
    for part in args.part or ("calibrate", "parity", "auc", "speed", "live"):
        {"calibrate": calibrate, "parity": parity, "auc": au_auc, "speed": speed, "live": live}[part](args)


if __name__ == "__main__":
    main()
