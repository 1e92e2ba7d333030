"""`ferkit adapt` (issue 30): a head fitted on a user's labelled photos, measured by cross-validation, applied by
load_recognizer(adapter=...) and --adapter. Real models and real faces (FER-2013, the sample photo); no mocks."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import ferkit
from ferkit.adapt import (AdaptConfig, AdapterError, Head, LabelledSet, adapt, collect_faces, cross_validate,
                          estimate, face_features, fit_logistic, format_report, make_folds, read_labelled, verdict,
                          write_report)
from ferkit.cli import main
from ferkit.recognizer import DEFAULT_MODEL, read_metadata, resolve_model
from tests._shift import shift_faces, shifted_sample

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples" / "astronaut.png"
DEFAULT_LABELS = tuple(read_metadata(resolve_model(DEFAULT_MODEL))["labels"])  # what a head made without --model sits on
VALENCE = {"happy": "positive", "surprise": "positive", "neutral": "neutral",
           "angry": "negative", "disgust": "negative", "fear": "negative", "sad": "negative"}


@pytest.fixture(scope="module")
def crops_recognizer():
    """`fer2013` by name: the measured figures in these tests' docstrings are its (it was the default then)."""
    return ferkit.load_recognizer("fer2013", detector="none")


def _names(split, idx) -> list[str]:
    return list(np.array(split.classes)[split.labels[idx]])


def _accuracy(rec, images, labels) -> float:
    faces = [f[0] for f in rec.analyze_many(images)]
    return float(np.mean([f.emotion == t for f, t in zip(faces, labels)]))


def _run(argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(argv)
    out, err = capsys.readouterr()
    return e.value.code, out, err


# ---------------------------------------------------------------- the honest numbers
@pytest.mark.data
def test_adapter_beats_base_under_a_domain_shift(fer_dataset, crops_recognizer, tmp_path):
    """Adapted on 600 shifted Training faces, scored on 500 shifted PrivateTest faces (same shift, same class mix)
    through load_recognizer(adapter=...): at least 5 points above the base model (measured on
    this CPU: 33.6 % -> 42.4 %)."""
    train, test = fer_dataset.split("Training"), fer_dataset.split("PrivateTest")
    idx, labels = shifted_sample(train, 600, seed=0)
    result = adapt(crops_recognizer, LabelledSet(shift_faces(train.pixels[idx]), list(labels), list(map(str, idx))),
                   name="shifted")
    assert result.helps and result.report["accuracy"]["gain_mean"] > 0.05
    result.head.save(tmp_path / "shifted.json")
    adapted = ferkit.load_recognizer("fer2013", detector="none", adapter=tmp_path / "shifted.json")
    t_idx, t_labels = shifted_sample(test, 500, seed=1)
    images = shift_faces(test.pixels[t_idx])
    base, ours = _accuracy(crops_recognizer, images, t_labels), _accuracy(adapted, images, t_labels)
    assert ours >= base + 0.05, (base, ours)


@pytest.mark.data
def test_adapter_on_clean_faces_loses_at_most_a_point(fer_dataset, crops_recognizer, tmp_path):
    """Fitted on 1,000 clean PublicTest faces (FER-2013's class mix: about 16 of them disgust, so the per-class floor
    is lowered to 10), scored on 1,000 clean PrivateTest faces: cross-validation says the head does not help (so
    nothing is written without --force), and were it written it would cost no more than 2 points against the base
    model, which was trained on this domain. Measured on this CPU: 69.6 % -> 67.9 %, with the penalty the inner
    cross-validation chose (100; a fixed penalty of 1 gave 69.0 %: a larger penalty pulls the head towards the class
    mix, away from the base model's answer)."""
    public, private = fer_dataset.split("PublicTest"), fer_dataset.split("PrivateTest")
    idx = np.sort(np.random.default_rng(0).choice(len(public), 1000, replace=False))
    result = adapt(crops_recognizer, LabelledSet(list(public.pixels[idx]), _names(public, idx), list(map(str, idx))),
                   AdaptConfig(min_per_class=10), name="clean")
    assert not result.helps
    result.head.save(tmp_path / "clean.json")
    adapted = ferkit.load_recognizer("fer2013", detector="none", adapter=tmp_path / "clean.json")
    t_idx = np.sort(np.random.default_rng(1).choice(len(private), 1000, replace=False))
    labels = _names(private, t_idx)
    base, ours = _accuracy(crops_recognizer, list(private.pixels[t_idx]), labels), \
        _accuracy(adapted, list(private.pixels[t_idx]), labels)
    assert ours >= base - 0.02, (base, ours)


def test_fit_logistic_matches_scikit_learn():
    """The NumPy Newton fit reaches scikit-learn's optimum of the same objective (sum of cross-entropies +
    l2 / 2 |W|^2, bias unpenalised)."""
    linear_model = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6))
    y = (x @ rng.normal(size=(6, 3)) + rng.normal(size=(300, 3))).argmax(1)
    w, b = fit_logistic(x, y, 3, l2=2.0)
    ref = linear_model.LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000).fit(x, y)
    z_ours, z_ref = x @ w.T + b, ref.decision_function(x)
    np.testing.assert_allclose(z_ours - z_ours.mean(1, keepdims=True), z_ref - z_ref.mean(1, keepdims=True), atol=1e-4)


