"""Host-side (NumPy) weight initialisation: Keras' distributions, reproducible, saved as Keras'."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from scipy import stats

from keras_cnnclassics.initializers import HostVarianceScaling, host_he_normal, truncated_standard_normal

SHAPE = (3, 3, 64, 128)  # fan_in 576, fan_out 1152: 73,728 values
TRUNCATED_STDDEV = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]


def _values(initializer, shape=SHAPE, dtype=None):
    return np.asarray(keras.ops.convert_to_numpy(initializer(shape, dtype=dtype)))


def _assert_drawn_from(values, distribution):
    """Kolmogorov-Smirnov: the values are a sample of ``distribution`` (scipy)."""
    assert stats.kstest(values.reshape(-1), distribution.cdf).pvalue > 1e-3


def test_he_normal_is_kerass_truncated_normal():
    values = _values(host_he_normal(seed=1))
    assert values.dtype == np.float32 and values.shape == SHAPE
    std = math.sqrt(2.0 / 576)
    scale = std / TRUNCATED_STDDEV  # the unit truncated normal's scale, as Keras corrects it
    _assert_drawn_from(values, stats.truncnorm(-2, 2, scale=scale))
    assert np.abs(values).max() <= 2 * scale * (1 + 1e-6)  # truncated at 2 sigma
    assert values.std() == pytest.approx(std, rel=0.02)


@pytest.mark.parametrize("distribution", ["untruncated_normal", "uniform"])
def test_other_distributions_are_kerass(distribution):
    values = _values(HostVarianceScaling(1.0, "fan_avg", distribution, seed=2))
    std = math.sqrt(1.0 / ((576 + 1152) / 2))
    if distribution == "uniform":
        limit = math.sqrt(3) * std
        _assert_drawn_from(values, stats.uniform(-limit, 2 * limit))
        assert np.abs(values).max() <= limit
    else:
        _assert_drawn_from(values, stats.norm(scale=std))
    assert values.std() == pytest.approx(std, rel=0.02)


@pytest.mark.parametrize("mode, fan", [("fan_in", 576), ("fan_out", 1152), ("fan_avg", 864)])
def test_modes_scale_by_kerass_fans(mode, fan):
    values = _values(HostVarianceScaling(3.0, mode, "untruncated_normal", seed=6))
    assert values.std() == pytest.approx(math.sqrt(3.0 / fan), rel=0.02)


@pytest.mark.parametrize("shape", [(), (1,), (7,), (5, 3)])
def test_small_and_odd_shapes_and_requested_dtypes(shape):
    values = _values(host_he_normal(seed=3), shape, dtype="float16")
    assert values.shape == shape and values.dtype == np.float16 and np.isfinite(values).all()


def test_truncated_standard_normal_redraws_until_all_are_within_two():
    values = truncated_standard_normal(np.random.default_rng(0), (300_001,))
    assert np.abs(values).max() <= 2.0
    _assert_drawn_from(values, stats.truncnorm(-2, 2))
    assert values.std() == pytest.approx(TRUNCATED_STDDEV, rel=0.01)


def test_integer_seed_and_global_seed_reproduce():
    np.testing.assert_array_equal(_values(host_he_normal(seed=3)), _values(host_he_normal(seed=3)))
    assert not np.array_equal(_values(host_he_normal(seed=3)), _values(host_he_normal(seed=4)))
    keras.utils.set_random_seed(7)
    first = _values(host_he_normal())
    second_draw = _values(host_he_normal())
    keras.utils.set_random_seed(7)
    np.testing.assert_array_equal(_values(host_he_normal()), first)
    assert not np.array_equal(first, second_draw)  # unseeded calls differ from each other


def test_models_built_after_set_random_seed_are_identical():
    import keras_cnnclassics as kc

    keras.utils.set_random_seed(11)
    a = kc.get_model("resnet20").get_weights()
    keras.utils.set_random_seed(11)
    b = kc.get_model("resnet20").get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_saved_as_kerass_variance_scaling_with_the_same_arguments():
    initializer = HostVarianceScaling(2.0, "fan_out", "uniform", seed=5)
    config = keras.initializers.serialize(initializer)
    assert config == keras.initializers.serialize(keras.initializers.VarianceScaling(2.0, "fan_out", "uniform", seed=5))
    restored = keras.initializers.deserialize(config)
    assert type(restored) is keras.initializers.VarianceScaling
    assert (restored.scale, restored.mode, restored.distribution) == (2.0, "fan_out", "uniform")


def test_files_saved_with_the_former_package_name_still_load():
    config = keras.initializers.serialize(host_he_normal(seed=5))
    config.update(module="keras_cnnclassics.initializers", registered_name="keras_cnnclassics>HostVarianceScaling")
    restored = keras.initializers.deserialize(config)
    assert isinstance(restored, HostVarianceScaling)
    np.testing.assert_array_equal(_values(restored), _values(host_he_normal(seed=5)))
