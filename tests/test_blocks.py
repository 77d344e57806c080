"""Shared blocks against PyTorch: max pooling with padding and ceil mode."""

import itertools

import numpy as np
import pytest

import keras
from keras_cnnclassics import blocks
from keras_cnnclassics.layers import PoolPadding2D

from reference import require

# (kernel, stride, padding) as the families use them, and the other valid ones
# (PyTorch requires padding <= kernel / 2).
POOLS = [(k, s, p) for k, s, p in itertools.product((2, 3), (1, 2, 3), (0, 1)) if p <= k // 2]


def _keras_pool(size, kernel, stride, padding, ceil_mode, data_format="channels_last", width=None):
    width = size + 1 if width is None else width
    shape = (size, width, 4) if data_format == "channels_last" else (4, size, width)
    inputs = keras.Input(shape)
    outputs = blocks.max_pool2d(inputs, kernel, stride, padding, name="pool", ceil_mode=ceil_mode)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("kernel, stride, padding", POOLS)
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_max_pool2d_equals_torch(kernel, stride, padding, ceil_mode):
    torch = require("torch")
    for size in range(max(kernel, 4), 14):
        model = _keras_pool(size, kernel, stride, padding, ceil_mode)
        x = np.random.default_rng(size).normal(size=(2, size, size + 1, 4)).astype("float32")
        expected = torch.nn.functional.max_pool2d(
            torch.from_numpy(x).permute(0, 3, 1, 2), kernel, stride, padding, ceil_mode=ceil_mode
        ).permute(0, 2, 3, 1).numpy()
        got = np.asarray(model.predict(x, verbose=0))
        assert got.shape == expected.shape, (size, got.shape, expected.shape)
        np.testing.assert_array_equal(got, expected)


def test_pool_padding_only_where_windows_need_it():
    # SqueezeNet 1.1 at 224: 111 -> 55, 55 -> 27, 27 -> 13 all tile exactly in ceil mode.
    for size in (111, 55, 27):
        layers = _keras_pool(size, 3, 2, 0, ceil_mode=True, width=size).layers
        assert not any(isinstance(layer, PoolPadding2D) for layer in layers)
    # GoogLeNet at 224: 112 needs one more window than floor mode.
    model = _keras_pool(112, 3, 2, 0, ceil_mode=True, width=113)
    pads = [layer for layer in model.layers if isinstance(layer, PoolPadding2D)]
    assert [p.padding for p in pads] == [((0, 1), (0, 0))]  # width 113 tiles exactly
    # stride 1 with symmetric padding is a "same" pool, no padding layer
    stride_one = _keras_pool(28, 3, 1, 1, ceil_mode=True).layers
    assert [type(layer).__name__ for layer in stride_one[1:]] == ["MaxPooling2D"]
    assert stride_one[-1].padding == "same"


def test_max_pool2d_channels_first_equals_torch():
    torch = require("torch")
    previous = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_first")
    try:
        for kernel, stride, padding in POOLS:
            model = _keras_pool(13, kernel, stride, padding, True, "channels_first")
            x = np.random.default_rng(0).normal(size=(2, 4, 13, 14)).astype("float32")
            expected = torch.nn.functional.max_pool2d(torch.from_numpy(x), kernel, stride, padding, ceil_mode=True)
            np.testing.assert_array_equal(np.asarray(model.predict(x, verbose=0)), expected.numpy())
    finally:
        keras.config.set_image_data_format(previous)
