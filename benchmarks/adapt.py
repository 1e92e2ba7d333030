"""`ferkit adapt`'s figures (docs/adapt.md): what a head fitted on shifted faces gains, what one fitted on clean faces
costs, what the face features (blendshapes and head pose; the face mesh's 512-number embedding) add where the face
mesh has pixels to work on, how long adapting 1,000 photos takes on this CPU, and how big the head file is.

    python -m benchmarks.adapt [--data DIR] [--faces N] [--sections 1,2,3,4,5,6] > docs/benchmarks/adapt.txt

Protocol (the project's): heads are fitted on Training (the shifted set) or PublicTest (clean), and scored by
cross-validation on those same faces and on PrivateTest faces they never saw; nothing is chosen on PrivateTest. The
shift (tests/_shift.py: blur, a colour cast, JPEG quality 20, a class mix with more neutral and sad faces) was
picked among four strengths by cross-validation on Training faces alone. Sections 1-2 run 48x48 crops (detector
none); sections 3-4 draw each face at 200 px into a 640x480 frame (ferkit.scenes.scene, per colour channel for the
shifted faces) and run the default detector with features=("blendshapes", "pose", "embedding"): the faces it finds
once each (none, or several, are left out) feed four answers, the base model's argmax and heads on the feature
groups `ferkit adapt` compares (log-probabilities; + 52 blendshapes + 3 pose angles; + the 512-number embedding), on
the same faces and the same folds, each penalty chosen inside the training folds (adapt.choose_l2).
"""
from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

import ferkit
from benchmarks._data import cpu_name, fer2013
from ferkit.adapt import (FEATURE_STEPS, AdaptConfig, Collected, LabelledSet, adapt, available_features,
                          base_predictions, choose_l2, collect_faces, cross_validate, face_features, fit_head_arrays,
                          format_report)
from ferkit.data import load_dataset
from ferkit.head import Head
from ferkit.scenes import scene
from tests._shift import shift_faces, shifted_sample  # the shift the tests use


def accuracy(rec, images, labels) -> float:
    return float(np.mean([faces[0].emotion == t for faces, t in zip(rec.analyze_many(images), labels)]))


def held_out(result, rec, images, labels, folder: Path) -> tuple[float, float]:
    """(base, adapted) accuracy on faces the head never saw, the head loaded from its file as users load it."""
    path = folder / f"{result.head.name}.json"
    result.head.save(path)
    adapted = ferkit.load_recognizer(detector="none", adapter=path)
    return accuracy(rec, images, labels), accuracy(adapted, images, labels)


def names(split, idx) -> list[str]:
    return list(np.array(split.classes)[split.labels[idx]])


FEATURES = ("blendshapes", "pose", "embedding")  # what `ferkit adapt` loads the recognizer with by default
FRAME = dict(width=640, height=480, face_size=200)
CHUNK = 100                         # frames built and analysed at a time: 1,000 colour frames would take 0.9 GB


def frame(face: np.ndarray) -> np.ndarray:
    """A 48x48 face (grey, or BGR for the shifted faces) -> a 640x480 frame holding it at 200 px."""
    if face.ndim == 2:
        return scene(face, **FRAME)
    return np.dstack([scene(channel, **FRAME) for channel in cv2.split(face)])


def collect_scenes(rec, faces, labels) -> Collected:
    """Each face drawn into a frame and run once through `rec` (adapt.collect_faces: frames with no face or several
    are skipped)."""
    kept = Collected([], [], [], None)
    for start in range(0, len(faces), CHUNK):
        part = range(start, min(start + CHUNK, len(faces)))
        got = collect_faces(rec, LabelledSet([frame(faces[i]) for i in part], [labels[i] for i in part],
                                             [str(i) for i in part]))
        kept.faces += got.faces
        kept.labels += got.labels
        kept.names += got.names
        kept.skipped += got.skipped
    return kept


def feature_table(collected: Collected, names: list[str], classes, base_labels) -> tuple[np.ndarray, np.ndarray,
                                                                                         np.ndarray]:
    """-> features (N, D) in the order of `names`, class indices (N,) over `classes`, base probabilities (N, K) over
    the model's `base_labels`."""
    x = np.stack([face_features(f, names) for f in collected.faces])
    y = np.array([classes.index(c) for c in collected.labels])
    base = np.array([[f.probabilities[c] for c in base_labels] for f in collected.faces])
    return x, y, base


