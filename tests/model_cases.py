"""Helpers shared by the per-model tests: which models, at which test input."""

from __future__ import annotations

import keras
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


# Compiling the training step of these 1000+-layer CIFAR networks with XLA on the
# CPU exceeded 16 GB (preact_resnet1001; resnet1202 passed 9 GB and was still
# growing) on the JAX backend, while inference compiles in about 1 GB and resnet110
# trains in 1 GB; their fit checks are therefore sampled on TensorFlow or PyTorch.
XLA_TRAINING_TOO_DEEP = frozenset({"preact_resnet1001", "resnet1202"})


def model_params(heavy_only=False, training=False):
    """pytest params over every registry model; all but EVERY_BACKEND sampled per backend.

    ``training``: the case fits the model, so XLA_TRAINING_TOO_DEEP skip JAX.
    """
    params = []
    for spec in all_specs():
        sampled = spec.heavy or spec.name not in EVERY_BACKEND
        backends = ("tensorflow", "torch") if training and spec.name in XLA_TRAINING_TOO_DEEP else None
        marks = [pytest.mark.heavy(spec.name, **({"backends": backends} if backends else {}))] if sampled else []
        if heavy_only and not spec.heavy:
            continue
        params.append(pytest.param(spec, id=spec.name, marks=marks))
    return params


def random_images(shape, batch=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (batch, *shape)).astype("float32")


def damp_residual_branches(model, factor=0.5):
    """Scale every convolution kernel of an untrained residual network by ``factor``.

    With He initialisation and BatchNorm at its initial statistics (mean 0,
    variance 1) every residual unit doubles the variance of its input: a
    1202-layer network overflows float32, and a 101-layer SE-ResNet reaches
    activations where float32 rounding differences between two runtimes (oneDNN's
    algorithms vs ONNX Runtime's) exceed any fixed tolerance. Scaled kernels make
    each branch a small addition to its shortcut, as a trained network's (or
    zero-init-last-BN's) are, so an export comparison measures the export.
    """
    for weight in model.weights:
        if weight.path.endswith("kernel") and len(weight.shape) == 4:
            weight.assign(keras.ops.convert_to_numpy(weight) * factor)
    return model
