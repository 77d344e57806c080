"""Weight initialisers drawn with NumPy on the host, for models with many kernel shapes.

On the JAX backend every Keras random initialiser call is a jitted function, so
each *distinct* kernel shape costs one XLA compilation (about 1.8 s of CPU per
shape, measured on the 2-core CI machine). Networks whose kernels almost all
differ in shape (DenseNet: every dense layer sees a different number of input
channels) spend minutes building before they run. :class:`HostVarianceScaling`
draws the same distributions as ``keras.initializers.VarianceScaling`` with
NumPy, which compiles nothing; it respects ``keras.utils.set_random_seed``
(NumPy's global generator) or its own integer ``seed``.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import math
import os

import keras
import numpy as np
from keras import ops

from keras_cnnclassics.layers import PACKAGE

__all__ = ["HostVarianceScaling", "host_he_normal"]

_TRUNCATION_STDDEV = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]
# Kernels are drawn in chunks of this many values, each from its own child generator,
# on all cores (NumPy releases the GIL while it fills an array): the same values for a
# seed whatever the core count; a 3x3x512x512 kernel in 4.2-4.5 instead of 7.4 ms on
# the 2-core CI machine.
_CHUNK = 1 << 17
_BLOCK = 1 << 17  # normals per Box-Muller step: their temporaries stay in a core's L2 cache
_HELPERS = len(os.sched_getaffinity(0)) - 1  # pool threads beside the calling one
_POOL = None


def _pool():
    global _POOL
    if _POOL is None:
        _POOL = concurrent.futures.ThreadPoolExecutor(max(1, _HELPERS))
    return _POOL


def _run_shared(task, count):
    """Run ``task(0) .. task(count - 1)`` on this thread and the pool's, each taking the
    next index as it finishes one. In a ResNet-152 build on the 2-core CI machine the
    kernels took 0.13 s this way, 0.19 s when this thread waited on ``pool.map``."""
    indices = itertools.count()

    def drain():
        index = next(indices)
        while index < count:
            task(index)
            index = next(indices)

    helpers = [_pool().submit(drain) for _ in range(min(_HELPERS, count - 1))]
    try:
        drain()
    finally:
        for helper in helpers:
            if not helper.cancel():  # one that has not started has nothing left to do
                helper.result()


def _fans(shape):
    """(fan_in, fan_out) as Keras computes them: kernels are (..., in, out)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        size = shape[0] if shape else 1
        return size, size
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _mantissa_uniforms(rng, size):
    """``size`` float32 uniforms in [1, 2): 23 random bits under the exponent of 1.0, two
    per 64-bit word of the bit generator (~30 % cheaper than ``Generator.random``)."""
    bits = rng.bit_generator.random_raw(-(-size // 2)).view(np.uint32)[:size]
    np.right_shift(bits, 9, out=bits)
    np.bitwise_or(bits, np.uint32(0x3F800000), out=bits)
    return bits.view(np.float32)


def _box_muller(rng, out, tails):
    """Fill the float32 vector ``out`` with unit normals by the Box-Muller transform (Box &
    Muller, 1958). The radius reaches 5.7 sigma from 23-bit uniforms, or with ``tails``
    8.6 sigma from float64 ones."""
    half = -(-out.size // 2)
    if tails:
        radius = rng.random(half)
        np.subtract(1, radius, out=radius)  # (0, 1]: the log is finite
        angle = rng.random(half, dtype=np.float32)
    else:
        uniforms = _mantissa_uniforms(rng, 2 * half)
        radius, angle = uniforms[:half], uniforms[half:]
        np.subtract(np.float32(2), radius, out=radius)  # (0, 1]
    np.log(radius, out=radius)
    radius *= -2
    radius = radius.astype(np.float32, copy=False)
    np.sqrt(radius, out=radius)
    angle *= np.float32(2 * math.pi)  # cos and sin have period 1 in the uniform
    sine_half = out.size - half  # one shorter than the cosine half for an odd size
    np.cos(angle, out=out[:half])
    out[:half] *= radius
    np.sin(angle[:sine_half], out=out[half:])
    out[half:] *= radius[:sine_half]


def _fill_standard_normal(rng, out, bound=None):
    """Fill the float32 vector ``out`` with unit normals; with ``bound``, redraw those beyond
    +-bound until none is left (a normal truncated to [-bound, bound]).

    Box-Muller over NumPy's SIMD log/sin/cos, a cache-sized block at a time, draws a
    million values in about 2.6 ms on one core (2.9 ms truncated) on the CI machine,
    where ``Generator.standard_normal`` (a scalar ziggurat) takes 8.8 ms. Truncated
    draws need no tails, so they take the cheaper 23-bit uniforms for the radius.
    """
    tails = bound is None
    for start in range(0, out.size, _BLOCK):
        block = out[start : start + _BLOCK]
        _box_muller(rng, block, tails)
        if bound is None:
            continue
        # ~4.6 % of unit normals lie beyond 2 sigma: replace those, in index order, by
        # the values within the bound of a fresh draw (a third more than needed).
        outside = np.flatnonzero(np.abs(block) > bound)
        while outside.size:
            spare = np.empty(outside.size + outside.size // 3 + 16, np.float32)
            _box_muller(rng, spare, tails)
            spare = spare[np.abs(spare) <= bound][: outside.size]
            block[outside[: spare.size]] = spare
            outside = outside[spare.size :]


def _as_backend_tensor(values, dtype):
    """``values`` as a backend tensor of ``dtype``, without a copy where the backend takes
    the array as it is (Keras' ``convert_to_tensor`` copies NumPy input; a copy into
    fresh memory costs ~2 ms per million values on the CI machine, mostly page faults):
    PyTorch on its CPU device shares a float32 array, and JAX's CPU client adopts a
    64-byte aligned one (see :func:`_aligned_empty`; elsewhere ``device_put`` copies)."""
    backend = keras.backend.backend()
    if backend == "torch" and dtype == "float32":
        import torch
        from keras.src.backend.torch.core import get_device

        if str(get_device()) == "cpu":
            return torch.from_numpy(values)
    if backend == "jax" and dtype == "float32":
        import jax

        return jax.device_put(values)
    return ops.convert_to_tensor(values, dtype=dtype)


def _aligned_empty(size, alignment=64):
    """An uninitialised float32 vector whose data starts on an ``alignment``-byte boundary."""
    raw = np.empty(size + alignment // 4, np.float32)
    start = (-raw.ctypes.data % alignment) // 4
    return raw[start : start + size]


@keras.saving.register_keras_serializable(package=PACKAGE)
class HostVarianceScaling(keras.initializers.VarianceScaling):
    """``keras.initializers.VarianceScaling`` sampled with NumPy (see module docstring).

    ``truncated_normal`` redraws values beyond two standard deviations and
    corrects the standard deviation as Keras does; ``untruncated_normal`` and
    ``uniform`` are the plain distributions with Keras' scales.
    """

    def _seed_sequence(self):
        if isinstance(self._init_seed, int):
            return np.random.SeedSequence(self._init_seed)
        # Seeded from NumPy's global state, which keras.utils.set_random_seed seeds.
        return np.random.SeedSequence(int(np.random.randint(0, 2**63 - 1, dtype=np.int64)))

    def _fill(self, rng, out, factor):
        """Fill the float32 vector ``out`` with the distribution times ``factor``."""
        if self.distribution == "uniform":
            rng.random(out=out, dtype=np.float32)
            out *= np.float32(2 * factor)
            out -= np.float32(factor)
        else:
            bound = 2.0 if self.distribution == "truncated_normal" else None
            _fill_standard_normal(rng, out, bound)
            out *= np.float32(factor)

    def _sample(self, shape, scale):
        if self.distribution == "uniform":
            factor = math.sqrt(3.0 * scale)
        elif self.distribution == "truncated_normal":
            factor = math.sqrt(scale) / _TRUNCATION_STDDEV
        else:
            factor = math.sqrt(scale)
        values = _aligned_empty(math.prod(shape))
        seeds = self._seed_sequence().spawn(max(1, -(-values.size // _CHUNK)))

        def fill(i):
            chunk = values[i * _CHUNK : (i + 1) * _CHUNK]
            self._fill(np.random.default_rng(seeds[i]), chunk, factor)

        _run_shared(fill, len(seeds))
        return values.reshape(shape)

    def __call__(self, shape, dtype=None):
        fan_in, fan_out = _fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out}.get(self.mode, (fan_in + fan_out) / 2.0)
        scale = self.scale / max(1.0, fan)
        values = self._sample(tuple(int(s) for s in shape), scale)
        return _as_backend_tensor(values, keras.backend.standardize_dtype(dtype or keras.config.floatx()))


def host_he_normal(seed=None):
    """He (Kaiming) normal initialisation, as ``"he_normal"``, drawn with NumPy."""
    return HostVarianceScaling(2.0, "fan_in", "truncated_normal", seed=seed)
