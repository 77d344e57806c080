"""Parameter counting with PyTorch's convention.

``keras.Model.count_params()`` includes BatchNormalization's moving mean and
variance, which PyTorch keeps as buffers, not parameters. The package's parameter
counts (registry metadata, tests, profiler, README) are PyTorch's: every variable
except those moving statistics, trainable or frozen alike.
"""

from __future__ import annotations

import math

import keras


def _is_running_statistic(layer, variable):
    return isinstance(layer, keras.layers.BatchNormalization) and any(
        variable is stat for stat in (layer.moving_mean, layer.moving_variance)
    )


def layer_params(layer) -> int:
    """Parameters of one layer (nested models included), BN moving stats excluded."""
    if isinstance(layer, keras.Model):
        return sum(layer_params(sub) for sub in layer.layers)
    return sum(
        math.prod(v.shape) for v in layer.weights if not _is_running_statistic(layer, v)
    )


def count_params(model) -> int:
    """Total parameters of ``model`` as ``sum(p.numel() for p in torch_model.parameters())``."""
    return layer_params(model)
