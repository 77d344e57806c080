"""channels_first on TensorFlow CPUs with and without oneDNN.

TensorFlow's CPU ``Conv2D`` runs NCHW only through oneDNN, which TensorFlow turns on by
default only on CPUs with AVX-512 (VNNI/BF16) or AMX. The package turns it on when the user
has not chosen and TensorFlow is not yet loaded, and refuses a ``channels_first`` model with
the fix in one line where TensorFlow already runs without it. ``TF_ENABLE_ONEDNN_OPTS=0``
gives, on any CPU, the TensorFlow of a CPU without those features.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_cnnclassics as kc
from keras_cnnclassics.backend_support import channels_first_problem, enable_onednn_if_unset

from support.reference import require

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = "TF_ENABLE_ONEDNN_OPTS=1 before TensorFlow is imported"


@pytest.mark.parametrize(
    "environ, modules, sets",
    [
        ({}, {}, True),  # nothing chosen, TensorFlow not loaded: turn it on
        ({"TF_ENABLE_ONEDNN_OPTS": "0"}, {}, False),  # the user's choice stays
        ({}, {"tensorflow": object()}, False),  # too late: TensorFlow has read the variable already
    ],
)
def test_onednn_is_enabled_only_when_unset_and_tensorflow_not_loaded(environ, modules, sets):
    before = dict(environ)
    assert enable_onednn_if_unset(environ, modules) is sets
    assert environ == ({**before, "TF_ENABLE_ONEDNN_OPTS": "1"} if sets else before)


def test_channels_first_builds_and_runs_or_is_refused_with_the_fix():
    """In this process: where the probe finds channels_first unsupported, building refuses;
    everywhere else a channels_first model predicts."""
    keras.config.set_image_data_format("channels_first")
    problem = channels_first_problem()
    if keras.backend.backend() != "tensorflow":
        assert problem is None
    if problem:
        with pytest.raises(ValueError, match=f"lenet5: channels_first needs oneDNN.*{FIX}"):
            kc.LeNet5()
        return
    scores = kc.LeNet5().predict(np.zeros((2, 1, 32, 32), "float32"), verbose=0)
    assert scores.shape == (2, 10) and np.all(np.isfinite(scores))


# A fresh TensorFlow process per case; GPUs hidden (they run NCHW whatever oneDNN says).
_CHILD = r"""
import json, os, sys
import numpy as np
if sys.argv[1] == "keras first":
    import keras  # TensorFlow loads here, before the package can choose
import keras_cnnclassics as kc
import keras
from keras_cnnclassics.backend_support import tf_cpu_supports_channels_first

report = {"variable": os.environ.get("TF_ENABLE_ONEDNN_OPTS"), "supported": tf_cpu_supports_channels_first()}
keras.config.set_image_data_format("channels_first")
x = np.zeros((1, 1, 32, 32), "float32")
try:
    keras.Sequential([keras.Input((1, 32, 32)), keras.layers.Conv2D(2, 3)]).predict(x, verbose=0)
    report["plain keras"] = "ran"
except Exception as err:
    report["plain keras"] = type(err).__name__
try:
    report["package"] = str(kc.LeNet5().predict(x, verbose=0).shape)
except ValueError as err:
    report["package"] = str(err)
keras.config.set_image_data_format("channels_last")
report["channels_last"] = str(kc.LeNet5().predict(np.zeros((1, 32, 32, 1), "float32"), verbose=0).shape)
print(json.dumps(report))
"""


def _child(order, onednn):
    require("tensorflow")
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)
    if onednn is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = onednn
    done = subprocess.run([sys.executable, "-c", _CHILD, order], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.heavy("onednn off")
@pytest.mark.parametrize("order", ["package first", "keras first"])
def test_without_onednn_channels_first_is_refused_with_the_fix(order):
    report = _child(order, "0")
    assert report["variable"] == "0"  # the user's choice is kept
    assert report["supported"] is False
    assert report["plain keras"] == "UnimplementedError"  # what the refusal spares the user
    assert report["package"].startswith("lenet5: channels_first needs oneDNN") and FIX in report["package"]
    assert "\n" not in report["package"]
    assert report["channels_last"] == "(1, 10)"


@pytest.mark.heavy("onednn unset")
def test_importing_the_package_first_turns_onednn_on():
    report = _child("package first", None)
    assert report["variable"] == "1"
    if platform.machine().lower() in ("x86_64", "amd64"):  # TensorFlow's x86 wheels carry oneDNN
        assert report["supported"] is True and report["package"] == "(1, 10)"
    else:  # a build without oneDNN: refused like the case above
        assert report["supported"] or FIX in report["package"]
    assert report["channels_last"] == "(1, 10)"
