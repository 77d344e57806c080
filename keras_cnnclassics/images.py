"""Image decoding, resizing and the bundled digits, shared by training, prediction and export.

* :func:`load_image_file` decodes one file the way
  ``keras.utils.image_dataset_from_directory(..., crop_to_aspect_ratio=True)``
  does (TensorFlow's decoders, centre crop, bilinear resize, ``uint8``).
* :func:`image_files` lists a folder's images recursively (the formats that
  Keras' directory reader takes).
* :func:`load_digits_data` gives scikit-learn's bundled real handwritten digits
  (1,797 8x8 images, 16 grey levels), scaled to [0, 255], resized bilinearly to
  the model's input size, grey replicated to the model's channel count, split
  stratified by class with a fixed seed.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageData",
    "bilinear_matrix",
    "image_files",
    "load_digits_data",
    "load_image_file",
    "require_tensorflow",
    "to_uint8",
    "unreadable_files",
]

# The formats keras.utils.image_dataset_from_directory reads.
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


@dataclasses.dataclass
class ImageData:
    """Training and validation images (``uint8``, NHWC) with integer labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    class_names: list
    skipped: int = 0
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def summary(self) -> str:
        skipped = f", {self.skipped} unreadable image(s) skipped" if self.skipped else ""
        return (
            f"{self.source}: {len(self.y_train)} training / {len(self.y_val)} validation "
            f"images, {self.num_classes} classes, {self.x_train.shape[1]}x"
            f"{self.x_train.shape[2]}x{self.x_train.shape[3]}{skipped}"
        )


def is_image_file(name) -> bool:
    """True for a visible file with one of :data:`IMAGE_SUFFIXES`."""
    return name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith(".")


def image_files(folder) -> list:
    """Every image file below ``folder`` (recursive, sorted; symlinked folders not followed)."""
    found = []
    _scan_images(os.fspath(folder), found)
    return sorted(found)


def _scan_images(directory, found):
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                _scan_images(entry.path, found)
            elif is_image_file(entry.name) and entry.is_file():
                found.append(entry.path)


def bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """``(out, in)`` bilinear interpolation weights with half-pixel centres.

    The sampling of ``tf.image.resize(..., "bilinear")`` (and PyTorch's
    ``align_corners=False``) when enlarging; pure numpy, so identical on every
    backend.
    """
    src = (np.arange(out_size) + 0.5) * in_size / out_size - 0.5
    src = np.clip(src, 0, in_size - 1)
    low = np.floor(src).astype(int)
    high = np.minimum(low + 1, in_size - 1)
    frac = src - low
    matrix = np.zeros((out_size, in_size))
    matrix[np.arange(out_size), low] += 1 - frac
    matrix[np.arange(out_size), high] += frac
    return matrix


def to_uint8(images):
    """Round and clip to ``uint8``."""
    return np.clip(np.rint(images), 0, 255).astype("uint8")


def load_digits_data(image_size, channels, val_split=0.2, seed=0) -> ImageData:
    """scikit-learn's digits resized to ``image_size`` with ``channels`` channels."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    grey = digits.images * (255.0 / 16.0)
    resize = bilinear_matrix(grey.shape[1], image_size)
    images = to_uint8(np.einsum("oh,nhw,pw->nop", resize, grey, resize))
    images = np.repeat(images[..., None], channels, axis=-1)
    labels = digits.target.astype("int32")
    train, val = train_test_split(
        np.arange(len(labels)), test_size=val_split, stratify=labels, random_state=seed
    )
    return ImageData(
        images[train], labels[train], images[val], labels[val],
        class_names=[str(c) for c in range(10)], source="digits (scikit-learn)",
    )


def require_tensorflow():
    """TensorFlow (its image decoders), or a ValueError saying how to install it."""
    try:
        import tensorflow as tf
    except ImportError:
        raise ValueError(
            "reading image files needs TensorFlow's decoders (keras.utils."
            "image_dataset_from_directory); install it: pip install tensorflow-cpu."
        ) from None
    return tf


def unreadable_files(paths, limit=5):
    """The first ``limit`` files TensorFlow cannot decode (to name them to the user)."""
    tf = require_tensorflow()
    bad = []
    for path in paths:
        try:
            tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError, ValueError):
            bad.append(path)
            if len(bad) >= limit:
                break
    return bad


def decode_image_file(path, channels):
    """An image file decoded by TensorFlow as a ``uint8`` tensor ``(H, W, channels)``;
    one clear ``ValueError`` for a missing, folder or undecodable path."""
    tf = require_tensorflow()
    path = os.fspath(path)
    if not os.path.isfile(path):
        what = "is a folder, not an image file" if os.path.isdir(path) else "does not exist"
        raise ValueError(f"cannot read image {path!r}: it {what}.")
    try:
        return tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
    except tf.errors.OpError as err:
        reason = err.message.splitlines()[0] if err.message else type(err).__name__
        reason = reason.split("}}")[-1].split("[Op:")[0].strip() or reason
        raise ValueError(f"cannot read image {path!r}: {reason}") from None


def load_image_file(path, image_size, channels) -> np.ndarray:
    """One image decoded exactly as Keras' directory reader does (``uint8`` HWC).

    ``image_dataset_from_directory(..., crop_to_aspect_ratio=True)``: decode,
    centre-crop to the target aspect ratio (Keras' ``smart_resize``), resize
    bilinearly, round to ``uint8``.
    """
    tf = require_tensorflow()
    image = decode_image_file(path, channels)
    height, width = int(image.shape[0]), int(image.shape[1])
    side = min(height, width)  # smart_resize's crop for a square target
    top, left = (height - side) // 2, (width - side) // 2
    image = image[top : top + side, left : left + side]
    image = tf.image.resize(image, (image_size, image_size), method="bilinear")
    return to_uint8(image.numpy())
