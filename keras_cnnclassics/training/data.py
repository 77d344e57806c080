"""Data sources and batch streams for training and evaluation.

Two sources give the same thing, an :class:`ImageData` of ``uint8`` images in
``(N, H, W, C)`` order with a held-out validation split:

* ``digits``: scikit-learn's bundled real handwritten digits
  (:func:`keras_cnnclassics.images.load_digits_data`).
* an image folder with one subfolder per class (:func:`open_folder_data`): its
  splits are :class:`~keras_cnnclassics.training.stream.ImageFiles`, files
  decoded a batch at a time when indexed (TensorFlow's decoders, centre crop to a
  square, bilinear resize), so memory follows the batch size, the decoding
  threads and the prefetch depth, not the folder. Files whose header is not an
  image's are skipped and counted while listing; one that still fails to decode
  is replaced by the next readable file of its split and reported after the run.
  :func:`load_folder_data` decodes both splits into memory (evaluation).

:class:`TrainBatches` turns the training split into an endless stream of
batches in which batch ``g`` of the run depends only on ``(seed, g)``: the order
of epoch ``e`` is a permutation drawn from ``(seed, e)`` and batch ``g``'s
augmentation is seeded with ``(seed, g)``. That is what makes ``--resume`` after
a crash continue exactly where the run stopped. The incomplete last batch of
each epoch is dropped (the order changes every epoch, so no image is left out
for good), which also keeps every batch divisible by the device count. Folder
batches are decoded by threads that work ahead of ``fit`` (:func:`batch_reader`);
each batch is a pure function of its index, so the thread count changes the
speed, never the batches.
:class:`EvalBatches` pads the last batch instead (and the padding is cut off).
"""

from __future__ import annotations

import dataclasses
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
)
from keras_cnnclassics.training.stream import ImageFiles, Prefetcher, list_image_folder

__all__ = [
    "ImageData",
    "load_digits_data",
    "open_folder_data",
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


def _check_folder(listing, folder, val_split):
    counts = listing.counts
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


def _report_unreadable(folder, paths, how="Skipped"):
    if paths:
        examples = sorted(os.path.relpath(os.path.join(folder, p), folder) for p in paths)[:5]
        print(f"{how} {len(paths)} unreadable image(s) in {folder}, e.g. {', '.join(examples)}",
              flush=True)


def open_folder_data(folder, image_size, channels, val_split=0.2, seed=0) -> ImageData:
    """An image folder (one subfolder per class) as :class:`ImageFiles` splits, read on demand.

    The validation split is the last ``int(val_split * N)`` files of a
    permutation drawn from ``seed`` (so ``--limit`` takes a mixed sample).
    """
    require_tensorflow()
    listing = list_image_folder(folder)
    _check_folder(listing, folder, val_split)
    _report_unreadable(folder, listing.unreadable)
    order = np.random.RandomState(seed).permutation(len(listing.paths))
    cut = len(order) - int(val_split * len(order))
    train, val = order[:cut], order[cut:]
    if len(set(listing.labels[train])) < 2 or not len(val):
        raise ValueError(
            f"image folder {folder!r}: after skipping {len(listing.unreadable)} unreadable image(s) "
            f"there are {len(train)} training images in {len(set(listing.labels[train]))} class(es) "
            f"and {len(val)} validation images; need >= 2 classes and >= 1 validation image."
        )
    replaced = set()  # files found undecodable while reading, both splits

    def files(indices):
        return ImageFiles(listing.root, listing.paths[indices], image_size, channels, replaced)

    return ImageData(
        files(train), listing.labels[train], files(val), listing.labels[val],
        class_names=listing.class_names, skipped=len(listing.unreadable), source=f"folder {folder}",
    )


def decode_all(files, labels):
    """``(images, labels, failed)``: every file of ``files`` decoded; failures left out."""
    images, kept = [], []
    for index in range(len(files)):
        try:
            images.append(files.decode(index))
            kept.append(index)
        except ValueError:
            files.unreadable.add(files.path(index))
    stacked = np.stack(images) if images else np.zeros((0, *files.shape[1:]), "uint8")
    return stacked, labels[kept], len(files) - len(kept)


def load_folder_data(folder, image_size, channels, val_split=0.2, seed=0) -> ImageData:
    """:func:`open_folder_data` decoded into memory (files that fail to decode skipped)."""
    data = open_folder_data(folder, image_size, channels, val_split, seed)
    x_train, y_train, failed_train = decode_all(data.x_train, data.y_train)
    x_val, y_val, failed_val = decode_all(data.x_val, data.y_val)
    _report_unreadable(folder, data.x_train.unreadable, how="Could not decode")
    if len(set(y_train)) < 2 or not len(x_val):
        raise ValueError(
            f"image folder {folder!r}: {failed_train + failed_val} image(s) could not be decoded; "
            f"{len(x_train)} training images in {len(set(y_train))} class(es) and {len(x_val)} "
            "validation images are left; need >= 2 classes and >= 1 validation image."
        )
    skipped = data.skipped + failed_train + failed_val
    return dataclasses.replace(data, x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val,
                               skipped=skipped)


def load_folder_images(folder, image_size, channels, class_names) -> tuple:
    """Every image of a folder, labelled with ``class_names`` (a trained model's classes).

    Returns ``(images, labels, skipped)``. Subfolders that are not among
    ``class_names`` are refused: the model cannot be scored on classes it lacks.
    """
    require_tensorflow()
    listing = list_image_folder(folder)
    found = listing.class_names
    unknown = sorted(set(found) - set(class_names))
    if not found or unknown:
        raise ValueError(
            f"image folder {folder!r}: its class subfolders ({', '.join(found) or 'none'}) must "
            f"be among the model's classes ({', '.join(class_names)})"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "") + "."
        )
    _report_unreadable(folder, listing.unreadable)
    files = ImageFiles(listing.root, listing.paths, image_size, channels)
    remap = np.array([class_names.index(name) for name in found], dtype="int32")
    images, labels, failed = decode_all(files, remap[listing.labels])
    _report_unreadable(folder, files.unreadable, how="Could not decode")
    if not len(images):
        raise ValueError(f"image folder {folder!r}: no readable images.")
    return images, labels, len(listing.unreadable) + failed


