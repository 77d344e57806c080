"""Data augmentation from Keras preprocessing layers (runs on every backend).

The levels follow what AlexNet (Krizhevsky et al., 2012) and VGG (Simonyan &
Zisserman, 2015) trained with: flips, random crops and scales, colour jitter.

* ``none``: the images as they are.
* ``basic``: horizontal flip and a random crop (a shift of up to 1/8 of the side
  with reflected borders, CIFAR's "pad 4, crop 32" at 32 px).
* ``strong``: ``basic`` plus a random scale (zoom in up to 25 %, out up to 10 %)
  and colour jitter (brightness, contrast; saturation and hue on RGB images).

Images are float32 in [0, 255], NHWC, before the family's ``preprocess_input``.
Each batch draws its randomness from a fresh ``SeedGenerator(seed)``, so a
batch's augmentation depends only on the seed it is given (``(run seed, step)``,
see :class:`~keras_cnnclassics.training.data.TrainBatches`), not on how many
batches came before: a resumed run augments exactly like an uninterrupted one.
"""

from __future__ import annotations

import zlib

import keras
import numpy as np
from keras import layers

__all__ = ["augmentation_layers", "Augmenter"]

VALUE_RANGE = (0.0, 255.0)


def augmentation_layers(level: str, channels: int) -> list:
    """The preprocessing layers of ``level`` for images with ``channels`` channels."""
    if level == "none":
        return []
    common = {"data_format": "channels_last"}
    out = [
        layers.RandomFlip("horizontal", **common),
        layers.RandomTranslation(0.125, 0.125, fill_mode="reflect", **common),
    ]
    if level == "basic":
        return out
    if level != "strong":
        raise ValueError(f"augment must be none, basic or strong; got {level!r}.")
    out.insert(1, layers.RandomZoom((-0.25, 0.1), fill_mode="reflect", **common))
    out += [
        layers.RandomBrightness(0.2, value_range=VALUE_RANGE, **common),
        layers.RandomContrast(0.2, value_range=VALUE_RANGE, data_format="channels_last"),
    ]
    if channels == 3:
        out += [
            layers.RandomSaturation((0.3, 0.7), value_range=VALUE_RANGE, **common),
            layers.RandomHue(0.05, value_range=VALUE_RANGE, **common),
        ]
    return out


def _seed_int(seed) -> int:
    """A 31-bit integer from a seed tuple such as ``(run_seed, step)``."""
    return zlib.crc32(np.asarray(seed, dtype="int64").tobytes()) & 0x7FFFFFFF


class Augmenter:
    """``Augmenter(level, channels)(images, seed) -> images`` (numpy float32, NHWC)."""

    def __init__(self, level: str, channels: int):
        self.level = level
        self.layers = augmentation_layers(level, channels)

    def __bool__(self):
        return bool(self.layers)

    def __call__(self, images, seed):
        if not self.layers:
            return images
        generator = keras.random.SeedGenerator(_seed_int(seed))
        x = keras.ops.convert_to_tensor(images, dtype="float32")
        for layer in self.layers:
            transform = layer.get_random_transformation(x, training=True, seed=generator)
            x = layer.transform_images(x, transform, training=True)
        x = keras.ops.convert_to_numpy(x)
        return np.clip(x, *VALUE_RANGE).astype("float32")
