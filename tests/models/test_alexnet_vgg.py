"""Numerical parity with torchvision for AlexNet and VGG (weights copied layer by layer)."""

import numpy as np
import pytest

import keras_cnnclassics as kc
from keras_cnnclassics.convert import state_dict_to_keras

from support.parity_tolerance import assert_logits_close, calibration_images, condition_batchnorm
from support.reference import torch_logits, torch_reference


@pytest.mark.parametrize(
    "name, size",
    [
        ("alexnet", 224),
        ("alexnet", 227),
        pytest.param("vgg11_bn", 64, marks=pytest.mark.heavy("parity-vgg11_bn")),
        pytest.param("vgg13", 32, marks=pytest.mark.heavy("parity-vgg13")),
    ],
)
def test_logits_match_torchvision(name, size):
    spec = kc.registry.get_spec(name)
    reference = condition_batchnorm(torch_reference(spec.reference), calibration_images(size))
    model = kc.get_model(name, input_shape=(size, size, 3), classifier_activation=None)
    state_dict_to_keras(model, reference.state_dict())
    x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype("float32")
    got = np.asarray(model.predict(x, verbose=0))
    expected = torch_logits(reference, x)
    assert_logits_close(got, expected)