# ---------------------------------------------------------------- new classes, end to end
def _write_faces(folder: Path, split, idx, label_of) -> None:
    for i in idx:
        label = label_of(split.classes[split.labels[i]])
        (folder / label).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / label / f"{i}.png"), split.pixels[i])


@pytest.mark.data
def test_three_class_head_through_adapt_analyze_batch_and_server(fer_dataset, tmp_path, capsys):
    """positive / negative / neutral from the seven labels: `ferkit adapt` on a folder of face crops, then the head
    through --adapter in analyze and batch, and the server's FERKIT_ADAPTER setting; every output names it."""
    public = fer_dataset.split("PublicTest")
    idx = np.random.default_rng(2).choice(len(public), 150, replace=False)
    _write_faces(tmp_path / "faces", public, idx, VALENCE.get)
    head = tmp_path / "valence.json"
    code, out, err = _run(["adapt", str(tmp_path / "faces"), "--out", str(head), "--no-detect", "--force",
                           "--report", str(tmp_path / "report")], capsys)
    assert code == 0, err
    assert "5-fold cross-validation (stratified), baseline: most common class" in out
    doc = json.loads(head.read_text())
    assert doc["classes"] == ["neutral", "negative", "positive"] and doc["base_model"]["name"] == DEFAULT_MODEL
    # by default three heads are cross-validated on the same folds, on the network's outputs alone, with blendshapes
    # and head pose, and with the mesh embedding too; the best is written, and each is reported
    sets = doc["cross_validation"]["feature_sets"]
    assert list(sets) == ["network outputs alone", "network outputs + blendshapes, head_pose",
                          "network outputs + blendshapes, head_pose, mesh_embedding"]
    k = len(DEFAULT_LABELS)
    assert [s["features"] for s in sets.values()] == [k, k + 52 + 3, k + 52 + 3 + 512]
    assert sum(s["chosen"] for s in sets.values()) == 1
    kept = next(s for s in sets.values() if s["chosen"])
    assert doc["features"]["groups"] == ["log_probabilities", "blendshapes", "head_pose", "mesh_embedding"][
        :{k: 1, k + 55: 3, k + 567: 4}[kept["features"]]]
    assert kept["accuracy_mean"] == max(s["accuracy_mean"] for s in sets.values())
    assert "<- kept" in out and head.stat().st_size < (20_000 if kept["features"] < 100 else 120_000)
    assert "| accuracy" in (tmp_path / "report" / "adapt-report.md").read_text()
    assert cv2.imread(str(tmp_path / "report" / "adapt-confusion.png")) is not None

    one = next((tmp_path / "faces" / "positive").iterdir())
    code, out, err = _run(["analyze", str(one), "--no-detect", "--json", "--adapter", str(head)], capsys)
    face = json.loads(out)[0]["faces"][0]
    assert code == 0 and face["adapter"] == "valence" and set(face["probabilities"]) == {"positive", "negative", "neutral"}
    assert set(face["base_probabilities"]) == set(DEFAULT_LABELS)

    code, _, err = _run(["batch", str(tmp_path / "faces" / "positive"), "--out", str(tmp_path / "rows.csv"),
                         "--detector", "none", "--adapter", str(head), "--workers", "1", "--no-progress"], capsys)
    assert code == 0, err
    import csv
    rows = list(csv.DictReader(open(tmp_path / "rows.csv")))
    assert rows and {r["model"] for r in rows} == {f"{DEFAULT_MODEL}+valence"}
    assert {"prob_positive", "prob_negative", "prob_neutral"} <= set(rows[0]) and "prob_happy" not in rows[0]

    pytest.importorskip("fastapi")
    import httpx

    from tests.server.conftest import start_server

    face_png = cv2.imencode(".png", cv2.resize(public.pixels[idx[0]], (96, 96)))[1].tobytes()
    server, stop = start_server(detector="none", adapter=str(head))  # as `FERKIT_ADAPTER=... ferkit serve` runs it
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            info = client.get("/api/v1/info").json()
            r = client.post("/api/v1/analyze", files={"file": ("face.png", face_png, "image/png")})
    finally:
        stop()
    assert info["model"]["name"] == f"{DEFAULT_MODEL}+valence" and info["labels"] == ["neutral", "negative", "positive"]
    assert r.status_code == 200, r.text
    face = r.json()["faces"][0]
    assert face["adapter"] == "valence" and set(face["probabilities"]) == {"positive", "negative", "neutral"}
    assert set(face["base_probabilities"]) == set(DEFAULT_LABELS)


