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


def model_params(heavy_only=False):
    """pytest params over every registry model; big ones marked ``heavy`` (sampled)."""
    params = []
    for spec in all_specs():
        marks = [pytest.mark.heavy(spec.name)] if spec.heavy else []
        if heavy_only and not spec.heavy:
            continue
        params.append(pytest.param(spec, id=spec.name, marks=marks))
    return params


def random_images(shape, batch=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (batch, *shape)).astype("float32")
