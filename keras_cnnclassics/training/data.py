"""Data sources and batch streams for training and evaluation.

Two sources give the same thing, an :class:`ImageData` of ``uint8`` images in
``(N, H, W, C)`` order with a held-out validation split:

* ``digits``: scikit-learn's bundled real handwritten digits
  (:func:`keras_cnnclassics.images.load_digits_data`).
* an image folder with one subfolder per class, read by
  ``keras.utils.image_dataset_from_directory`` (TensorFlow's decoders; images are
  centre-cropped to a square and resized bilinearly), with its
  ``validation_split``. Unreadable images are skipped and counted. The decoded
  images are held in memory as ``uint8`` (N x size x size x C bytes).

:class:`TrainBatches` turns the training split into an endless stream of
batches in which batch ``g`` of the run depends only on ``(seed, g)``: the order
of epoch ``e`` is a permutation drawn from ``(seed, e)`` and batch ``g``'s
augmentation is seeded with ``(seed, g)``. That is what makes ``--resume`` after
a crash continue exactly where the run stopped. The incomplete last batch of
each epoch is dropped (the order changes every epoch, so no image is left out
for good), which also keeps every batch divisible by the device count.
:class:`EvalBatches` pads the last batch instead (and the padding is cut off).
"""

from __future__ import annotations

import math
import os

import keras
import numpy as np

from keras_cnnclassics.images import (
    IMAGE_SUFFIXES,
    ImageData,
    load_digits_data,
    load_image_file,
    require_tensorflow,
    to_uint8,
    unreadable_files,
)

__all__ = [
    "ImageData",
    "load_digits_data",
    "load_folder_data",
    "load_folder_images",
    "load_image_file",
    "TrainBatches",
    "EvalBatches",
    "IMAGE_SUFFIXES",
]
# ImageData, load_digits_data and load_image_file live in keras_cnnclassics.images
# (shared with export); they are named here too because training's callers read
# both data sources from this module.


def class_folders(folder) -> dict[str, int]:
    """Class subfolder -> number of readable-looking image files in it (recursive)."""
    names = sorted(
        d for d in os.listdir(folder)
        if os.path.isdir(os.path.join(folder, d)) and not d.startswith(".")
    )
    counts = {}
    for name in names:
        total = 0
        for _, _, files in os.walk(os.path.join(folder, name)):
            total += sum(f.lower().endswith(IMAGE_SUFFIXES) for f in files)
        counts[name] = total
    return counts


def _check_folder(folder, val_split):
    counts = class_folders(folder)
    layout = f"expected {folder}/<class>/<image>{'|'.join(IMAGE_SUFFIXES)}, one subfolder per class"
    if not counts:
        raise ValueError(f"image folder {folder!r} has no class subfolders; {layout}.")
    empty = [n for n, c in counts.items() if c == 0]
    if empty:
        raise ValueError(
            f"image folder {folder!r}: class folder(s) {', '.join(empty)} hold no images "
            f"({'/'.join(IMAGE_SUFFIXES)}); {layout}."
        )
    if len(counts) < 2:
        raise ValueError(
            f"image folder {folder!r} has one class ({next(iter(counts))}); a classifier "
            f"needs at least 2 class subfolders; {layout}."
        )
    total = sum(counts.values())
    if int(val_split * total) < 1 or total - int(val_split * total) < 1:
        raise ValueError(
            f"image folder {folder!r} has {total} images: too few to hold out "
            f"{val_split:.0%} for validation and still train."
        )
    return list(counts)


def _collect(dataset, expected):
    """Decode a (image, label) dataset into uint8 arrays, skipping unreadable files."""
    images, labels = [], []
    for image, label in dataset.ignore_errors().as_numpy_iterator():
        images.append(to_uint8(image))
        labels.append(label)
    return images, labels, expected - len(images)


def _read_folder(folder, image_size, channels, class_names, val_split, seed):
    """``image_dataset_from_directory`` for the training/validation split
    (``val_split``) or, with ``val_split=None``, every image in order."""
    require_tensorflow()
    split = {"validation_split": val_split, "subset": "both"} if val_split else {}
    datasets = keras.utils.image_dataset_from_directory(
        folder,
        labels="inferred",
        label_mode="int",
        class_names=class_names,
        color_mode="grayscale" if channels == 1 else "rgb",
        batch_size=None,
        image_size=(image_size, image_size),
        shuffle=bool(val_split),
        seed=seed,
        crop_to_aspect_ratio=True,
        data_format="channels_last",
        verbose=False,
        **split,
    )
    datasets = datasets if val_split else (datasets,)
    parts = [_collect(ds, len(ds.file_paths)) for ds in datasets]
    skipped = sum(part[2] for part in parts)
    if skipped:
        paths = [p for ds in datasets for p in ds.file_paths]
        bad = unreadable_files(paths, limit=5)
        print(
            f"Skipped {skipped} unreadable image(s) in {folder}"
            + (f", e.g. {', '.join(os.path.relpath(p, folder) for p in bad)}" if bad else ""),
            flush=True,
        )
    return parts, skipped


def _stack(images, labels):
    return np.stack(images), np.asarray(labels, "int32")