def _photo_variants(folder: Path) -> None:
    """The sample photo and crops of it around the face, 20 lit as shot ("bright") and 20 darkened ("dim")."""
    photo = cv2.imread(str(PHOTO))
    h, w = photo.shape[:2]
    rng = np.random.default_rng(0)
    for label, gain in (("bright", 1.0), ("dim", 0.35)):
        (folder / label).mkdir(parents=True)
        for i in range(20):
            if i == 0:
                crop = photo
            else:
                x0, y0 = rng.integers(0, w // 6), rng.integers(0, h // 8)
                side = int(rng.integers(int(0.75 * min(h, w)), int(0.9 * min(h, w))))
                crop = photo[y0:y0 + side, x0:x0 + side]
            cv2.imwrite(str(folder / label / f"{i}.jpg"), np.clip(crop * gain, 0, 255).astype(np.uint8))


def test_two_class_head_from_the_sample_photo(tmp_path, capsys):
    """A 2-class head from the sample photo and its crops, faces found by the default detector, then analyze
    --adapter on the photo and `ferkit video --adapter` on a clip of it: the probabilities are over the head's two
    classes and every output names it."""
    _photo_variants(tmp_path / "photos")
    head = tmp_path / "light.json"
    code, out, err = _run(["adapt", str(tmp_path / "photos"), "--out", str(head), "--force", "--folds", "4"], capsys)
    assert code == 0, err
    assert "baseline: most common class" in out
    code, out, err = _run(["analyze", str(PHOTO), "--json", "--adapter", str(head)], capsys)
    face = json.loads(out)[0]["faces"][0]
    assert code == 0 and face["adapter"] == "light" and set(face["probabilities"]) == {"bright", "dim"}
    code, out, _ = _run(["analyze", str(PHOTO), "--adapter", str(head)], capsys)
    assert "1 face (adapter light)" in out and "bright" in out and "dim" in out

    photo = cv2.resize(cv2.imread(str(PHOTO)), (320, 320))  # a 6-frame clip of the photo through `ferkit video`
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5, (320, 320))
    for _ in range(6):
        writer.write(photo)
    writer.release()
    code, _, err = _run(["video", str(tmp_path / "clip.avi"), "--adapter", str(head), "--no-annotate",
                         "--no-progress", "--out", str(tmp_path / "timeline")], capsys)
    meta = json.loads((tmp_path / "timeline" / "timeline.csv.meta.json").read_text())
    assert code == 0 and meta["model"] == f"{DEFAULT_MODEL}+light" and meta["labels"] == ["bright", "dim"], err
    head_row = (tmp_path / "timeline" / "timeline.csv").read_text().splitlines()[0].split(",")
    assert {"prob_bright", "prob_dim", "adapter"} <= set(head_row) and "base_prob_happy" in head_row


