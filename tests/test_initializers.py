"""Host-side (NumPy) weight initialisation: Keras' distributions, seeds respected."""

from __future__ import annotations

import math
import time

import keras
import numpy as np
import pytest

from keras_cnnclassics.initializers import HostVarianceScaling, host_he_normal

SHAPE = (3, 3, 64, 128)  # fan_in 576


def _values(initializer, shape=SHAPE):
    return np.asarray(keras.ops.convert_to_numpy(initializer(shape)))


def test_he_normal_has_kerass_truncated_distribution():
    values = _values(host_he_normal(seed=1))
    assert values.dtype == np.float32 and values.shape == SHAPE
    std = math.sqrt(2.0 / 576)
    assert np.abs(values).max() <= 2 * std / 0.87962566103423978 + 1e-7  # truncated at 2 sigma
    assert values.std() == pytest.approx(std, rel=0.02)
    assert abs(values.mean()) < 0.1 * std


@pytest.mark.parametrize("distribution, std_factor", [("untruncated_normal", 1.0), ("uniform", 1.0)])
def test_other_distributions_have_kerass_variance(distribution, std_factor):
    values = _values(HostVarianceScaling(1.0, "fan_avg", distribution, seed=2))
    expected = math.sqrt(1.0 / ((576 + 1152) / 2))
    assert values.std() == pytest.approx(expected * std_factor, rel=0.02)
    if distribution == "uniform":
        assert np.abs(values).max() <= math.sqrt(3) * expected + 1e-7


def test_integer_seed_and_global_seed_reproduce():
    np.testing.assert_array_equal(_values(host_he_normal(seed=3)), _values(host_he_normal(seed=3)))
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


def test_serializes_by_name():
    initializer = host_he_normal(seed=5)
    restored = keras.initializers.deserialize(keras.initializers.serialize(initializer))
    assert isinstance(restored, HostVarianceScaling)
    np.testing.assert_array_equal(_values(restored), _values(initializer))


def test_big_kernels_are_drawn_in_parallel_chunks_with_the_same_values_on_any_core_count(monkeypatch):
    import concurrent.futures

    from keras_cnnclassics import initializers

    shape = (3, 3, 512, 512)  # 2.4 M values: 18 chunks
    assert math.prod(shape) > 2 * initializers._CHUNK
    parallel = _values(host_he_normal(seed=4), shape)
    for helpers in (0, 3):  # this thread alone; more threads than the machine's cores
        monkeypatch.setattr(initializers, "_HELPERS", helpers)
        monkeypatch.setattr(initializers, "_POOL", concurrent.futures.ThreadPoolExecutor(max(1, helpers)))
        np.testing.assert_array_equal(_values(host_he_normal(seed=4), shape), parallel)
    std = math.sqrt(2.0 / (9 * 512))
    assert parallel.std() == pytest.approx(std, rel=0.01)
    assert np.abs(parallel).max() <= 2 * std / 0.87962566103423978 + 1e-7
    first, last = parallel.reshape(-1)[: initializers._CHUNK], parallel.reshape(-1)[-initializers._CHUNK :]
    assert not np.array_equal(first, last)  # each chunk has its own generator


def test_shared_run_does_every_index_once_without_waiting_for_idle_helpers_and_raises_task_errors(monkeypatch):
    import concurrent.futures
    import threading

    from keras_cnnclassics import initializers

    monkeypatch.setattr(initializers, "_HELPERS", 2)
    monkeypatch.setattr(initializers, "_POOL", concurrent.futures.ThreadPoolExecutor(2))
    done, threads = [], set()

    def task(index):
        threads.add(threading.get_ident())
        done.append(index)
        time.sleep(0.002)  # releases the GIL, as NumPy does while it fills

    initializers._run_shared(task, 50)
    assert sorted(done) == list(range(50))
    assert threading.get_ident() in threads  # the calling thread works too

    def failing(index):
        if index == 7:
            raise ValueError("chunk 7")

    with pytest.raises(ValueError, match="chunk 7"):
        initializers._run_shared(failing, 20)

    class NeverStarted(concurrent.futures.Future):
        def result(self, timeout=None):
            raise AssertionError("waited for a helper that never started")

    class Idle:  # a pool whose threads never start (one inherited across a fork has none)
        def submit(self, fn):
            return NeverStarted()

    monkeypatch.setattr(initializers, "_POOL", Idle())
    done.clear()
    initializers._run_shared(task, 5)
    assert sorted(done) == list(range(5))


def test_a_forked_child_draws_big_kernels_with_the_parents_values():
    """The pool's threads do not survive a fork; the child must not wait for them."""
    import os
    import warnings

    from keras_cnnclassics import initializers

    shape = (3, 3, 256, 256)  # 5 chunks: the pool is used, and exists before the fork
    assert math.prod(shape) > 2 * initializers._CHUNK
    parent = host_he_normal(seed=9)._sample(shape, 0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # JAX warns that it is multithreaded
        pid = os.fork()
    if pid == 0:
        child = host_he_normal(seed=9)._sample(shape, 0.01)
        os._exit(0 if np.array_equal(child, parent) else 3)
    for _ in range(600):  # 60 s; the draw takes milliseconds
        finished, status = os.waitpid(pid, os.WNOHANG)
        if finished:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung drawing a kernel (waiting for the parent's pool threads)")
    assert os.waitstatus_to_exitcode(status) == 0, "the child drew different values"


@pytest.mark.parametrize("bound", [2.0, None])
def test_box_muller_draws_match_the_normal_and_truncated_normal(bound):
    from scipy import stats

    from keras_cnnclassics.initializers import _fill_standard_normal

    values = np.empty(300_001, np.float32)  # odd, and more than two cache blocks
    _fill_standard_normal(np.random.default_rng(0), values, bound)
    reference = stats.norm() if bound is None else stats.truncnorm(-bound, bound)
    assert stats.kstest(values, reference.cdf).pvalue > 1e-3
    assert values.std() == pytest.approx(reference.std(), rel=0.01)
    if bound is not None:
        assert np.abs(values).max() <= bound


@pytest.mark.parametrize("size", [1, 2, 3, 1000])
def test_box_muller_fills_any_size(size):
    from keras_cnnclassics.initializers import _fill_standard_normal

    values = np.full(size, np.nan, np.float32)
    _fill_standard_normal(np.random.default_rng(size), values, 2.0)
    assert np.isfinite(values).all() and np.abs(values).max() <= 2.0
    if size > 2:
        assert np.unique(values).size == size