def compare_heads(rec, fit: Collected, test: Collected, fit_name: str, test_name: str, classes=None) -> None:
    """Base argmax and a head per step of adapt.FEATURE_STEPS (each adding its groups to the last): 5-fold CV on
    `fit` (the same folds for every head, each fold's penalty chosen inside its training part) and, fitted on all of
    `fit` (its penalty chosen on `fit` alone), accuracy on `test`. `classes`: the labels (default the model's);
    where they are not the model's, the baseline is the most common class of `fit`."""
    config, base_labels = AdaptConfig(), tuple(rec.labels)
    classes = tuple(classes or base_labels)
    for what, c in ((fit_name, fit), (test_name, test)):
        counts = ", ".join(f"{k} {c.labels.count(k)}" for k in classes)
        print(f"{what}: {len(c.faces)} faces found in {len(c.faces) + len(c.skipped)} frames "
              f"({len(c.skipped)} left out: no face or several); {counts}")
    names = available_features(fit.faces[0])
    for f in fit.faces[1:] + test.faces:
        offered = set(available_features(f))
        names = [n for n in names if n in offered]
    x, y, base = feature_table(fit, names, classes, base_labels)
    tx, ty, tbase = feature_table(test, names, classes, base_labels)
    heads, groups = {}, []
    for step in FEATURE_STEPS:
        groups += step
        cols = [i for i, n in enumerate(names) if n.partition(":")[0] in groups]
        heads[f"{' + '.join(g for g in groups if any(n.startswith(g + ':') for n in names))} ({len(cols)})"] = cols
    rows, per_fold = [], []
    for label, cols in heads.items():
        t0 = time.perf_counter()
        report = cross_validate(x[:, cols], y, base, base_labels, classes, None, config)
        l2 = choose_l2(x[:, cols], y, len(classes), None, config, config.seed)
        mean, scale, w, b = fit_head_arrays(x[:, cols], y, len(classes), l2)
        seconds = time.perf_counter() - t0
        print(f"head on {label} (CV with its inner penalty choice and the final fit: {seconds:.1f} s):\n"
              f"{format_report(report)}")
        held = float(np.mean((((tx[:, cols] - mean) / scale) @ w.T + b).argmax(1) == ty))
        rows.append((f"head on {label}", report["accuracy"], held))
        per_fold.append(np.array([p["adapted_accuracy"] for p in report["per_fold"]]))
    acc = rows[0][1]
    fixed, _ = base_predictions(tbase, base_labels, classes)
    base_held = float(np.mean((fixed if fixed is not None else np.bincount(y).argmax()) == ty))
    table = [("", f"5-fold CV, {fit_name} (mean ± sd)", f"held out, {test_name}"),
             ("base argmax", f"{acc['base_mean']:.1%} ± {acc['base_std']:.1%}", f"{base_held:.1%}")]
    table += [(label, f"{a['adapted_mean']:.1%} ± {a['adapted_std']:.1%} (gain {a['gain_mean']:+.1%} ± "
                      f"{a['gain_std']:.1%})", f"{held:.1%} ({held - base_held:+.1%})") for label, a, held in rows]
    print()
    for row in table:
        print(f"{row[0]:75}{row[1]:42}{row[2]}")
    for i in range(1, len(rows)):
        extra = per_fold[i] - per_fold[i - 1]
        print(f"{rows[i][0]} over the head before it, per fold: {extra.mean():+.1%} ± {extra.std(ddof=1):.1%} (CV), "
              f"{rows[i][2] - rows[i - 1][2]:+.1%} (held out)")