def test_an_image_with_several_faces_is_listed_and_skipped_or_gives_its_largest(tmp_path):
    """The sample photo beside a half-size copy of itself: two faces. face="single" skips it with the reason;
    face="largest" keeps the larger face."""
    photo = cv2.imread(str(PHOTO))
    small = cv2.resize(photo, None, fx=0.5, fy=0.5)
    pair = np.full((photo.shape[0], photo.shape[1] + small.shape[1], 3), 255, np.uint8)
    pair[:, :photo.shape[1]] = photo
    pair[:small.shape[0], photo.shape[1]:] = small
    (tmp_path / "happy").mkdir()
    cv2.imwrite(str(tmp_path / "happy" / "pair.jpg"), pair)
    rec = ferkit.load_recognizer()
    data = read_labelled(tmp_path)
    skipped = collect_faces(rec, data)
    assert skipped.faces == [] and skipped.skipped == [(str(tmp_path / "happy" / "pair.jpg"),
                                                         "2 faces (face='largest' keeps the largest)")]
    kept = collect_faces(rec, data, face="largest")
    assert len(kept.faces) == 1 and kept.faces[0].box[0] < photo.shape[1] // 2 + photo.shape[1] // 4
    # a labelled box (the CSV's box column, `ferkit label`'s rows) picks the face at it, here the smaller one
    small_box = (photo.shape[1] + 80, 30, 64, 64)  # YuNet finds it at (598, 35, 53, 53)
    (tmp_path / "faces.csv").write_text("path,label,box\nhappy/pair.jpg,happy,%g %g %g %g\n" % small_box)
    at_box = collect_faces(rec, read_labelled(tmp_path / "faces.csv"))
    assert len(at_box.faces) == 1 and at_box.faces[0].box[0] > photo.shape[1]
    (tmp_path / "bad.csv").write_text("path,label,box\nhappy/pair.jpg,happy,12 30\n")
    with pytest.raises(AdapterError, match=r"bad\.csv row 2: field 'box' is '12 30'; expected four numbers"):
        read_labelled(tmp_path / "bad.csv")


# ---------------------------------------------------------------- honest by construction
@pytest.mark.data
def test_no_gain_writes_nothing_without_force(fer_dataset, tmp_path, capsys):
    """On clean Training faces (the base model's own training data) the head cannot beat it beyond the folds'
    spread: exit status 1 and no file; --force writes it."""
    train = fer_dataset.split("Training")
    idx = np.concatenate([np.flatnonzero(train.labels == c)[:40] for c in (3, 6)])  # happy, neutral
    _write_faces(tmp_path / "faces", train, idx, str)
    head = tmp_path / "head.json"
    code, out, err = _run(["adapt", str(tmp_path / "faces"), "--out", str(head), "--no-detect"], capsys)
    assert code == 1 and not head.exists()
    assert "does not beat the base model beyond the folds' spread" in err and "baseline: base model" in out
    code, _, _ = _run(["adapt", str(tmp_path / "faces"), "--out", str(head), "--no-detect", "--force"], capsys)
    assert code == 0 and head.exists()


def test_grouped_folds_keep_each_group_on_one_side():
    labels = np.repeat([0, 1], 60)
    groups = np.array([f"p{i % 13}" for i in range(120)])
    folds = make_folds(labels, groups, 5, seed=3)
    for g in np.unique(groups):
        assert len(set(folds[groups == g])) == 1
    assert sorted(set(folds)) == [0, 1, 2, 3, 4]
    stratified = make_folds(labels, None, 5)
    assert all(abs((labels[stratified == f] == 0).sum() - 12) <= 1 for f in range(5))
    with pytest.raises(AdapterError, match="3 persons/groups for 5 grouped folds"):
        make_folds(labels, np.array(["a", "b", "c"] * 40), 5)


@pytest.mark.data
def test_csv_with_person_column_gives_grouped_folds(fer_dataset, crops_recognizer, tmp_path):
    public = fer_dataset.split("PublicTest")
    idx = np.concatenate([np.flatnonzero(public.labels == c)[:30] for c in (3, 4)])  # happy, sad
    lines = ["path,label,person"]
    for n, i in enumerate(idx):
        cv2.imwrite(str(tmp_path / f"{i}.png"), public.pixels[i])
        lines.append(f"{i}.png,{public.classes[public.labels[i]]},person{n % 6}")
    (tmp_path / "photos.csv").write_text("\n".join(lines) + "\n")
    data = read_labelled(tmp_path / "photos.csv")
    assert data.groups[:2] == ["person0", "person1"] and data.names[0].endswith("row 2 (%d.png)" % idx[0])
    result = adapt(crops_recognizer, data, AdaptConfig(folds=3))
    report = result.report
    assert report["grouped"] and set(report["per_group"]) == {f"person{k}" for k in range(6)}
    assert sum(v["n"] for v in report["per_group"].values()) == 60
    assert report["warnings"] == []
    # the figure folds that ignore persons would give is shown beside the grouped one, and with 6 persons the
    # terminal lists each person's figures
    assert set(report["ungrouped"]) == {"base_mean", "adapted_mean", "gain_mean"}
    text = format_report(report)
    assert "on folds that ignore the person column" in text and "per person (accuracy base -> adapted" in text
    assert all(f"person{k} " in text for k in range(6))
    files = write_report(result, tmp_path / "report")
    assert "## Per person (out of fold)" in files[0].read_text()
    # the same photos without the person column: a warning, in the report too
    rows = [(tmp_path / f"{i}.png", public.classes[public.labels[i]], None, None) for i in idx]
    with pytest.warns(UserWarning, match="no person column: photos of one person may sit in both"):
        loose = estimate(crops_recognizer, rows, AdaptConfig(folds=3))
    assert not loose["grouped"] and "no person column" in loose["warnings"][0] and "ungrouped" not in loose


