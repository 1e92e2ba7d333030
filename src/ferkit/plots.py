"""Figures (matplotlib: the [plot] extra, also in [train]): imported only where a figure is drawn."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_confusion(report: dict, path: str | Path) -> None:
    """A classification_report's confusion matrix, rows normalised, counts in brackets."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    im = draw_confusion(ax, report["confusion_matrix"], report["labels"])
    ax.set_title(f"{report['set']}\naccuracy {report['accuracy']:.1%} (TTA: {report['tta']})", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_confusion(ax, confusion, labels):
    """A confusion matrix (rows: true, columns: predicted) on a matplotlib axis, rows normalised, counts in
    brackets -> the image, for a colour bar."""
    cm = np.array(confusion, float)
    norm = cm / cm.sum(1, keepdims=True).clip(min=1)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{norm[i, j]:.2f}\n({int(cm[i, j])})", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return im


def plot_class_distribution(ds, path: str | Path) -> None:
    """Faces per class and split of a data.FaceDataset."""
    plt = _pyplot()
    counts = ds.counts()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    width = 0.8 / max(1, len(counts))
    x = np.arange(len(ds.classes))
    for i, (split, row) in enumerate(counts.items()):
        vals = [row[c] for c in ds.classes]
        bars = ax.bar(x + i * width, vals, width, label=split)
        ax.bar_label(bars, fontsize=6)
    ax.set_xticks(x + width * (len(counts) - 1) / 2, ds.classes)
    ax.set_ylabel("faces"); ax.legend(); ax.set_title("Class distribution per split")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_robustness(rob: dict, path: str | Path) -> None:
    """evaluate.robustness's accuracy per corruption and level against the clean accuracy."""
    plt = _pyplot()
    names = list(rob["corruptions"])
    fig, ax = plt.subplots(figsize=(9, 3.6))
    for lvl in range(3):
        ax.bar(np.arange(len(names)) + lvl * 0.27, [rob["corruptions"][n]["accuracy"][lvl] for n in names], 0.27,
               label=f"level {lvl + 1}")
    ax.axhline(rob["clean"], color="k", ls="--", lw=1, label=f"clean {rob['clean']:.1%}")
    ax.set_xticks(np.arange(len(names)) + 0.27, names, rotation=30, ha="right")
    ax.set_ylabel("accuracy"); ax.set_ylim(0, 1); ax.legend(fontsize=7, ncol=4)
    ax.set_title(f"Robustness on {rob['set']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(history: list[dict], path: Path) -> None:
    """Loss and accuracy per epoch of a training run (train.py's history)."""
    plt = _pyplot()
    ep = [h["epoch"] for h in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.5))
    a1.plot(ep, [h["train_loss"] for h in history], label="Training (augmented)")
    a1.plot(ep, [h["val_loss"] for h in history], label="PublicTest")
    a1.set_xlabel("epoch"); a1.set_ylabel("loss"); a1.legend()
    a2.plot(ep, [h["train_accuracy"] for h in history], label="Training (augmented)")
    a2.plot(ep, [h["val_accuracy"] for h in history], label="PublicTest")
    a2.set_xlabel("epoch"); a2.set_ylabel("accuracy"); a2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
