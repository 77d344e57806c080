"""Mixed precision through Keras dtype policies (``--mixed-precision``).

* ``off``: ``float32``.
* ``float16``: ``mixed_float16`` (float16 compute, float32 variables); the loss is
  scaled by Keras' ``LossScaleOptimizer`` (``compile(auto_scale_loss=True)``).
* ``bfloat16``: ``mixed_bfloat16`` (no loss scaling needed: bfloat16 has
  float32's exponent range).
* ``auto``: ``mixed_bfloat16`` on GPUs that compute in bfloat16 (NVIDIA compute
  capability >= 8.0), ``mixed_float16`` on other GPUs, ``float32`` on CPU.

Every model's classifier ends in a float32 ``predictions`` activation
(:func:`keras_cnnclassics.blocks.classifier_output`), so probabilities and the
loss stay float32 under either mixed policy.
"""

from __future__ import annotations

import contextlib

import keras

__all__ = ["POLICIES", "resolve_policy", "detect_gpu", "dtype_policy"]

POLICIES = {"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}


def detect_gpu() -> dict | None:
    """The first GPU of the current backend as ``{"name", "bfloat16"}``, or None."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return None
        details = tf.config.experimental.get_device_details(gpus[0])
        capability = details.get("compute_capability") or (0, 0)
        return {"name": details.get("device_name", "GPU"), "bfloat16": tuple(capability) >= (8, 0)}
    if backend == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        if not gpus:
            return None
        capability = getattr(gpus[0], "compute_capability", "0.0")
        major = int(str(capability).split(".")[0] or 0)
        return {"name": gpus[0].device_kind, "bfloat16": major >= 8}
    if backend == "torch":
        import torch

        if not torch.cuda.is_available():
            return None
        return {"name": torch.cuda.get_device_name(0), "bfloat16": torch.cuda.is_bf16_supported()}
    return None


def resolve_policy(mode: str, gpu="detect") -> tuple[str, str]:
    """``(policy name, reason)`` for ``--mixed-precision mode``."""
    if mode in POLICIES:
        return POLICIES[mode], f"--mixed-precision {mode}"
    if mode != "auto":
        raise ValueError(
            f"mixed-precision must be auto, off, float16 or bfloat16; got {mode!r}."
        )
    gpu = detect_gpu() if gpu == "detect" else gpu
    if gpu is None:
        return "float32", "auto: no GPU, float32"
    if gpu["bfloat16"]:
        return "mixed_bfloat16", f"auto: {gpu['name']} computes in bfloat16"
    return "mixed_float16", f"auto: {gpu['name']} has no bfloat16; float16 with loss scaling"


@contextlib.contextmanager
def dtype_policy(name: str):
    """Set Keras' global dtype policy for the block (models built inside use it)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