def test_the_small_group_verdict_explains_itself_person_by_person():
    """With fewer than SMALL_GROUPS persons, a verdict of no gain says why the rule is cautious there and counts the
    persons the head did better and worse for; with many persons, or a gain, it does not."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 70)
    groups = np.array([f"p{i % 7}" for i in range(140)])
    x = rng.normal(size=(140, 3)) + 0.15 * y[:, None]  # a weak signal: gains swing with who is in the fold
    base = np.log(np.full((140, 2), 0.5))
    report = cross_validate(x, y, base, ("a", "b"), ("a", "b"), groups, AdaptConfig())
    text = verdict(dict(report, helps=False))
    assert "With 7 persons in 5 folds" in text and "did better for" in text and "of 7 persons" in text
    assert "--force writes the head" in text
    assert "persons" not in verdict(dict(report, helps=False, per_group={f"q{i}": {} for i in range(20)}))
    assert verdict(dict(report, helps=True)).startswith("the adapter helps")


@pytest.mark.data
def test_labels_differing_in_case_are_one_class_not_a_new_one(fer_dataset, crops_recognizer, tmp_path):
    """"Happy" beside "happy" once became a new class, the baseline "most common class" and the gain +46.9 %: now
    they are one class, the model's own, with a warning naming both spellings."""
    public = fer_dataset.split("PublicTest")
    idx = np.concatenate([np.flatnonzero(public.labels == c)[:40] for c in (3, 6)])  # happy, neutral
    labels = [("Happy" if n % 2 else "happy") if public.labels[i] == 3 else "neutral" for n, i in enumerate(idx)]
    data = LabelledSet(list(public.pixels[idx]), labels, list(map(str, idx)))
    with pytest.warns(UserWarning, match=r"'Happy' \(20\), 'happy' \(20\) are one class, 'happy' \(the model's own"):
        result = adapt(crops_recognizer, data)
    assert result.head.classes == ("happy", "neutral") and result.report["baseline"] == "base model"
    assert result.head.info["counts"] == {"happy": 40, "neutral": 40}


# ---------------------------------------------------------------- clear errors
@pytest.mark.data
def test_too_few_images_per_class(fer_dataset, crops_recognizer, tmp_path):
    public = fer_dataset.split("PublicTest")
    idx = np.concatenate([np.flatnonzero(public.labels == 3)[:25], np.flatnonzero(public.labels == 6)[:7]])
    _write_faces(tmp_path, public, idx, str)
    with pytest.raises(AdapterError, match=r"too few usable images in 'neutral' \(7\): need at least 20 per class"):
        adapt(crops_recognizer, read_labelled(tmp_path))
    with pytest.raises(AdapterError, match="one class"):
        adapt(crops_recognizer, LabelledSet([public.pixels[0]] * 30, ["happy"] * 30, ["x"] * 30))


def test_unreadable_image_and_bad_csv_rows_are_named(crops_recognizer, tmp_path):
    (tmp_path / "happy").mkdir()
    cv2.imwrite(str(tmp_path / "happy" / "ok.png"), np.full((48, 48), 128, np.uint8))
    (tmp_path / "happy" / "broken.jpg").write_bytes(b"%PDF-1.4 not an image")
    with pytest.raises(AdapterError, match=r"happy/broken\.jpg: unreadable image"):
        collect_faces(crops_recognizer, read_labelled(tmp_path))
    (tmp_path / "list.csv").write_text("path,label\nhappy/ok.png,happy\nhappy/missing.png,sad\n")
    with pytest.raises(AdapterError, match=r"list\.csv row 3: happy/missing\.png: no such file"):
        read_labelled(tmp_path / "list.csv")
    (tmp_path / "nolabel.csv").write_text("file,emotion\nhappy/ok.png,happy\n")
    with pytest.raises(AdapterError, match="no 'path' or 'label' column"):
        read_labelled(tmp_path / "nolabel.csv")
    (tmp_path / "empty.csv").write_text("path,label\nhappy/ok.png,\n")
    with pytest.raises(AdapterError, match=r"empty\.csv row 2: empty 'label'"):
        read_labelled(tmp_path / "empty.csv")


