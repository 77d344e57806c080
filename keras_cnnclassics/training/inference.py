"""``evaluate`` and ``predict`` with a trained model (a run folder or a ``.keras`` file).

A run folder's ``config.json`` tells the model's classes, input size and
preprocessing, and how its validation split was drawn, so ``evaluate RUN``
without ``--data`` scores exactly the images the run held out (for a named
dataset such as ``cifar10``: its official test split).
"""

from __future__ import annotations

import dataclasses
import os

import keras
import numpy as np

from keras_cnnclassics.registry import get_spec
from keras_cnnclassics.training.config import DIGITS
from keras_cnnclassics.training.data import (
    load_digits_data,
    load_folder_data,
    load_folder_images,
    load_image_file,
)
from keras_cnnclassics.training.datasets import dataset_images, is_dataset
from keras_cnnclassics.training.engine import family_preprocess, predict_probs
from keras_cnnclassics.training.report import classification_metrics

__all__ = ["Trained", "load_trained", "evaluate", "predict"]


@dataclasses.dataclass
class Trained:
    """A trained model with what inference needs to feed it."""

    model: keras.Model
    class_names: list
    image_size: int
    channels: int
    preprocess: object
    run_config: dict | None
    path: str


def _input_size(model):
    shape = model.inputs[0].shape[1:]
    if keras.config.image_data_format() == "channels_first":
        shape = (shape[1], shape[2], shape[0])
    if shape[0] is None or shape[0] != shape[1]:
        raise ValueError(f"model {model.name!r} has input {tuple(shape)}; a fixed square size is needed.")
    return int(shape[0]), int(shape[2])


def _read_run_config(config_path):
    """``(config, model name, class names)`` of a run's ``config.json`` (ValueError if damaged)."""
    from keras_cnnclassics.training.runfolder import RunFolder

    config = RunFolder(os.path.dirname(config_path)).read_json("config.json")
    try:
        return config, config["model"]["name"], list(config["data"]["class_names"])
    except (KeyError, TypeError):
        raise ValueError(
            f"{config_path} is not a training run's configuration (no model name and class names)."
        ) from None


def load_trained(source, checkpoint="best") -> Trained:
    """Load ``source``: a run folder (its ``{checkpoint}.keras``) or a ``.keras`` file.

    A ``.keras`` file outside a run folder needs a registry model name as its
    model name (for the preprocessing); its classes are then numbered.
    """
    import keras_cnnclassics  # noqa: F401  (registers the custom layers)

    source = os.path.abspath(os.fspath(source))
    if os.path.isdir(source):
        config_path = os.path.join(source, "config.json")
        if not os.path.isfile(config_path):
            raise ValueError(f"{source} is not a run folder (no config.json).")
        path = os.path.join(source, f"{checkpoint}.keras")
    elif source.endswith(".keras") and os.path.isfile(source):
        path, config_path = source, os.path.join(os.path.dirname(source), "config.json")
    else:
        raise ValueError(f"{source!r} is neither a run folder nor an existing .keras file.")
    if not os.path.isfile(path):
        raise ValueError(f"{path} does not exist (did the run complete an epoch?).")
    from keras_cnnclassics.weights import load_model_file

    model = load_model_file(path)
    run_config = None
    if os.path.isfile(config_path):
        try:
            run_config, name, class_names = _read_run_config(config_path)
        except ValueError:
            if not os.path.isdir(source):  # a .keras file beside some other config.json
                run_config = None
            else:
                raise
    size, channels = _input_size(model)
    if run_config:
        spec = get_spec(name)
        if len(class_names) != int(model.outputs[0].shape[-1]):
            raise ValueError(
                f"{config_path} names {len(class_names)} classes but {path} has "
                f"{int(model.outputs[0].shape[-1])} outputs; the two files are not of one run."
            )
    else:
        try:
            spec = get_spec(model.name)
        except ValueError:
            raise ValueError(
                f"{path}: cannot tell the preprocessing of model {model.name!r}; use the run "
                "folder it came from (its config.json) or a model named after a registry model."
            ) from None
        class_names = [str(i) for i in range(int(model.outputs[0].shape[-1]))]
    return Trained(model, class_names, size, channels, family_preprocess(spec), run_config, path)


