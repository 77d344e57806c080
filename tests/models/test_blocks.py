"""Shared blocks against PyTorch: max pooling with padding and ceil mode, adaptive average
pooling, the channel affine; out of Keras' own layers wherever they compute the same."""

import itertools

import numpy as np
import pytest

import keras
from keras_cnnclassics import blocks
from keras_cnnclassics.layers import AdaptiveAveragePooling2D, PoolPadding2D

from support.reference import require

# (kernel, stride, padding) as the families use them, and the other valid ones
# (PyTorch requires padding <= kernel / 2).
POOLS = [(k, s, p) for k, s, p in itertools.product((2, 3), (1, 2, 3), (0, 1)) if p <= k // 2]


def _keras_pool(size, kernel, stride, padding, ceil_mode, data_format="channels_last", width=None,
                after_relu=False):
    width = size + 1 if width is None else width
    shape = (size, width, 4) if data_format == "channels_last" else (4, size, width)
    inputs = keras.Input(shape)
    x = blocks.relu(inputs, "relu") if after_relu else inputs
    outputs = blocks.max_pool2d(x, kernel, stride, padding, name="pool", ceil_mode=ceil_mode)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("kernel, stride, padding", POOLS)
@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("after_relu", [False, True], ids=["any-input", "after-relu"])
def test_max_pool2d_equals_torch(kernel, stride, padding, ceil_mode, after_relu):
    torch = require("torch")
    for size in range(max(kernel, 4), 14):
        model = _keras_pool(size, kernel, stride, padding, ceil_mode, after_relu=after_relu)
        x = np.random.default_rng(size).normal(size=(2, size, size + 1, 4)).astype("float32")
        reference = torch.from_numpy(np.maximum(x, 0) if after_relu else x).permute(0, 3, 1, 2)
        expected = torch.nn.functional.max_pool2d(
            reference, kernel, stride, padding, ceil_mode=ceil_mode
        ).permute(0, 2, 3, 1).numpy()
        got = np.asarray(model.predict(x, verbose=0))
        assert got.shape == expected.shape, (size, got.shape, expected.shape)
        np.testing.assert_array_equal(got, expected)
        if after_relu:  # Keras' own layers only: a zero border never wins after a ReLU
            assert not any(isinstance(layer, PoolPadding2D) for layer in model.layers)


def _layer_types(model):
    return [type(layer).__name__ for layer in model.layers[1:]]


def test_pool_padding_only_where_windows_need_it():
    # SqueezeNet 1.1 at 224: 111 -> 55, 55 -> 27, 27 -> 13 all tile exactly in ceil mode.
    for size in (111, 55, 27):
        model = _keras_pool(size, 3, 2, 0, ceil_mode=True, width=size)
        assert _layer_types(model) == ["MaxPooling2D"] and model.layers[-1].padding == "valid"
    # GoogLeNet at 224: 112 needs one more window than floor mode, the one Keras' "same" adds
    model = _keras_pool(112, 3, 2, 0, ceil_mode=True, width=112)
    assert _layer_types(model) == ["MaxPooling2D"] and model.layers[-1].padding == "same"
    # ... but a width of 113 tiles exactly, where "same" would pad: only the height is padded
    model = _keras_pool(112, 3, 2, 0, ceil_mode=True, width=113)
    assert _layer_types(model) == ["PoolPadding2D", "MaxPooling2D"]
    assert model.layers[1].padding == ((0, 1), (0, 0))
    # stride 1 with symmetric padding is a "same" pool, no padding layer
    stride_one = _keras_pool(28, 3, 1, 1, ceil_mode=True)
    assert _layer_types(stride_one) == ["MaxPooling2D"] and stride_one.layers[-1].padding == "same"
    # ResNet's stem pool (3x3/2, padding 1) at 112 reads one padded row before "same"'s windows:
    # zeros after a ReLU, the repeated border otherwise
    after_relu = _keras_pool(112, 3, 2, 1, ceil_mode=False, width=112, after_relu=True)
    assert _layer_types(after_relu) == ["ReLU", "ZeroPadding2D", "MaxPooling2D"]
    anything = _keras_pool(112, 3, 2, 1, ceil_mode=False, width=112)
    assert _layer_types(anything) == ["PoolPadding2D", "MaxPooling2D"]
    assert anything.layers[1].padding == ((1, 1), (1, 1))


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


def _adaptive(size, output_size):
    inputs = keras.Input((size, size + 2 if size > 1 else size, 3))
    return keras.Model(inputs, blocks.adaptive_avg_pool(inputs, output_size, name="avgpool"))


# (input height, output size, the layer that computes it): width = height + 2
ADAPTIVE = [(7, (7, 9), None), (9, 1, "GlobalAveragePooling2D"), (14, (7, 8), "AveragePooling2D"),
            (1, 7, "UpSampling2D"), (2, (4, 8), "UpSampling2D"), (10, 7, "AdaptiveAveragePooling2D")]


@pytest.mark.parametrize("size, output_size, layer", ADAPTIVE)
def test_adaptive_avg_pool_equals_torch_with_kerass_layers_where_bins_allow(size, output_size, layer):
    torch = require("torch")
    model = _adaptive(size, output_size)
    assert [type(item).__name__ for item in model.layers[1:]] == ([layer] if layer else [])
    assert (layer == "AdaptiveAveragePooling2D") == any(isinstance(item, AdaptiveAveragePooling2D)
                                                        for item in model.layers)
    x = np.random.default_rng(size).normal(size=(2, *model.input_shape[1:])).astype("float32")
    expected = torch.nn.functional.adaptive_avg_pool2d(
        torch.from_numpy(x).permute(0, 3, 1, 2), output_size).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(np.asarray(model.predict(x, verbose=0)).reshape(expected.shape), expected,
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_channel_affine_is_kerass_rescaling_per_channel(data_format):
    previous = keras.config.image_data_format()
    keras.config.set_image_data_format(data_format)
    try:
        shape = (5, 4, 3) if data_format == "channels_last" else (3, 5, 4)
        inputs = keras.Input(shape)
        model = keras.Model(inputs, blocks.channel_affine(inputs, [1.0, 2.0, 3.0], [0.5, -1.0, 0.0], name="affine"))
        assert type(model.layers[-1]) is keras.layers.Rescaling
        x = np.random.default_rng(0).normal(size=(2, *shape)).astype("float32")
        axis = -1 if data_format == "channels_last" else 1
        broadcast = [1, 1, 1, 1]
        broadcast[axis] = 3
        expected = x * np.reshape([1.0, 2.0, 3.0], broadcast) + np.reshape([0.5, -1.0, 0.0], broadcast)
        np.testing.assert_allclose(np.asarray(model.predict(x, verbose=0)), expected, rtol=1e-6, atol=1e-6)
    finally:
        keras.config.set_image_data_format(previous)
