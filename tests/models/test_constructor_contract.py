"""The keras.applications constructor contract, on the first families' models.

Input validation, include_top/pooling, input_tensor, naming, weights files and
their errors, channels_first, preprocess_input.
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from support.capabilities import needs_channels_first

import keras
import keras_cnnclassics as kc
from keras_cnnclassics.applications import deep_graph_recursion
from keras_cnnclassics.profiler import shapes_only
from keras_cnnclassics.registry import all_specs
from keras_cnnclassics.weights import save_weights


# How a too-small input is reported: Keras' "Computed output size would be zero or
# negative", or a family's own check ("height and width must be >= 32", "too small").
TOO_SMALL = re.compile(r"output size would be zero or negative|must be >= \d+|too small")


def _builds_with_positive_shapes(spec, size):
    """Build the raw backbone at ``size`` x ``size``; True if every layer output is non-empty."""
    channels = spec.input_shape[-1]
    try:
        inputs = keras.Input((size, size, channels))
        outputs = spec.builder(
            inputs, include_top=False, classes=10, classifier_activation=None, pooling=None,
            **spec.options,
        )
        with deep_graph_recursion():
            model = keras.Model(inputs, outputs)
    except ValueError as error:
        if not TOO_SMALL.search(str(error)):
            raise  # any other failure is a bug, not a size limit
        return False
    for layer in model.layers:
        for shape in [layer.output.shape] if hasattr(layer.output, "shape") else []:
            if any(d is not None and d <= 0 for d in shape[1:]):
                return False
    return True


@pytest.mark.parametrize("spec", [pytest.param(s, id=s.name) for s in all_specs()])
def test_declared_min_size_is_the_architectures_minimum(spec):
    with shapes_only():  # shapes are all this needs; skip weight initialisation
        assert _builds_with_positive_shapes(spec, spec.min_size)
        assert not _builds_with_positive_shapes(spec, spec.min_size - 1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_shape": (16, 16, 3)}, "too small"),
        ({"input_shape": (64, 64)}, "tuple of 3 integers"),
        ({"input_shape": (64, 64, 0)}, "channel axis"),
        ({"input_shape": (64, -3, 3)}, "positive integers"),
        ({"pooling": "mean", "include_top": False}, "pooling must be"),
        ({"classes": 0}, "classes must be a positive integer"),
        ({"classes": 2.5}, "classes must be a positive integer"),
        ({"include_top": "yes"}, "include_top must be True or False"),
        ({"weights": "imagenet1k_v9"}, "unknown weights 'imagenet1k_v9'; published tags: imagenet"),
        ({"weights": 3}, "weights must be None or the path"),
        ({"weights": "missing.weights.h5"}, "does not exist"),
        ({"weights": "model.pth"}, "must end in"),
        ({"classifier_activation": "sofmax"}, "unknown classifier_activation"),
        ({"depth": 16}, "unknown option"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kc.AlexNet(**kwargs)


def test_fixed_top_rejects_other_sizes_but_backbone_accepts_them():
    with pytest.raises(ValueError, match="include_top=False"):
        kc.LeNet5(input_shape=(40, 40, 1))
    with pytest.raises(ValueError, match="include_top=False"):
        kc.LeNet5(input_shape=(None, None, 1))
    model = kc.LeNet5(include_top=False, input_shape=(None, None, 1), pooling="max")
    assert model.output_shape == (None, 120)


def test_variable_input_size_with_global_pooling():
    model = kc.VGG11(include_top=False, input_shape=(None, None, 3), pooling="avg")
    assert model.output_shape == (None, 512)
    for size in (32, 48):
        out = model.predict(np.zeros((1, size, size, 3), "float32"), verbose=0)
        assert out.shape == (1, 512)


def test_alexnet_accepts_224_and_227():
    for size in (224, 227):
        model = kc.AlexNet(input_shape=(size, size, 3), classes=5)
        assert model.get_layer("features_12").output.shape[1:3] == (6, 6)
        assert model.output_shape == (None, 5)


def test_input_tensor_and_two_copies_in_one_graph():
    inputs = keras.Input((32, 32, 1))
    a = kc.LeNet5(input_tensor=inputs, name="lenet_a")
    b = kc.LeNet5(input_tensor=inputs, name="lenet_b")
    assert a.name == "lenet_a" and b.name == "lenet_b"
    joint = keras.Model(inputs, keras.layers.Average()([a.output, b.output]))
    assert joint.output_shape == (None, 10)


def test_nested_copies_have_independent_weights():
    inputs = keras.Input((32, 32, 1))
    outs = [kc.LeNet5(name=f"m{i}")(inputs) for i in range(2)]
    ensemble = keras.Model(inputs, keras.layers.Average()(outs))
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 1)).astype("float32")
    assert ensemble.predict(x, verbose=0).shape == (2, 10)


def test_weights_round_trip_and_atomic_no_overwrite(tmp_path):
    model = kc.LeNet5_CS231n(classes=10)
    path = tmp_path / "lenet.weights.h5"
    save_weights(model, path)
    with pytest.raises(FileExistsError):
        save_weights(model, path)
    reloaded = kc.LeNet5_CS231n(weights=str(path))
    x = np.random.default_rng(1).uniform(size=(2, 28, 28, 1)).astype("float32")
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), model.predict(x, verbose=0))
    keras_path = tmp_path / "lenet.keras"
    model.save(keras_path)
    from_keras = kc.LeNet5_CS231n(weights=str(keras_path))
    np.testing.assert_array_equal(from_keras.predict(x, verbose=0), model.predict(x, verbose=0))
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]


def test_weights_with_another_head_size_name_the_head(tmp_path):
    path = tmp_path / "five.weights.h5"
    save_weights(kc.LeNet5_CS231n(classes=5), path)
    with pytest.raises(ValueError, match=r"fc2.*\(500, 10\).*\(500, 5\).*classes=5"):
        kc.LeNet5_CS231n(weights=str(path))


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "vgg11.weights.h5"
    save_weights(kc.VGG11(include_top=False), path)
    with pytest.raises(ValueError, match=r"does not fit model 'vgg13'.*features_2"):
        kc.VGG13(include_top=False, weights=str(path))


def test_truncated_weights_file_is_refused(tmp_path):
    good = tmp_path / "good.weights.h5"
    save_weights(kc.LeNet5(), good)
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ValueError, match="Cannot read weights file"):
        kc.LeNet5(weights=str(bad))


@needs_channels_first
def test_channels_first_builds_and_matches_channels_last(tmp_path):
    model_last = kc.LeNet5_CS231n()
    path = tmp_path / "w.weights.h5"
    save_weights(model_last, path)
    x = np.random.default_rng(2).uniform(size=(2, 28, 28, 1)).astype("float32")
    expected = model_last.predict(x, verbose=0)
    keras.config.set_image_data_format("channels_first")
    model_first = kc.LeNet5_CS231n(input_shape=(1, 28, 28))
    assert model_first.input_shape == (None, 1, 28, 28)
    # Keras' Flatten restores (H, W, C) order in channels_first, so weights carry over as-is.
    model_first.set_weights(model_last.get_weights())
    got = model_first.predict(x.transpose(0, 3, 1, 2), verbose=0)
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("name", ["lenet5", "alexnet_original", "vgg11_bn"])
@needs_channels_first
def test_channels_first_every_first_family(name):
    keras.config.set_image_data_format("channels_first")
    spec = kc.registry.get_spec(name)
    h, w, c = spec.input_shape
    shape = (c, h, w) if not spec.flexible_top else (c, 32, 32)
    model = kc.get_model(name, include_top=not spec.flexible_top, input_shape=shape, pooling="avg")
    assert model.input_shape == (None, *shape)


def test_preprocess_input_is_torchvision_normalisation_and_not_in_place():
    from keras_cnnclassics.models.vgg import preprocess_input

    x = np.full((1, 2, 2, 3), 255.0, "float32")
    original = x.copy()
    y = preprocess_input(x)
    np.testing.assert_array_equal(x, original)
    expected = (1.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(y[0, 0, 0], expected, rtol=1e-6)
