"""Shared test configuration.

The Keras backend is fixed when keras is imported, so the suite runs once per
backend in its own process (``python tests/run.py`` does that). Cases marked
``heavy`` (big models' forward/save/fit checks) are *sampled*: each one runs on
exactly one backend, chosen by a stable hash of its model name, so that across
the three processes every heavy case runs once. ``--all-heavy`` (or
``CNNCLASSICS_ALL_HEAVY=1``) runs all of them on the current backend. The
deselection is reported in the session header and the summary, never silent.
"""

from __future__ import annotations

import os
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

BACKENDS = ("tensorflow", "jax", "torch")


def pytest_addoption(parser):
    parser.addoption(
        "--all-heavy",
        action="store_true",
        default=os.environ.get("CNNCLASSICS_ALL_HEAVY") == "1",
        help="run every heavy case on this backend instead of sampling",
    )


def pytest_report_header(config):
    mode = "all" if config.getoption("--all-heavy") else "sampled (1 of 3 backends each)"
    return f"keras {keras.__version__}, backend {keras.backend.backend()}, heavy cases: {mode}"


def backend_for(key: str, backends=BACKENDS) -> str:
    """The backend (one of ``backends``) that runs the heavy case ``key`` when sampling."""
    return backends[zlib.crc32(key.encode()) % len(backends)]


def pytest_collection_modifyitems(config, items):
    if config.getoption("--all-heavy"):
        return
    backend = keras.backend.backend()
    keep, drop = [], []
    for item in items:
        marker = item.get_closest_marker("heavy")
        if marker is None:
            keep.append(item)
            continue
        key = marker.args[0] if marker.args else item.nodeid
        choices = marker.kwargs.get("backends", BACKENDS)
        (keep if backend_for(key, choices) == backend else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(autouse=True, scope="module")
def _release_memory_between_modules():
    """Free what a test module's models leave behind: on JAX the process grows by a few
    hundred MB per compiled model within a module (tests/test_convert.py: about 8 GB)."""
    yield
    keras.utils.clear_session(free_memory=True)
    if keras.backend.backend() == "jax":
        import jax

        jax.clear_caches()


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    keras.config.set_dtype_policy("float32")
    keras.config.set_image_data_format("channels_last")
    keras.utils.clear_session(free_memory=False)
    yield
    keras.config.set_dtype_policy("float32")
    keras.config.set_image_data_format("channels_last")


@pytest.fixture
def rng():
    return np.random.default_rng(0)
