"""``preprocess_input`` functions: the normalisation each family's weights expect.

Inputs are images with values in [0, 255] (numpy arrays or backend tensors, in
the configured data format). The argument is never modified in place.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from keras_cnnclassics.blocks import channel_axis

# torchvision's ImageNet normalisation (transforms.Normalize in every weights entry).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# timm's IMAGENET_INCEPTION_MEAN / _STD: [0, 1] to [-1, 1] (keras.applications' "tf" mode).
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)


def normalize(x, mean, std, scale=255.0):
    """``(x / scale - mean) / std`` per channel; returns a new float32 array/tensor."""
    shape = [1] * len(np.shape(x))
    shape[channel_axis()] = len(mean)
    mean = np.asarray(mean, "float32").reshape(shape)
    std = np.asarray(std, "float32").reshape(shape)
    if isinstance(x, (np.ndarray, list, tuple, int, float)):
        return ((np.asarray(x, "float32") / scale) - mean) / std
    return (ops.cast(x, "float32") / scale - mean) / std


def torch_preprocess_input(x, data_format=None):
    """torchvision's ImageNet normalisation: ``(x / 255 - mean) / std`` (RGB)."""
    del data_format  # the configured image_data_format decides the channel axis
    return normalize(x, IMAGENET_MEAN, IMAGENET_STD)


def inception_preprocess_input(x, data_format=None):
    """timm's Inception normalisation: ``(x / 255 - 0.5) / 0.5`` (RGB, to [-1, 1]);
    the pre-activation ResNets' weights (timm ``resnetv2_*``) expect it."""
    del data_format
    return normalize(x, INCEPTION_MEAN, INCEPTION_STD)


def unit_preprocess_input(x, data_format=None):
    """Scale [0, 255] images to [0, 1] (models trained from scratch here, e.g. LeNet-5)."""
    del data_format
    channels = np.shape(x)[channel_axis()]
    return normalize(x, (0.0,) * channels, (1.0,) * channels)