def _evaluation_images(trained, data, split):
    config = (trained.run_config or {}).get("config", {})
    data = data or config.get("data")
    if data is None:
        raise ValueError("--data is needed: this model has no run configuration to take it from.")
    same = config and (data == config.get("data") or os.path.abspath(data) == config.get("data"))
    split = split or ("validation" if same else "all")
    if split == "validation" and not same:
        raise ValueError("split 'validation' is the run's held-out split: use it with the run's own data.")
    seed, val_split = config.get("seed", 0), config.get("val_split", 0.2)
    size, channels = trained.image_size, trained.channels
    limit = config.get("limit") or None  # the run validated on its first `limit` images
    if is_dataset(data):  # its validation split is its official test split
        x, y = dataset_images(data, size, channels, "test" if split == "validation" else "all")
        if y.max() >= len(trained.class_names):
            raise ValueError(f"{data} has {y.max() + 1} classes but the model has "
                             f"{len(trained.class_names)} outputs: evaluate it on data of its classes.")
        return (x[:limit], y[:limit], 0, split) if split == "validation" else (x, y, 0, split)
    if data == DIGITS:
        loaded = load_digits_data(size, channels, val_split, seed)
        if split == "validation":
            return loaded.x_val[:limit], loaded.y_val[:limit], 0, split
        return (np.concatenate([loaded.x_train, loaded.x_val]),
                np.concatenate([loaded.y_train, loaded.y_val]), 0, split)
    if split == "validation":
        loaded = load_folder_data(data, size, channels, val_split, seed)
        return loaded.x_val[:limit], loaded.y_val[:limit], loaded.skipped, split
    x, y, skipped = load_folder_images(data, size, channels, trained.class_names)
    return x, y, skipped, split


def evaluate(source, data=None, split=None, batch_size=32, checkpoint="best") -> dict:
    """Top-1/top-5/loss/confusion of a trained model on ``data``.

    ``split``: ``"validation"`` (default for the run's own data: its held-out
    images; a named dataset's official test split) or ``"all"`` (default for
    other data; a named dataset's training and test images).
    """
    if split not in (None, "validation", "all"):
        raise ValueError(f"split must be 'validation' or 'all'; got {split!r}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch size must be an integer >= 1; got {batch_size!r}.")
    trained = load_trained(source, checkpoint)
    x, y, skipped, split = _evaluation_images(trained, data, split)
    probs = predict_probs(trained.model, x, trained.preprocess, batch_size)
    result = classification_metrics(probs, y, len(trained.class_names))
    result.update(split=split, skipped_unreadable=skipped, model=trained.path,
                  class_names=trained.class_names)
    return result


def predict(source, images, top_k=5, checkpoint="best") -> list:
    """``[(path, [(class_name, probability), ...]), ...]``, the ``top_k`` classes per image."""
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top-k must be an integer >= 1; got {top_k!r}.")
    if not images:
        raise ValueError("give at least one image file.")
    trained = load_trained(source, checkpoint)
    batch = np.stack([load_image_file(p, trained.image_size, trained.channels) for p in images])
    probs = predict_probs(trained.model, batch, trained.preprocess, len(batch))
    return top_classes(images, probs, trained.class_names, top_k)


def top_classes(paths, probs, class_names, top_k) -> list:
    """``[(path, [(class_name, probability), ...]), ...]``: each row's ``top_k`` classes."""
    results = []
    for path, row in zip(paths, np.asarray(probs)):
        order = np.argsort(-row, kind="stable")[:top_k]
        results.append((path, [(class_names[i], float(row[i])) for i in order]))
    return results
