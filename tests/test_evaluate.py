"""Metrics, corruptions and model-card text on small generated inputs."""
import numpy as np
import pytest

from ferkit.corruptions import CORRUPTIONS, corrupt
from ferkit.metrics import classification_report, expected_calibration_error


def test_metrics_by_hand():
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    probs = np.eye(3)[pred] * 0.9 + 0.1 / 3
    r = classification_report(y, probs, ("a", "b", "c"))
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert r["per_class"]["b"]["precision"] == pytest.approx(2 / 3) and r["per_class"]["b"]["recall"] == 1.0
    assert r["per_class"]["a"]["f1"] == pytest.approx(0.5)
    assert r["macro"]["f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert r["macro"]["f1"] == pytest.approx(r["weighted"]["f1"])  # equal supports
    absent = classification_report(np.array([0, 0]), np.eye(3)[[0, 1]], ("a", "b", "c"))  # c never the label
    assert absent["per_class"]["c"]["support"] == 0 and absent["macro"]["recall"] == pytest.approx(0.5)  # over the classes present


def test_ece_zero_when_confidence_matches_accuracy():
    y = np.array([0, 1, 0, 1])
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(y, probs) == pytest.approx(0.0)
    assert expected_calibration_error(1 - y, probs) == pytest.approx(1.0)


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corruptions_change_faces_deterministically(kind):
    faces = np.random.default_rng(0).integers(40, 200, (4, 48, 48), dtype=np.uint8)
    level = CORRUPTIONS[kind][-1]
    a, b = corrupt(faces, kind, level), corrupt(faces, kind, level)
    assert a.shape == faces.shape and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, faces)
    with pytest.raises(ValueError, match="valid: brightness"):
        corrupt(faces, "sepia", 1)


def test_model_card_training_lines_name_teachers_and_the_auxiliary_task():
    from ferkit.model_card import _training_lines

    tc = {"labels": "ferplus-soft", "teacher": "a/best.pt,b/best.pt", "distill_weight": 0.5, "distill_temperature": 2.0,
          "aux_labels": "fer2013", "aux_weight": 0.5, "epochs": 30}
    text = "\n".join(_training_lines({"trained": {"train_config": tc, "epoch": 28, "val_accuracy": 0.84}}))
    assert "Distilled from `a/best.pt` + `b/best.pt` (the mean of their softened outputs" in text
    assert "teacher and student see the same augmented face" in text
    assert "second head learnt the `fer2013` labels" in text and "weight 0.5" in text
    plain = "\n".join(_training_lines({"trained": {"train_config": {"labels": "fer2013", "epochs": 50}}}))
    assert "Distilled" not in plain and "Multi-task" not in plain
