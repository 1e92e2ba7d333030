"""The default model, chosen for agreement with people (docs/quality.md, 2026-12-07, issue 37), and what reads its
labels: its published figures reproduce from `ferkit evaluate`, heads fitted on the old default are refused with the
model they need, and every label of every shipped model has a music mood."""
import json

import numpy as np
import pytest

import ferkit
from ferkit.head import AdapterError, Head, file_sha256
from ferkit.music.moods import MOODS
from ferkit.recognizer import DEFAULT_MODEL, WEIGHTS_DIR, read_metadata

from tests.conftest import ROOT

PHOTO = ROOT / "examples" / "astronaut.png"


@pytest.mark.data
def test_the_defaults_published_figures_reproduce_from_ferkit_evaluate(fer_dir, tmp_path):
    """Agreement with the FER+ majority (7 classes), FER-2013's labels and the headline figure of the default's
    metrics file are what `ferkit evaluate` scores today on PrivateTest, to the face."""
    from ferkit.data import fer2013_file
    from ferkit.evaluate import evaluate_model

    metrics = json.loads((WEIGHTS_DIR / f"{DEFAULT_MODEL}.metrics.json").read_text())
    results = evaluate_model(DEFAULT_MODEL, fer2013_file(fer_dir), tmp_path, tta="none")
    sets = results["sets"]
    people, labels = sets[results["agreement"]]["none"], sets[results["fer2013_labels"]]["none"]
    assert people["n"] == metrics["agreement"]["n"] == 3137  # the FER+ majority's PrivateTest faces in seven classes
    assert people["accuracy"] == pytest.approx(metrics["agreement"]["accuracy"], abs=1e-4)
    assert labels["n"] == metrics["fer2013_labels"]["n"] == 3589
    assert labels["accuracy"] == pytest.approx(metrics["fer2013_labels"]["accuracy"], abs=1e-4)
    assert sets[results["main"]]["none"]["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-4)
    if "accuracy_over_seven" in metrics["agreement"]:
        assert people["accuracy_over_seven"] == pytest.approx(metrics["agreement"]["accuracy_over_seven"], abs=1e-4)


def test_every_shipped_model_publishes_agreement_fer2013_figure_and_speed():
    """What `ferkit models` shows: each metrics file carries the three figures, the speed with its CPU and command."""
    for name in ferkit.available_models():
        metrics = json.loads((WEIGHTS_DIR / f"{name}.metrics.json").read_text())
        assert 0 < metrics["agreement"]["accuracy"] < 1 and metrics["agreement"]["n"] == 3137, name
        assert 0 < metrics["fer2013_labels"]["accuracy"] < 1 and metrics["fer2013_labels"]["n"] == 3589, name
        assert metrics["speed"]["ms_per_face"] > 0 and metrics["speed"]["cpu"] and metrics["speed"]["command"], name
    rows = {r["name"]: r for r in ferkit.describe_models()}
    assert [n for n, r in rows.items() if r["default"]] == [DEFAULT_MODEL]


def test_a_head_fitted_on_the_old_default_is_refused_naming_the_model_it_needs(tmp_path):
    """Heads made before the default changed were fitted on `fer2013`; loaded without --model they now meet the new
    default, and must say which model they need rather than answer with another network's features."""
    old = ferkit.load_recognizer("fer2013", detector="none")
    d = len(old.labels)
    names = tuple(f"log_probabilities:{c}" for c in old.labels)
    head = Head("old", ("a", "b"), names, np.zeros(d), np.ones(d), np.vstack([np.ones(d), -np.ones(d)]) / d,
                np.zeros(2), {"name": old.name, "file": old.model_path.name, "sha256": file_sha256(old.model_path),
                              "labels": list(old.labels)})
    head.save(tmp_path / "old.json")
    assert ferkit.load_recognizer("fer2013", detector="none", adapter=tmp_path / "old.json").labels == ("a", "b")
    if DEFAULT_MODEL != "fer2013":
        with pytest.raises(AdapterError, match=rf"fitted on the model 'fer2013' \(fer2013\.onnx.*not on "
                                               rf"{DEFAULT_MODEL}\.onnx.*--model fer2013"):
            ferkit.load_recognizer(detector="none", adapter=tmp_path / "old.json")


@pytest.mark.parametrize("name", ferkit.available_models())
def test_music_has_a_mood_for_every_label_of_every_shipped_model(name):
    labels = read_metadata(WEIGHTS_DIR / f"{name}.onnx")["labels"]
    assert set(labels) <= set(MOODS), sorted(set(labels) - set(MOODS))


def test_the_default_labels_a_face_in_the_example_photo():
    """The README's photo through the default model: one face, an emotion among the default's labels."""
    rec = ferkit.load_recognizer()
    faces = rec.analyze(str(PHOTO))
    assert rec.name == DEFAULT_MODEL and len(faces) == 1
    assert faces[0].emotion in rec.labels and set(faces[0].probabilities) == set(rec.labels)


@pytest.fixture
def tiny_with_votes(tmp_path):
    """32 faces in the compact layout (16 PrivateTest) and FER+ votes beside them: the FER-2013 label happy or sad,
    the majority the same except every 4th face, whose majority is contempt (left out of the 7-class set)."""
    rng = np.random.default_rng(0)
    labels = np.tile([3, 4], 16).astype(np.uint8)  # happy, sad
    pixels = (np.where(labels[:, None, None] == 3, 200, 50) + rng.integers(-30, 30, (32, 48, 48))).clip(0, 255)
    np.savez(tmp_path / "tiny.npz", pixels=pixels.astype(np.uint8), emotion=labels,
             usage=np.array([1] * 16 + [2] * 16, np.uint8))
    rows = ["Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"]
    for i, y in enumerate(labels):
        v = [0] * 10
        v[7 if i % 4 == 0 else (1 if y == 3 else 3)] = 8
        v[0] += 2
        rows.append(f"PrivateTest,x{i}.png," + ",".join(map(str, v)))
    (tmp_path / "fer2013new.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "tiny.npz"


@pytest.mark.parametrize("model", ["fer2013", "ferplus"])
def test_evaluate_scores_any_model_on_agreement_with_people_and_on_fer2013_labels(model, tiny_with_votes, tmp_path):
    """A 7-class and an 8-class model: both get the FER+ majority on the faces whose majority is one of the seven
    (contempt majorities left out) and FER-2013's labels, in their own classes; the corruptions can run on the
    agreement set."""
    from ferkit.evaluate import evaluate_model

    r = evaluate_model(model, tiny_with_votes, tmp_path / "out", tta="none", with_robustness=True, robustness_on="people")
    people, single = r["sets"][r["agreement"]]["none"], r["sets"][r["fer2013_labels"]]["none"]
    assert people["n"] == 12 and "4 contempt faces left out" in people["set"] and single["n"] == 16
    assert people["labels"] == single["labels"] == list(ferkit.load_recognizer(model, detector="none").labels)
    assert r["robustness"]["set"] == people["set"] and len(r["robustness"]["corruptions"]) == 10
    assert ("accuracy_over_seven" in people) == (model == "ferplus")
    with pytest.raises(ValueError, match="robustness_on must be 'own' or 'people'"):
        evaluate_model(model, tiny_with_votes, tmp_path / "out", tta="none", robustness_on="theirs")