def _small_head(rec, name="h", feature_names=None) -> Head:
    names = tuple(feature_names or [f"log_probabilities:{c}" for c in rec.labels])
    d = len(names)
    return Head(name, ("a", "b"), names, np.zeros(d), np.ones(d), np.vstack([np.ones(d), -np.ones(d)]) / d,
                np.zeros(2), {"name": rec.name, "file": rec.model_path.name,
                              "sha256": __import__("ferkit.adapt", fromlist=["x"]).file_sha256(rec.model_path),
                              "labels": list(rec.labels)})


def test_head_for_another_base_model_is_refused(crops_recognizer, tmp_path):
    _small_head(crops_recognizer).save(tmp_path / "h.json")
    assert ferkit.load_recognizer("fer2013", detector="none", adapter=tmp_path / "h.json").labels == ("a", "b")
    with pytest.raises(AdapterError, match=r"fitted on the model 'fer2013' \(fer2013\.onnx.*not on fer2013-robust\.onnx"):
        ferkit.load_recognizer("fer2013-robust", detector="none", adapter=tmp_path / "h.json")
    with pytest.raises(SystemExit) as e:
        main(["analyze", str(PHOTO), "--model", "fer2013-robust", "--adapter", str(tmp_path / "h.json")])
    assert e.value.code == 1
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "ferkit", "serve", "--model", "fer2013-robust", "--port", "0",
                        "--adapter", str(tmp_path / "h.json")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "not on fer2013-robust.onnx" in r.stderr and "open http" not in r.stdout, r.stderr
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(AdapterError, match=r"bad\.json: not an adapter file"):
        ferkit.load_recognizer(detector="none", adapter=tmp_path / "bad.json")


def test_head_needing_blendshapes_refuses_a_face_without_them(crops_recognizer):
    """The face-features stage (blendshapes, head pose) joins Face later: a head recorded with blendshapes refuses
    a face that lacks them, and uses them where the face carries them."""
    rec = crops_recognizer
    names = [f"log_probabilities:{c}" for c in rec.labels] + ["blendshapes:jawOpen", "head_pose:yaw"]
    head = _small_head(rec, "bs", names)
    assert head.feature_groups == ("log_probabilities", "blendshapes", "head_pose")
    face = rec.analyze(np.full((48, 48), 120, np.uint8))[0]
    with pytest.raises(AdapterError, match="needs the face's blendshapes"):
        head.apply(face)
    face.blendshapes, face.head_pose = {"jawOpen": 0.7, "mouthSmileLeft": 0.1}, {"yaw": 12.0, "pitch": 0.0, "roll": 1.0}
    relabelled = head.apply(face)
    assert relabelled.adapter == "bs" and set(relabelled.probabilities) == {"a", "b"}
    assert relabelled.base_probabilities == face.probabilities
    np.testing.assert_allclose(face_features(face, names)[-2:], [0.7, 12.0])


def test_head_file_round_trip(crops_recognizer, tmp_path):
    head = _small_head(crops_recognizer)
    head.save(tmp_path / "h.json")
    again = Head.load(tmp_path / "h.json")
    x = np.random.default_rng(0).normal(size=(4, 7))
    np.testing.assert_allclose(again.probabilities(x), head.probabilities(x), atol=1e-6)
    doc = json.loads((tmp_path / "h.json").read_text())
    doc["weights"] = doc["weights"][:1]
    (tmp_path / "cut.json").write_text(json.dumps(doc))
    with pytest.raises(AdapterError, match=r"cut\.json: field 'weights' has shape \(1, 7\), expected \(2, 7\)"):
        Head.load(tmp_path / "cut.json")


def test_malformed_head_files_name_the_field_and_what_was_expected(crops_recognizer, tmp_path):
    """Each malformed field is named with what it holds and what was expected (once: "field 'int' object is not
    iterable")."""
    _small_head(crops_recognizer).save(tmp_path / "h.json")
    good = json.loads((tmp_path / "h.json").read_text())
    cases = [
        (("classes",), 3, r"field 'classes' is 3 \(int\); expected a list of class names"),
        (("features", "names"), "log_probabilities:happy", r"field 'features\.names' is \"log_probabilities:happy\" "
                                                           r"\(str\); expected a list of feature names"),
        (("weights",), [["a", "b"]], r"field 'weights' is \[\[\"a\", \"b\"\]\] \(list\); expected a list of rows of "
                                     r"numbers, one row per class"),
        (("standardise", "scale"), {"x": 1}, r"field 'standardise\.scale' is \{\"x\": 1\} \(dict\); expected a list "
                                             r"of numbers"),
        (("base_model",), "fer2013", r"field 'base_model' is \"fer2013\" \(str\); expected an object with name"),
        (("bias",), None, r"no field 'bias' \(expected a list of numbers\)"),
        (("classes",), ["happy"], r"field 'classes' has 1 class; expected 2 or more"),
    ]
    for keys, value, message in cases:
        doc = json.loads(json.dumps(good))
        inner = doc
        for key in keys[:-1]:
            inner = inner[key]
        if value is None:
            del inner[keys[-1]]
        else:
            inner[keys[-1]] = value
        if keys == ("classes",) and value == ["happy"]:
            doc["weights"], doc["bias"] = doc["weights"][:1], doc["bias"][:1]
        (tmp_path / "bad.json").write_text(json.dumps(doc))
        with pytest.raises(AdapterError, match=r"bad\.json: .*" + message):
            Head.load(tmp_path / "bad.json")


