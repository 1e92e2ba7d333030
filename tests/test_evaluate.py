import math

import numpy as np
import pytest

from ferkit.evaluate import (CORRUPTIONS, classification_report, confusion_matrix, corrupt, expected_calibration_error,
                             mcnemar)


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


@pytest.mark.data
def test_ensemble_weights_are_fitted_on_publictest_and_beat_each_member(fer_dir):
    from ferkit import load_recognizer
    from ferkit.evaluate import evaluate, fit_ensemble_weights, selection_set

    data = fer_dir / "fer2013-compact.npz.xz"
    data = data if data.is_file() else fer_dir / "fer2013.csv.gz"
    members = ["fer2013", "fer2013-fp32"]
    weights, acc, held_out = fit_ensemble_weights(members, data, step=0.25)
    assert 0.6 < held_out <= acc + 1e-9 + 0.01  # the two-fold estimate: honest, so rarely above the fitted figure
    assert len(weights) == 2 and sum(weights) == pytest.approx(1.0)
    public = selection_set(data, load_recognizer("fer2013", detector="none").labels)
    assert public.name == "FER-2013 PublicTest" and len(public.labels) == 3589
    # the grid holds each member alone, so the chosen mix is at least as good as the better member
    singles = [evaluate(load_recognizer(m, detector="none"), public)["accuracy"] for m in members]
    assert acc >= max(singles) - 1e-9


def test_the_weight_fit_keeps_to_a_latency_budget():
    """A costly member that the free fit relies on is left out when the members may add up to 2 ms only."""
    from ferkit.evaluate import _grid_fit, fit_ensemble_weights

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 600)

    def member(p_right):  # one-hot guesses, right with probability p_right
        guess = np.where(rng.random(600) < p_right, labels, rng.integers(0, 3, 600))
        return np.eye(3)[guess]

    probs = np.stack([member(0.6), member(0.6), member(0.9)])
    free, free_acc = _grid_fit(probs, labels, 0.1)
    assert free[2] > 0
    costs = np.array([1.0, 1.0, 3.0])
    w, acc = _grid_fit(probs, labels, 0.1, costs, 2.0)
    assert w[2] == 0 and w.sum() == pytest.approx(1.0) and acc <= free_acc
    assert costs[w > 0].sum() <= 2.0
    with pytest.raises(ValueError, match="no member fits the budget of 0.5 ms"):  # before any data is read
        fit_ensemble_weights(["a.onnx", "b.onnx", "c.onnx"], "missing.csv", costs_ms=costs, budget_ms=0.5)
    with pytest.raises(ValueError, match="2 member costs for 3 members"):
        fit_ensemble_weights(["a.onnx", "b.onnx", "c.onnx"], "missing.csv", costs_ms=[1, 1], budget_ms=5)
    with pytest.raises(ValueError, match="0 member costs for 3 members"):
        fit_ensemble_weights(["a.onnx", "b.onnx", "c.onnx"], "missing.csv", budget_ms=5)


def test_model_card_training_lines_name_teachers_and_the_auxiliary_task():
    from ferkit.evaluate import _training_lines

    tc = {"labels": "ferplus-soft", "teacher": "a/best.pt,b/best.pt", "distill_weight": 0.5, "distill_temperature": 2.0,
          "aux_labels": "fer2013", "aux_weight": 0.5, "epochs": 30}
    text = "\n".join(_training_lines({"trained": {"train_config": tc, "epoch": 28, "val_accuracy": 0.84}}))
    assert "Distilled from `a/best.pt` + `b/best.pt` (the mean of their softened outputs" in text
    assert "teacher and student see the same augmented face" in text
    assert "second head learnt the `fer2013` labels" in text and "weight 0.5" in text
    plain = "\n".join(_training_lines({"trained": {"train_config": {"labels": "fer2013", "epochs": 50}}}))
    assert "Distilled" not in plain and "Multi-task" not in plain


def test_mcnemar_counts_only_the_faces_the_models_disagree_on():
    old = np.array([True] * 50 + [False] * 50)
    assert mcnemar(old, old) == (0, 0, 1.0)
    new = old.copy()
    new[50:60] = True                                     # 10 faces only NEW gets right, none the other way
    gained, lost, p = mcnemar(old, new)
    assert (gained, lost) == (10, 0) and p == pytest.approx(2 / 2 ** 10)
    new[:5] = False                                       # 10 against 5: far from significant
    gained, lost, p = mcnemar(old, new)
    assert (gained, lost) == (10, 5) and p == pytest.approx(2 * sum(math.comb(15, i) for i in range(6)) / 2 ** 15)
    assert 0.2 < p < 0.4


def test_class_offsets_recover_a_known_prior_shift():
    """Labels drawn from softmax(z + b) while the model says softmax(z): the fit must find b (up to a common
    shift), and the fitted offsets must zero the log-likelihood's gradient."""
    from ferkit.evaluate import apply_offsets, fit_class_offsets, softmax

    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, (40000, 7))
    b_true = np.array([0.5, -1.5, 0.2, 0.8, 0.0, -0.3, 0.3])
    q = softmax(z + b_true)
    labels = (q.cumsum(1) > rng.uniform(size=(len(q), 1))).argmax(1)
    b = fit_class_offsets(softmax(z), labels)
    np.testing.assert_allclose(b, b_true - b_true.mean(), atol=0.06)
    assert abs(b.sum()) < 1e-9
    np.testing.assert_allclose(apply_offsets(softmax(z), b).mean(0), np.eye(7)[labels].mean(0), atol=1e-8)


def test_judge_offsets_names_each_condition():
    from ferkit.evaluate import judge_offsets

    r = {"model": "m", "accuracy": 0.70, "two_fold": 0.705, "gained": 60, "lost": 30, "p": 0.002, "macro_f1": 0.68,
         "two_fold_macro_f1": 0.675, "corrupted_mean": 0.60, "corrupted_mean_with_offsets": 0.598}
    ok, line = judge_offsets(r)
    assert ok and line.endswith("the offsets become part of m") and line.count(" ok") == 4
    for key, value, name in (("two_fold", 0.701, "two-fold accuracy"), ("p", 0.2, "paired"),
                             ("two_fold_macro_f1", 0.66, "two-fold macro F1"), ("corrupted_mean_with_offsets", 0.59,
                                                                                "corrupted mean")):
        ok, line = judge_offsets({**r, key: value})
        assert not ok and f"{name}: " in line and line.endswith("no offsets for m")
        assert [part.split(":")[0] for part in line.split("; ") if part.split(" -> ")[0].endswith("fails")] == [name]