def load_folder_data(folder, image_size, channels, val_split=0.2, seed=0) -> ImageData:
    """An image folder (one subfolder per class) via ``image_dataset_from_directory``."""
    class_names = _check_folder(folder, val_split)
    parts, skipped = _read_folder(folder, image_size, channels, class_names, val_split, seed)
    (x_train, y_train, _), (x_val, y_val, _) = parts
    if len(set(y_train)) < 2 or not x_val:
        raise ValueError(
            f"image folder {folder!r}: after skipping {skipped} unreadable image(s) there are "
            f"{len(x_train)} training images in {len(set(y_train))} class(es) and "
            f"{len(x_val)} validation images; need >= 2 classes and >= 1 validation image."
        )
    return ImageData(
        *_stack(x_train, y_train), *_stack(x_val, y_val), class_names=class_names,
        skipped=skipped, source=f"folder {folder}",
    )


def load_folder_images(folder, image_size, channels, class_names) -> tuple:
    """Every image of a folder, labelled with ``class_names`` (a trained model's classes).

    Returns ``(images, labels, skipped)``. Subfolders that are not among
    ``class_names`` are refused: the model cannot be scored on classes it lacks.
    """
    found = class_folders(folder)
    unknown = sorted(set(found) - set(class_names))
    if not found or unknown:
        raise ValueError(
            f"image folder {folder!r}: its class subfolders ({', '.join(found) or 'none'}) must "
            f"be among the model's classes ({', '.join(class_names)})"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "") + "."
        )
    present = [name for name in class_names if found.get(name)]
    parts, skipped = _read_folder(folder, image_size, channels, present, None, 0)
    images, labels, _ = parts[0]
    if not images:
        raise ValueError(f"image folder {folder!r}: no readable images.")
    remap = np.array([class_names.index(name) for name in present])
    x, y = _stack(images, labels)
    return x, remap[y].astype("int32"), skipped


def to_model_layout(images):
    """NHWC -> the configured data format."""
    if keras.config.image_data_format() == "channels_first":
        return np.transpose(images, (0, 3, 1, 2))
    return images


def one_hot(labels, num_classes):
    return np.eye(num_classes, dtype="float32")[labels]


class TrainBatches(keras.utils.PyDataset):
    """Endless training batches; batch ``g`` is a pure function of ``(seed, g)``.

    Args:
        x, y: training images (``uint8`` NHWC) and integer labels.
        num_classes: for the one-hot targets (label smoothing needs them).
        batch_size: global batch size.
        seed: the run's seed.
        start_step: global step of the first batch (``initial_epoch *
            steps_per_epoch`` when resuming).
        augment: ``callable(images_float32, seed) -> images`` or None.
        preprocess: the model family's ``preprocess_input``.
        outputs: number of model outputs (GoogLeNet with aux heads: 3).
        shard: ``(index, count)``: this process's slice of every global batch
            (multi-host data parallelism); ``(0, 1)`` on one host.
    """

    def __init__(self, x, y, num_classes, batch_size, seed, start_step=0, augment=None,
                 preprocess=None, outputs=1, shard=(0, 1)):
        super().__init__(workers=1, use_multiprocessing=False)
        if batch_size > len(x):
            raise ValueError(
                f"batch size {batch_size} is larger than the training split "
                f"({len(x)} images); choose --batch-size <= {len(x)}."
            )
        if batch_size % shard[1]:
            raise ValueError(f"batch size {batch_size} must divide by {shard[1]} processes.")
        self.x, self.y, self.num_classes = x, y, num_classes
        self.batch_size, self.seed, self.start_step = batch_size, seed, start_step
        self.augment, self.preprocess, self.outputs, self.shard = augment, preprocess, outputs, shard
        self.steps_per_epoch = len(x) // batch_size
        self._orders = {}

    @property
    def num_batches(self):
        return None  # endless: fit(steps_per_epoch=...) keeps one iterator for the run

    def order(self, epoch):
        """The permutation of the training images used in ``epoch``."""
        if epoch not in self._orders:
            self._orders = {epoch: np.random.default_rng([self.seed, epoch]).permutation(len(self.x))}
        return self._orders[epoch]

    def batch_indices(self, step):
        epoch, index = divmod(step, self.steps_per_epoch)
        start = index * self.batch_size
        indices = self.order(epoch)[start : start + self.batch_size]
        local = self.batch_size // self.shard[1]
        return indices[self.shard[0] * local : (self.shard[0] + 1) * local]

    def __getitem__(self, i):
        step = self.start_step + i
        indices = self.batch_indices(step)
        images = self.x[indices].astype("float32")
        if self.augment is not None:
            images = self.augment(images, seed=(self.seed, step))
        images = to_model_layout(self.preprocess(images) if self.preprocess else images)
        target = one_hot(self.y[indices], self.num_classes)
        return images, (target,) * self.outputs if self.outputs > 1 else target


class EvalBatches(keras.utils.PyDataset):
    """Inference batches in order; the last is padded to ``batch_size`` (cut off later)."""

    def __init__(self, x, batch_size, preprocess=None):
        super().__init__(workers=1, use_multiprocessing=False)
        self.x, self.batch_size, self.preprocess = x, batch_size, preprocess

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, i):
        images = self.x[i * self.batch_size : (i + 1) * self.batch_size].astype("float32")
        if len(images) < self.batch_size:
            pad = np.repeat(images[-1:], self.batch_size - len(images), axis=0)
            images = np.concatenate([images, pad])
        images = self.preprocess(images) if self.preprocess else images
        return (to_model_layout(np.asarray(images, "float32")),)