def lit_from_one_side(split, idx, seed: int) -> tuple[list[np.ndarray], list[str]]:
    """FER-2013 faces lit from the left or the right (a brightness ramp from 1 to 0.15 across the face, the side at
    random), each at 200 px in a 640x480 frame: a label in the face's appearance, not its expression (the test's
    set, tests/test_adapt.py, at the benchmark's frame size)."""
    side = np.random.default_rng(seed).integers(0, 2, len(idx))
    ramp = np.linspace(1.0, 0.15, 48, dtype=np.float32)
    faces = [(split.pixels[i] * (ramp if s else ramp[::-1])[None, :]).astype(np.uint8) for i, s in zip(idx, side)]
    return faces, ["lit_left" if s else "lit_right" for s in side]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="FER-2013 folder or file (default: $FERKIT_DATA, else ../shared/data/fer2013)")
    ap.add_argument("--faces", type=int, default=1000, help="faces per set in sections 1 and 3-6 (default 1000)")
    ap.add_argument("--sections", default="1,2,3,4,5,6,7,8", help="which sections to run (default: all)")
    args = ap.parse_args()
    n, sections = args.faces, {int(v) for v in args.sections.split(",")}
    print(f"# python -m benchmarks.adapt --faces {n} --sections {args.sections}  ({datetime.date.today()}; "
          f"{cpu_name()}, {os.cpu_count()} cores, shared with other work: timings are noisy; load average before "
          f"{os.getloadavg()[0]:.1f})")
    ds = load_dataset(fer2013(args.data))
    train, public, private = ds.split("Training"), ds.split("PublicTest"), ds.split("PrivateTest")
    rec = ferkit.load_recognizer(detector="none")
    feat_rec = ferkit.load_recognizer(features=FEATURES)  # yunet, the default detector
    folder = Path(tempfile.mkdtemp())
    s_idx, s_labels = shifted_sample(train, n, seed=0)
    st_idx, st_labels = shifted_sample(private, n, seed=1)
    idx = np.sort(np.random.default_rng(0).choice(len(public), n, replace=False))
    t_idx = np.sort(np.random.default_rng(1).choice(len(private), n, replace=False))

    if 1 in sections:
        print(f"\n## 1. A domain shift: adapted on {n} shifted Training face crops, scored on {n} shifted PrivateTest "
              f"face crops (detector none: no face features)")
        result = adapt(rec, LabelledSet(shift_faces(train.pixels[s_idx]), list(s_labels), list(map(str, s_idx))),
                       name="shifted")
        print(f"adapt set: {len(s_idx)} faces; " + ", ".join(f"{c} {k}" for c, k in result.head.info["counts"].items()))
        print(format_report(result.report))
        base, ours = held_out(result, rec, shift_faces(private.pixels[st_idx]), st_labels, folder)
        print(f"held out, {len(st_idx)} shifted PrivateTest faces: base {base:.1%}, adapted {ours:.1%} "
              f"({ours - base:+.1%})")

    if 2 in sections:
        print("\n## 2. No shift: adapted on all 3,589 clean PublicTest face crops, scored on all 3,589 clean "
              "PrivateTest face crops")
        every = np.arange(len(public))
        result = adapt(rec, LabelledSet(list(public.pixels), names(public, every), list(map(str, every))),
                       name="clean")
        print(format_report(result.report))
        base, ours = held_out(result, rec, list(private.pixels), names(private, np.arange(len(private))), folder)
        print(f"held out, PrivateTest: base {base:.1%}, adapted {ours:.1%} ({ours - base:+.1%})")

    if 3 in sections:
        print(f"\n## 3. Every feature group, shifted: {n} shifted Training faces and {n} shifted PrivateTest faces, "
              f"each at 200 px in a 640x480 frame, through yunet with blendshapes, pose and the embedding")
        sh_fit = collect_scenes(feat_rec, shift_faces(train.pixels[s_idx]), list(s_labels))
        sh_test = collect_scenes(feat_rec, shift_faces(private.pixels[st_idx]), list(st_labels))
        compare_heads(feat_rec, sh_fit, sh_test, "Training scenes", "PrivateTest scenes")

    if 4 in sections:
        print(f"\n## 4. Every feature group, no shift: {n} clean PublicTest faces to fit, {n} clean PrivateTest faces "
              f"held out, each at 200 px in a 640x480 frame, through yunet with blendshapes, pose and the embedding")
        clean_fit = collect_scenes(feat_rec, public.pixels[idx], names(public, idx))
        clean_test = collect_scenes(feat_rec, private.pixels[t_idx], names(private, t_idx))
        compare_heads(feat_rec, clean_fit, clean_test, "PublicTest scenes", "PrivateTest scenes")

    if 5 in sections:
        print(f"\n## 5. Every feature group, a label in the face's appearance: {n // 2} PublicTest faces to fit and "
              f"{n // 2} PrivateTest faces held out, each lit from the left or the right, at 200 px in a 640x480 "
              f"frame")
        light_idx = np.sort(np.random.default_rng(2).choice(len(public), n // 2, replace=False))
        light_t_idx = np.sort(np.random.default_rng(3).choice(len(private), n // 2, replace=False))
        fit_faces, fit_labels = lit_from_one_side(public, light_idx, 0)
        test_faces, test_labels = lit_from_one_side(private, light_t_idx, 1)
        compare_heads(feat_rec, collect_scenes(feat_rec, fit_faces, fit_labels),
                      collect_scenes(feat_rec, test_faces, test_labels), "PublicTest lit", "PrivateTest lit",
                      classes=("lit_left", "lit_right"))
        lit = adapt(feat_rec, LabelledSet([frame(f) for f in fit_faces], fit_labels, list(map(str, light_idx))),
                    name="lit")  # the same set through adapt itself: the head it writes, for section 7's size
        print(f"adapt on the lit set keeps: {', '.join(lit.head.feature_groups)}")
        lit.head.save(folder / "lit.json")

    if 6 in sections:
        print(f"\n## 6. Time to adapt {n} photos on this CPU (one run each; the machine is shared)")
        crops = LabelledSet(list(public.pixels[idx]), names(public, idx), list(map(str, idx)))
        t0 = time.perf_counter()
        adapt(rec, crops, AdaptConfig(min_per_class=10))
        print(f"{n} face crops (48x48, detector none): {time.perf_counter() - t0:.1f} s for the recognizer pass, "
              f"5-fold cross-validation with the inner penalty choice, and the final fit")
        photos = LabelledSet([frame(f) for f in public.pixels[idx]], names(public, idx), list(map(str, idx)))
        for label, photos_rec in (("features off", ferkit.load_recognizer()),
                                  ("blendshapes, pose and the embedding on", feat_rec)):
            t0 = time.perf_counter()
            collected = collect_faces(photos_rec, photos)
            pass_seconds = time.perf_counter() - t0
            result = adapt(photos_rec, photos, AdaptConfig(min_per_class=10), name="photos")
            seconds = time.perf_counter() - t0 - pass_seconds
            print(f"{n} frames (640x480, a FER-2013 face of 200 px placed in each, yunet detector, {label}): "
                  f"{seconds:.1f} s for adapt (one pass over the images, then every head's cross-validation and the "
                  f"final fit; the pass alone, timed before it: {pass_seconds:.1f} s); {len(collected.faces)} faces "
                  f"kept; {len(result.head.feature_names)} features in the head kept")
            print(format_report(result.report))
        result.head.save(folder / "photos-features.json")

    if 7 in sections:
        print("\n## 7. The head file")
        for path in sorted(folder.glob("*.json")):
            head = Head.load(path)
            print(f"{path.name}: {path.stat().st_size / 1000:.1f} kB ({len(head.classes)} classes x "
                  f"{len(head.feature_names)} features: {', '.join(head.feature_groups)}; with its CV figures)")
    if 8 in sections:
        print("\n## 8. What the embedding costs: analyze on the sample photo with blendshapes and pose, without and "
              "with the embedding (the same mesh run, one more output), 5 rounds of 20 calls each, alternating")
        from ferkit.images import load_image
        from ferkit.mesh import FaceMesh

        photo = load_image(Path(__file__).resolve().parents[1] / "examples" / "astronaut.png")
        recs = {"without": ferkit.load_recognizer(features=("blendshapes", "pose")),
                "with": ferkit.load_recognizer(features=("blendshapes", "pose", "embedding"))}
        times = {k: [] for k in recs}
        for _ in range(5):
            for k, r in recs.items():
                t0 = time.perf_counter()
                for _ in range(20):
                    r.analyze(photo)
                times[k].append((time.perf_counter() - t0) / 20 * 1000)
        for k, v in times.items():
            print(f"{k} the embedding: {np.median(v):.1f} ms a call (median of 5 rounds; rounds {min(v):.1f}-"
                  f"{max(v):.1f})")
        opened = {}
        for k, features in (("without", ("mesh",)), ("with", ("mesh", "embedding"))):
            t0 = time.perf_counter()
            for _ in range(5):
                FaceMesh(features)
            opened[k] = (time.perf_counter() - t0) / 5 * 1000
        print(f"opening the stage: {opened['without']:.0f} ms without the embedding, {opened['with']:.0f} ms with it "
              f"(the graph's output added on the protobuf bytes)")
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