def test_folder_mode_reads_tiff(tmp_path):
    """JAFFE ships as TIFF: a folder of LABEL/*.tiff (and .tif) is read like any other format load_image decodes."""
    from ferkit.adapt import PHOTO_SUFFIXES

    assert {".tif", ".tiff", ".jpg", ".png"} <= set(PHOTO_SUFFIXES)
    photo = cv2.imread(str(PHOTO))
    for label, gain, suffix in (("bright", 1.0, ".tiff"), ("dim", 0.4, ".tif")):
        (tmp_path / label).mkdir()
        for i in range(2):
            assert cv2.imwrite(str(tmp_path / label / f"{i}{suffix}"), (photo * gain).astype(np.uint8))
    data = read_labelled(tmp_path)
    assert sorted(Path(p).name for p in data.images) == ["0.tif", "0.tiff", "1.tif", "1.tiff"]
    collected = collect_faces(ferkit.load_recognizer(), data)
    assert len(collected.faces) == 4 and collected.labels.count("dim") == 2


def test_case_variants_are_one_class_with_a_note_naming_them():
    from ferkit.adapt import unify_case

    labels, notes = unify_case(["Happy", "happy", "HAPPY ", "Bored", "bored", "bored"], ferkit.EMOTIONS)
    assert labels == ["happy", "happy", "happy", "bored", "bored", "bored"]
    assert notes == ["labels compared without case: 'HAPPY ' (1), 'Happy' (1), 'happy' (1) are one class, 'happy' "
                     "(the model's own label)",
                     "labels compared without case: 'Bored' (1), 'bored' (2) are one class, 'bored'"]
    assert unify_case(["happy", "sad"], ferkit.EMOTIONS) == (["happy", "sad"], [])


def test_embedding_is_one_more_output_of_the_same_mesh_run():
    """features=("embedding",) reads the mesh model's shared 128x2x2 map from the run that gives the mesh: the shipped
    file unchanged, the other outputs identical to a recognizer without it, 512 finite numbers per face."""
    from ferkit.mesh import MESH_MODEL, with_shared_map_output

    before = MESH_MODEL.read_bytes()
    plain = ferkit.load_recognizer(features=("blendshapes", "pose"))
    both = ferkit.load_recognizer(features=("blendshapes", "pose", "embedding"))
    assert MESH_MODEL.read_bytes() == before and len(with_shared_map_output(before)) > len(before)
    a, b = plain.analyze(str(PHOTO))[0], both.analyze(str(PHOTO))[0]
    assert a.mesh_embedding is None and b.mesh_embedding.shape == (512,) and np.isfinite(b.mesh_embedding).all()
    assert a.blendshapes == b.blendshapes and a.head_pose == b.head_pose and a.probabilities == b.probabilities
    assert "mesh_embedding" not in b.to_dict()


def test_a_head_on_the_embedding_round_trips_and_turns_the_stage_on(crops_recognizer, tmp_path):
    names = [f"log_probabilities:{c}" for c in crops_recognizer.labels] + [f"mesh_embedding:{i}" for i in range(512)]
    head = _small_head(crops_recognizer, "emb", names)
    assert head.feature_groups == ("log_probabilities", "mesh_embedding") and head.stage_features == ("embedding",)
    head.save(tmp_path / "emb.json")
    again = Head.load(tmp_path / "emb.json")
    assert again.feature_names == head.feature_names and again.stage_features == ("embedding",)
    rec = ferkit.load_recognizer("fer2013", adapter=tmp_path / "emb.json")
    assert rec.features == ("embedding",)
    face = rec.analyze(str(PHOTO))[0]
    assert face.adapter == "emb" and face.mesh_embedding.shape == (512,)
    x = face_features(face, names)[None]
    np.testing.assert_allclose(list(face.probabilities.values()), again.probabilities(x)[0], atol=1e-6)


