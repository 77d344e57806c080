"""Evaluation metrics and the run's plots (matplotlib, Agg backend, PNG).

Metrics are computed in numpy from the model's predicted probabilities, so the
numbers are the same whatever the backend, device count or batch padding.
"""

from __future__ import annotations

import numpy as np

__all__ = ["classification_metrics", "plot_curves", "plot_confusion", "MAX_CONFUSION_CLASSES"]

MAX_CONFUSION_CLASSES = 20


def classification_metrics(probs, labels, num_classes) -> dict:
    """Top-1/top-5 accuracy (%), mean cross-entropy and the confusion matrix.

    ``confusion[i][j]`` counts images of true class ``i`` predicted as ``j``.
    Top-5 is reported only when there are more than 5 classes.
    """
    probs = np.asarray(probs, dtype="float64")
    labels = np.asarray(labels, dtype="int64")
    predicted = probs.argmax(axis=1)
    confusion = np.zeros((num_classes, num_classes), dtype="int64")
    np.add.at(confusion, (labels, predicted), 1)
    picked = probs[np.arange(len(labels)), labels]
    result = {
        "images": int(len(labels)),
        "loss": float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0)))),
        "top1": float(100.0 * np.mean(predicted == labels)),
        "top5": None,
        "confusion_matrix": confusion.tolist(),
    }
    if num_classes > 5:
        top5 = np.argsort(-probs, axis=1)[:, :5]
        result["top5"] = float(100.0 * np.mean((top5 == labels[:, None]).any(axis=1)))
    return result


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history, path, title="") -> None:
    """Loss and accuracy per epoch (training and validation) as one PNG."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, keys, label in (
        (ax_loss, ("loss", "val_loss"), "cross-entropy (training: label-smoothed)"),
        (ax_acc, ("accuracy", "val_accuracy"), "top-1 accuracy (%)"),
    ):
        for key, style in zip(keys, ("-o", "-s")):
            values = [row.get(key) for row in history]
            if any(v is not None for v in values):
                name = "validation" if key.startswith("val_") else "training"
                ax.plot(epochs, values, style, markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def plot_confusion(confusion, class_names, path, title="") -> None:
    """The confusion matrix as a heat map with counts (for <= 20 classes)."""
    plt = _pyplot()
    confusion = np.asarray(confusion)
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * n, 0.8 + 0.45 * n))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(n), class_names, rotation=90 if n > 10 else 0)
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = confusion.max() / 2 if confusion.size else 0
    for i in range(n):
        for j in range(n):
            color = "white" if confusion[i, j] > threshold else "black"
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=7, color=color)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