def limit_data(data, n) -> ImageData:
    """The first ``n`` images of each split (files stay unread)."""
    def head(x):
        return x.head(n) if isinstance(x, ImageFiles) else x[:n]

    return dataclasses.replace(data, x_train=head(data.x_train), y_train=data.y_train[:n],
                               x_val=head(data.x_val), y_val=data.y_val[:n],
                               source=f"{data.source}, first {n} per split (--limit)")


def replaced_files(data) -> list:
    """Files found undecodable while training (each replaced by the next readable one)."""
    return sorted(data.x_train.unreadable) if isinstance(data.x_train, ImageFiles) else []


def data_workers() -> int:
    """Threads that decode image files: ``CNNCLASSICS_DATA_WORKERS``, else the usable CPUs (<= 8)."""
    value = os.environ.get("CNNCLASSICS_DATA_WORKERS", "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"CNNCLASSICS_DATA_WORKERS must be an integer >= 1; got {value!r}.")
        return int(value)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, cpus or 1))


def batch_reader(batch, x, count=None):
    """``batch`` itself for arrays (slicing is cheap); for files a :class:`Prefetcher`
    whose :func:`data_workers` threads keep twice as many batches ready ahead.

    Keras' own ``PyDataset(workers=...)`` queue is not used: it numbers batches
    with one counter for the whole run, so the batch Keras reads to build the
    model before training is taken from the run (on JAX and PyTorch, training
    would start at batch 1, not 0).
    """
    if not isinstance(x, ImageFiles):
        return batch
    workers = data_workers()
    return Prefetcher(batch, workers, depth=2 * workers, count=count)


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
        self._read = batch_reader(self.batch, x)

    @property
    def num_batches(self):
        return None  # endless: fit(steps_per_epoch=...) keeps one iterator for the run

    def order(self, epoch):
        """The permutation of the training images used in ``epoch``."""
        order = self._orders.get(epoch)  # read once: worker threads replace the cache
        if order is None:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.x))
            self._orders = {epoch: order}
        return order

    def batch_indices(self, step):
        epoch, index = divmod(step, self.steps_per_epoch)
        start = index * self.batch_size
        indices = self.order(epoch)[start : start + self.batch_size]
        local = self.batch_size // self.shard[1]
        return indices[self.shard[0] * local : (self.shard[0] + 1) * local]

    def __getitem__(self, i):
        return self._read(i)

    def augmented(self, images, step):
        """This shard's ``images`` augmented as their rows of the whole global batch
        are (the other rows are zeros): every process count gives the same batch."""
        index, count = self.shard
        if count == 1:
            return self.augment(images, seed=(self.seed, step))
        batch = np.zeros((self.batch_size, *images.shape[1:]), "float32")
        rows = slice(index * len(images), (index + 1) * len(images))
        batch[rows] = images
        return self.augment(batch, seed=(self.seed, step))[rows]

    def batch(self, i):
        """Batch ``i`` of this stream (global step ``start_step + i``), computed."""
        step = self.start_step + i
        indices = self.batch_indices(step)
        images = self.x[indices].astype("float32")
        if self.augment is not None:
            images = self.augmented(images, step)
        images = to_model_layout(self.preprocess(images) if self.preprocess else images)
        target = one_hot(self.y[indices], self.num_classes)
        return images, (target,) * self.outputs if self.outputs > 1 else target


class EvalBatches(keras.utils.PyDataset):
    """Inference batches in order; the last is padded to ``batch_size`` (cut off later)."""

    def __init__(self, x, batch_size, preprocess=None):
        super().__init__(workers=1, use_multiprocessing=False)
        self.x, self.batch_size, self.preprocess = x, batch_size, preprocess
        self._read = batch_reader(self.batch, x, count=len(self))

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, i):
        return self._read(i)

    def batch(self, i):
        images = self.x[i * self.batch_size : (i + 1) * self.batch_size].astype("float32")
        if len(images) < self.batch_size:
            pad = np.repeat(images[-1:], self.batch_size - len(images), axis=0)
            images = np.concatenate([images, pad])
        images = self.preprocess(images) if self.preprocess else images
        return (to_model_layout(np.asarray(images, "float32")),)
