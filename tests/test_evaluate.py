import numpy as np
import pytest

from ferkit.evaluate import CORRUPTIONS, classification_report, confusion_matrix, corrupt, expected_calibration_error


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
    assert confusion_matrix(y, y, 3).trace() == 6


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
