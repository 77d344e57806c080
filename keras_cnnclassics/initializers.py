"""Keras' ``VarianceScaling`` initialiser drawn with NumPy on the host.

On the JAX backend every Keras random initialiser call is a jitted function, so
each distinct kernel shape costs one XLA compilation; networks whose kernels
almost all differ in shape (DenseNet: every dense layer sees a different number
of input channels) would spend minutes building. :class:`HostVarianceScaling`
draws the same distributions with NumPy, which compiles nothing. It respects
``keras.utils.set_random_seed`` (NumPy's global generator) or its own integer
``seed``, and is saved as ``keras.initializers.VarianceScaling`` with the same
arguments, so a saved model does not need this package.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from keras_cnnclassics.layers import PACKAGE, SavedAsKerasClass

__all__ = ["HostVarianceScaling", "host_he_normal"]

TRUNCATION_BOUND = 2.0  # Keras truncates its normal at two standard deviations
_TRUNCATED_STDDEV = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]


def _fans(shape):
    """(fan_in, fan_out) as Keras computes them: kernels are (..., in, out)."""
    if len(shape) < 2:
        size = shape[0] if shape else 1
        return size, size
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def truncated_standard_normal(rng, shape):
    """Unit normals truncated to [-2, 2]: values outside are drawn again until none is left."""
    values = rng.standard_normal(shape, dtype=np.float32)
    outside = np.flatnonzero(np.abs(values) > TRUNCATION_BOUND)
    while outside.size:
        values.flat[outside] = rng.standard_normal(outside.size, dtype=np.float32)
        outside = outside[np.abs(values.flat[outside]) > TRUNCATION_BOUND]
    return values


class HostVarianceScaling(SavedAsKerasClass, keras.initializers.VarianceScaling):
    """``keras.initializers.VarianceScaling`` sampled with NumPy (see the module docstring).

    ``truncated_normal`` redraws values beyond two standard deviations and corrects
    the standard deviation as Keras does; ``untruncated_normal`` and ``uniform`` are
    the plain distributions with Keras' scales.
    """

    def _generator(self):
        if isinstance(self._init_seed, int):
            return np.random.default_rng(self._init_seed)
        # NumPy's global state, which keras.utils.set_random_seed sets.
        return np.random.default_rng(np.random.randint(0, 2**63 - 1, dtype=np.int64))

    def __call__(self, shape, dtype=None):
        shape = tuple(int(s) for s in shape)
        fan_in, fan_out = _fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out}.get(self.mode, (fan_in + fan_out) / 2.0)
        scale = self.scale / max(1.0, fan)
        rng = self._generator()
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * scale)
            values = rng.uniform(-limit, limit, shape).astype(np.float32)
        elif self.distribution == "truncated_normal":
            values = truncated_standard_normal(rng, shape) * np.float32(math.sqrt(scale) / _TRUNCATED_STDDEV)
        else:
            values = rng.standard_normal(shape, dtype=np.float32) * np.float32(math.sqrt(scale))
        return keras.ops.convert_to_tensor(values, dtype=dtype or keras.config.floatx())


def host_he_normal(seed=None):
    """He (Kaiming) normal initialisation (He et al., 2015), as ``"he_normal"``, drawn with NumPy."""
    return HostVarianceScaling(2.0, "fan_in", "truncated_normal", seed=seed)


# Files saved before the initialiser was saved as Keras' own name it "keras_cnnclassics>HostVarianceScaling".
keras.saving.get_custom_objects()[f"{PACKAGE}>HostVarianceScaling"] = HostVarianceScaling
