"""What the current backend can run on this machine, checked before a model is built.

TensorFlow's own CPU ``Conv2D`` takes only NHWC tensors; ``channels_first`` (NCHW)
convolutions run on its CPU only through oneDNN. TensorFlow turns oneDNN on by default
only on CPUs with AVX-512 (VNNI/BF16) or AMX, so on many machines a ``channels_first``
model builds but fails in ``predict`` ("The Conv2D op currently only supports the NHWC
tensor format on the CPU"). Two measures here:

* Importing this module (``keras_cnnclassics`` imports it first) sets
  ``TF_ENABLE_ONEDNN_OPTS=1`` when the user has not set it and TensorFlow is not yet
  imported: TensorFlow reads the variable once, when it is imported.
* :func:`require_channels_first_support` refuses a ``channels_first`` model, with the
  fix in one line, where TensorFlow was imported earlier with oneDNN off; a one-op
  probe (:func:`tf_cpu_supports_channels_first`) tells.

Nothing here imports Keras or TensorFlow at import time.
"""

from __future__ import annotations

import functools
import os
import sys

__all__ = [
    "channels_first_problem",
    "enable_onednn_if_unset",
    "require_channels_first_support",
    "tf_cpu_supports_channels_first",
]

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


def enable_onednn_if_unset(environ=os.environ, modules=sys.modules) -> bool:
    """Set ``TF_ENABLE_ONEDNN_OPTS=1`` unless the user chose a value or TensorFlow is imported.

    Returns whether it set the variable. A value the user set, ``0`` included, is kept.
    """
    if ONEDNN_VARIABLE in environ or "tensorflow" in modules:
        return False
    environ[ONEDNN_VARIABLE] = "1"
    return True


@functools.cache
def tf_cpu_supports_channels_first() -> bool:
    """Whether TensorFlow runs an NCHW ``Conv2D`` here (a GPU, or oneDNN on the CPU).

    Runs one 1x1 convolution on a 1x1x1x1 tensor the first time, only without a GPU;
    the answer is cached for the process (TensorFlow cannot change it once imported).
    """
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        return True
    one = tf.ones((1, 1, 1, 1))
    try:
        tf.nn.conv2d(one, one, strides=1, padding="VALID", data_format="NCHW")
    except tf.errors.OpError:
        return False
    return True


def channels_first_problem() -> str | None:
    """Why ``channels_first`` models cannot run on the current backend here, or None if they can.

    Only TensorFlow without oneDNN on a CPU has a reason; other backends never probe.
    """
    import keras

    if keras.backend.backend() != "tensorflow" or tf_cpu_supports_channels_first():
        return None
    return (
        "channels_first needs oneDNN on TensorFlow's CPU, and this TensorFlow runs without it "
        f"(its CPU Conv2D takes only NHWC): set {ONEDNN_VARIABLE}=1 before TensorFlow is imported, "
        "or use channels_last (keras.config.set_image_data_format('channels_last')) "
        "or the JAX or PyTorch backend."
    )


def require_channels_first_support(model_name: str) -> None:
    """Raise a one-line ``ValueError`` if ``model_name`` would be built in a data format
    the current backend cannot run here (see :func:`channels_first_problem`)."""
    import keras

    if keras.config.image_data_format() != "channels_first":
        return
    problem = channels_first_problem()
    if problem:
        raise ValueError(f"{model_name}: {problem}")


enable_onednn_if_unset()