# ---------------------------------------------------------------- the mesh embedding as a feature group
def _lit_from_one_side(split, idx, seed: int) -> tuple[list[np.ndarray], list[str]]:
    """FER-2013 faces lit from the left or the right (a brightness ramp from 1 to 0.15 across the face, the side drawn
    at random), each at 120 px in a 320x240 frame: a label in the face's appearance that the emotion network's
    seven outputs and the mesh's geometry (blendshapes, pose) barely see."""
    from ferkit.scenes import scene

    side = np.random.default_rng(seed).integers(0, 2, len(idx))
    ramp = np.linspace(1.0, 0.15, 48, dtype=np.float32)
    frames = [scene((split.pixels[i] * (ramp if s else ramp[::-1])[None, :]).astype(np.uint8), width=320,
                    height=240, face_size=120) for i, s in zip(idx, side)]
    return frames, ["lit_left" if s else "lit_right" for s in side]


@pytest.fixture(scope="module")
def embedding_recognizer():
    """`fer2013` by name: the figures measured in these tests' docstrings are its (it was the default then)."""
    return ferkit.load_recognizer("fer2013", features=("blendshapes", "pose", "embedding"))


@pytest.mark.data
def test_the_embedding_group_wins_where_the_label_is_in_its_view(fer_dataset, embedding_recognizer, tmp_path):
    """Lit from the left or the right: the head with the embedding is kept, well above the heads without it (measured
    on this CPU: 56.3 % on the network's outputs, 55.8 % with blendshapes and pose, 70.0 % with the embedding); the
    head file records it, and loaded by a recognizer without features it turns the stage on and scores faces it
    never saw, PrivateTest faces lit the same way."""
    public, private = fer_dataset.split("PublicTest"), fer_dataset.split("PrivateTest")
    frames, labels = _lit_from_one_side(public, np.sort(np.random.default_rng(0).choice(len(public), 200, False)), 0)
    with pytest.warns(UserWarning, match="no person column"):
        result = adapt(embedding_recognizer, LabelledSet(frames, labels, [str(i) for i in range(len(frames))]),
                       name="light")
    sets = result.report["feature_sets"]
    with_embedding = sets["network outputs + blendshapes, head_pose, mesh_embedding"]
    assert with_embedding["chosen"] and result.helps
    assert with_embedding["accuracy_mean"] > max(s["accuracy_mean"] for s in sets.values() if not s["chosen"]) + 0.05
    assert result.head.feature_groups[-1] == "mesh_embedding" and result.head.info["l2"] in ferkit.adapt.L2_GRID
    result.head.save(tmp_path / "light.json")
    assert Head.load(tmp_path / "light.json").feature_names == result.head.feature_names
    adapted = ferkit.load_recognizer("fer2013", adapter=tmp_path / "light.json")
    assert adapted.features == ("blendshapes", "pose", "embedding")
    frames, labels = _lit_from_one_side(private, np.sort(np.random.default_rng(1).choice(len(private), 200, False)), 1)
    right = [faces[0].emotion == t for faces, t in zip(adapted.analyze_many(frames), labels) if len(faces) == 1]
    assert len(right) >= 150 and np.mean(right) >= 0.65, (len(right), np.mean(right))  # measured: 79.2 % of 197


@pytest.mark.data
def test_the_embedding_group_is_not_chosen_where_it_only_adds_noise(fer_dataset, embedding_recognizer):
    """FER-2013 emotions under the tests' camera shift, drawn into frames: the embedding of a blurred 48-px face
    enlarged says little about its emotion, and the head on the network's outputs is kept (measured on this CPU on
    423 such faces: 47.0 % against 32.2 % with the embedding)."""
    from ferkit.scenes import scene

    train = fer_dataset.split("Training")
    idx, labels = shifted_sample(train, 300, seed=0)
    frames = [np.dstack([scene(c, width=320, height=240, face_size=120) for c in cv2.split(face)])
              for face in shift_faces(train.pixels[idx])]
    with pytest.warns(UserWarning, match="no person column"):
        result = adapt(embedding_recognizer, LabelledSet(frames, list(labels), [str(i) for i in idx]),
                       AdaptConfig(min_per_class=5))
    sets = result.report["feature_sets"]
    assert not sets["network outputs + blendshapes, head_pose, mesh_embedding"]["chosen"]
    assert "mesh_embedding" not in result.head.feature_groups
    assert sets["network outputs alone"]["chosen"]
