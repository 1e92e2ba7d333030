"""Classification metrics: accuracy, precision/recall/F1 (scikit-learn), expected calibration error."""
from __future__ import annotations

import numpy as np


def classification_report(y_true: np.ndarray, probs: np.ndarray, labels: tuple[str, ...]) -> dict:
    """(N,) labels and (N, K) probabilities -> accuracy, macro/weighted precision-recall-F1, per-class figures, the
    confusion matrix (rows true classes, columns predictions) and the ECE. Macro means are over the classes
    present in `y_true`."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    k = len(labels)
    y_pred = probs.argmax(1)
    classes = np.arange(k)
    cm = confusion_matrix(y_true, y_pred, labels=classes)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=classes, average=None,
                                                                     zero_division=0)
    present = support > 0
    w = support / max(support.sum(), 1)
    return {
        "n": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()),
        "macro": {"precision": float(precision[present].mean()), "recall": float(recall[present].mean()),
                  "f1": float(f1[present].mean())},
        "weighted": {"precision": float((precision * w).sum()), "recall": float((recall * w).sum()),
                     "f1": float((f1 * w).sum())},
        "per_class": {lab: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                            "support": int(support[i])} for i, lab in enumerate(labels)},
        "confusion_matrix": cm.tolist(),
        "labels": list(labels),
        "ece": expected_calibration_error(y_true, probs),
    }


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """ECE over equal-width confidence bins: how far the shown confidence is from the accuracy."""
    conf = probs.max(1)
    correct = probs.argmax(1) == y_true
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def softmax(logits: np.ndarray) -> np.ndarray:
    """(N, K) logits -> (N, K) probabilities."""
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def rescale_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits) -> softmax(logits / temperature), from the probabilities alone (log p = logits + const)."""
    return softmax(np.log(probs.clip(1e-12)) / temperature)
