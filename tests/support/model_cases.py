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
# model's run on one backend per CI run (sampled, see conftest.py), which keeps the
# three-backend suite inside CI's time. Parameter counts and minimum sizes are still
# checked for every model on every backend.
EVERY_BACKEND = frozenset({
    "lenet5", "lenet5_cs231n", "resnet20", "resnet18", "squeezenet1_1", "googlenet",
    "densenet_bc100_k12_cifar", "nin", "seresnet18", "resnext29_8x64d",
})

# One model per distinct construction -- each builder with each of its block types and
# options (basic or bottleneck, grouped, squeeze-excitation,
# wide, pre-activation, stochastic depth, DenseNet or DenseNet-BC, LRN and split
# convolutions) -- at its smallest. Their per-model sampled cases (forward/save/fit,
# contract, features, profile, conversion, export) run in every CI run, each on one
# backend, rotating. The per-model cases of the other models repeat those checks at
# other depths and widths of the same code: they form the *sweep*, which CI runs a
# group at a time (conftest.SWEEP_GROUPS) and ``--full`` runs whole.
REPRESENTATIVES = EVERY_BACKEND | frozenset({
    "alexnet", "alexnet_original", "zfnet", "vgg11", "googlenet_original",
    "inception_v3", "squeezenet1_0", "densenet121", "densenet40_k12_cifar", "fractalnet20",
    "resnet50", "resnext50_32x4d", "seresnext26_32x4d",
    "preact_resnet18", "preact_resnet50", "preact_resnet164", "resnet110_stochastic_depth", "wrn16_8",
})


# The 1000+-layer CIFAR networks. (1) XLA on the CPU compiles each as one program,
# which costs more memory and time than a 24 GB, 2-core CI run can spare:
# resnet1202's inference held 13 GB after a 267 s compile, preact_resnet1001's
# training step passed 16 GB; their sampled cases run on PyTorch or TensorFlow.
# (2) Untrained, their inference overflows float32 (see damp_residual_branches).
THOUSAND_LAYER_NETS = frozenset({"preact_resnet1001", "resnet1202"})


def heavy(key, model_name):
    """The ``heavy`` mark of a sampled per-model case of ``model_name`` (see conftest.py):
    part of the sweep unless the model is one of the REPRESENTATIVES."""
    options = {"sweep": model_name not in REPRESENTATIVES}
    if model_name in THOUSAND_LAYER_NETS:
        options["backends"] = ("torch", "tensorflow")
    return pytest.mark.heavy(key, **options)


def model_params(heavy_only=False):
    """pytest params over every registry model; all but EVERY_BACKEND sampled per backend."""
    params = []
    for spec in all_specs():
        sampled = spec.heavy or spec.name not in EVERY_BACKEND
        marks = [heavy(spec.name, spec.name)] if sampled else []
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
