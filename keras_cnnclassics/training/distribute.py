"""``--distribute data-parallel``: one model replica per local device.

* JAX: ``keras.distribution.DataParallel`` over ``keras.distribution.list_devices()``
  (Keras 3.15 implements ``keras.distribution`` on JAX only). Every batch is
  split across the devices, so it must divide by the device count: training
  drops each epoch's incomplete last batch and the batch size must be a multiple
  of the device count; inference pads its last batch (the padding is cut off).
* TensorFlow: ``tf.distribute.MirroredStrategy`` over the GPUs, or over the
  logical CPU devices when there is no GPU (create them with
  ``tf.config.set_logical_device_configuration`` before anything else runs).
* PyTorch: not supported by Keras 3.15's engine (no ``keras.distribution``
  backend, and Keras' torch trainer does not wrap ``DistributedDataParallel``);
  ``data-parallel`` is refused with that explanation.

Multi-host (JAX): run the same program on every host with
``KERAS_DISTRIBUTION_JOB_ADDRESSES`` (the coordinator's ``host:port``),
``KERAS_DISTRIBUTION_NUM_PROCESSES`` and ``KERAS_DISTRIBUTION_PROCESS_ID`` set;
:func:`data_parallel` then calls ``keras.distribution.initialize()`` and
``list_devices()`` returns every host's devices; each process feeds its slice of
every global batch (``TrainBatches(shard=(process_id, num_processes))``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os

import keras

__all__ = ["Placement", "data_parallel", "check_distribute"]

MULTI_HOST_ENV = "KERAS_DISTRIBUTION_NUM_PROCESSES"


@dataclasses.dataclass
class Placement:
    """Where the run trains: ``mode``, device count, device names, process shard."""

    mode: str = "none"
    num_devices: int = 1
    devices: tuple = ()
    shard: tuple = (0, 1)

    def describe(self) -> str:
        if self.mode == "none":
            return "single device"
        return f"data-parallel over {self.num_devices} device(s): {', '.join(self.devices)}"


def check_distribute(mode: str) -> None:
    """Refuse ``data-parallel`` where the backend has no implementation (before building)."""
    if mode == "data-parallel" and keras.backend.backend() not in ("jax", "tensorflow"):
        raise ValueError(
            "--distribute data-parallel is not supported on the PyTorch backend: Keras 3.15's "
            "keras.distribution is implemented for JAX only and its torch trainer does not "
            "wrap DistributedDataParallel. Use KERAS_BACKEND=jax (keras.distribution."
            "DataParallel) or KERAS_BACKEND=tensorflow (tf.distribute.MirroredStrategy), or "
            "train on one device with --distribute none."
        )


def _tf_devices():
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


@contextlib.contextmanager
def data_parallel(mode: str):
    """Context in which to build, compile and fit; yields a :class:`Placement`."""
    check_distribute(mode)
    if mode == "none":
        yield Placement()
        return
    backend = keras.backend.backend()
    if backend == "jax":
        if os.environ.get(MULTI_HOST_ENV):
            keras.distribution.initialize()
        import jax

        devices = keras.distribution.list_devices()
        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        try:
            yield Placement(mode, len(devices), tuple(devices), (jax.process_index(), jax.process_count()))
        finally:
            keras.distribution.set_distribution(previous)
        return
    import tensorflow as tf

    devices = _tf_devices()
    strategy = tf.distribute.MirroredStrategy(devices=devices)
    with strategy.scope():
        yield Placement(mode, strategy.num_replicas_in_sync, tuple(devices))
