"""ImageNet-1k class names and ``decode_predictions`` (keras.applications' contract).

The class index ships with the package (``data/imagenet_classes.json``, generated
by ``tools/make_imagenet_classes.py`` from torchvision's category list and the
WordNet ids in timm): index -> ``[wnid, name]``, e.g. ``0 -> ["n01440764", "tench"]``.
Every ImageNet-1k model here (and in torchvision/timm) uses this order.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

import numpy as np

__all__ = ["decode_predictions", "imagenet_classes"]

NUM_CLASSES = 1000


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> tuple:
    """``((wnid, name), ...)`` for the 1000 ImageNet-1k classes, in index order."""
    text = resources.files("keras_cnnclassics").joinpath("data/imagenet_classes.json").read_text("utf-8")
    index = json.loads(text)
    return tuple(tuple(index[str(i)]) for i in range(len(index)))


def decode_predictions(preds, top=5):
    """The ``top`` most likely classes of each row of ``preds``.

    Args:
        preds: scores of shape ``(batch, 1000)`` (probabilities or logits; numpy
            array or backend tensor).
        top: how many classes per row (1..1000).

    Returns:
        One list per row of ``(wnid, class_name, score)`` tuples, best first, as
        ``keras.applications.imagenet_utils.decode_predictions``.
    """
    preds = np.asarray(preds.detach().cpu() if hasattr(preds, "detach") else preds)
    if preds.ndim != 2 or preds.shape[1] != NUM_CLASSES:
        raise ValueError(
            f"decode_predictions expects a batch of ImageNet-1k scores of shape (samples, "
            f"{NUM_CLASSES}); got shape {preds.shape}."
        )
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or not 1 <= top <= NUM_CLASSES:
        raise ValueError(f"top must be an integer in 1..{NUM_CLASSES}; got {top!r}.")
    classes = imagenet_classes()
    order = np.argsort(-preds, axis=1, kind="stable")[:, :top]
    return [
        [(*classes[i], float(row[i])) for i in indices]
        for row, indices in zip(preds, order)
    ]
