"""Helpers shared by the per-model tests: which models, at which test input."""

from __future__ import annotations

import numpy as np
import pytest

from keras_cnnclassics.registry import all_specs


def small_input_shape(spec):
    """A small valid input for ``spec``: its minimum size (>= 32) if the top allows."""
    h, w, c = spec.input_shape
    if not spec.flexible_top:
        return (h, w, c)
    size = max(spec.min_size, 32)
    return (min(size, h), min(size, w), c)


# Models whose full forward/save/fit checks run on every backend; every other
# model's run on one backend per CI run (sampled by name, see conftest.py), which
# keeps the three-backend suite inside CI's time. Parameter counts and minimum
# sizes are still checked for every model on every backend.
EVERY_BACKEND = frozenset({
    "lenet5", "lenet5_cs231n", "resnet20", "resnet18", "squeezenet1_1", "googlenet",
    "densenet_bc100_k12_cifar", "nin", "seresnet18", "resnext29_8x64d",
})


def model_params(heavy_only=False):
    """pytest params over every registry model; all but EVERY_BACKEND sampled per backend."""
    params = []
    for spec in all_specs():
        sampled = spec.heavy or spec.name not in EVERY_BACKEND
        marks = [pytest.mark.heavy(spec.name)] if sampled else []
        if heavy_only and not spec.heavy:
            continue
        params.append(pytest.param(spec, id=spec.name, marks=marks))
    return params


def random_images(shape, batch=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (batch, *shape)).astype("float32")


def calibrate_batch_norm(model, images):
    """Set every BatchNormalization's moving statistics to those of ``images``.

    An untrained very deep residual network (resnet1202, preact_resnet1001) in
    inference mode, with moving mean 0 and variance 1, doubles its activations'
    variance in every block and overflows float32; after one forward pass in
    training mode with momentum 0 its outputs are finite, as a trained model's are.
    """
    import keras

    norms = [layer for layer in _all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    model(images, training=True)
    for layer, momentum in zip(norms, momenta):
        layer.momentum = momentum
    return model


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)
