"""``--distribute data-parallel``: one model replica per device, in one process or several.

One process:

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

Several processes (one machine or several): start the same training in every
process with ``KERAS_DISTRIBUTION_JOB_ADDRESSES`` (process 0's
``host:port``; a list of every process's, process 0's first, is accepted),
``KERAS_DISTRIBUTION_NUM_PROCESSES`` and ``KERAS_DISTRIBUTION_PROCESS_ID`` set
(``cnnclassics train ... --processes N`` does that on one machine, see
:mod:`.launch`). :func:`join_processes` connects them before the backend runs
anything:

* JAX: ``jax.distributed.initialize`` (what ``keras.distribution.initialize``
  calls, here with bounded timeouts), with Gloo collectives on CPU; then
  ``DataParallel`` spans every process's devices and each process feeds its
  slice of every global batch (``TrainBatches(shard=(process, processes))``,
  ``auto_shard_dataset=False``).
* TensorFlow: refused (:data:`TF_MULTI_WORKER`): Keras 3.15's TensorFlow trainer
  fails under ``tf.distribute.MultiWorkerMirroredStrategy`` (``TF_CONFIG``).
  Before its first step ``fit`` reduces a batch with ``strategy.reduce`` over the
  whole ``(x, y)`` structure, which the collective strategy cannot convert, and
  every step it averages the scalar logs with ``strategy.reduce("MEAN", axis=0)``,
  which has no axis 0 ("Invalid reduction dimension 0 for input with 0
  dimensions"). One TensorFlow process over its own devices works.

Process 0 owns the run folder (lock, config, checkpoints, plots, evaluation) and
validates on a local copy of the model after every epoch; the other processes
train without writing. For ``--resume`` every process reads the run folder
(a shared folder when the processes run on several machines). A process that
stops (crash, SIGKILL) stops the others after ``CNNCLASSICS_PROCESS_TIMEOUT``
seconds (default 60) of silence, with the backend's message naming it, instead
of leaving them waiting forever.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os

import keras

__all__ = ["Placement", "Processes", "data_parallel", "check_distribute", "check_processes",
           "join_processes", "processes_from_env"]

ADDRESSES_ENV = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
COUNT_ENV = "KERAS_DISTRIBUTION_NUM_PROCESSES"
INDEX_ENV = "KERAS_DISTRIBUTION_PROCESS_ID"
TIMEOUT_ENV = "CNNCLASSICS_PROCESS_TIMEOUT"
DEFAULT_TIMEOUT = 60
TF_MULTI_WORKER = (
    "--distribute data-parallel across processes is not supported on the TensorFlow backend: "
    "Keras 3.15's TensorFlow trainer fails under tf.distribute.MultiWorkerMirroredStrategy "
    "(model.fit reduces its first input batch with strategy.reduce over the (x, y) structure, "
    "and averages each step's scalar logs with strategy.reduce('MEAN', axis=0)). Use "
    "KERAS_BACKEND=jax for several processes, or one TensorFlow process over its own devices "
    "(MirroredStrategy)."
)


@dataclasses.dataclass(frozen=True)
class Processes:
    """This process's place in a run: ``index`` of ``count`` processes, the
    ``addresses`` (``host:port``, process 0's first) and the timeout in seconds."""

    index: int = 0
    count: int = 1
    addresses: tuple = ()
    timeout: int = DEFAULT_TIMEOUT

    @property
    def writer(self) -> bool:
        """Process 0 writes the run folder; the others only train."""
        return self.index == 0

    @property
    def shard(self) -> tuple:
        return (self.index, self.count)


_JOINED = []  # the Processes this process joined (once per process)


def _env_int(name, value, minimum):
    if not value.strip().isdigit() or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def processes_from_env(environ=None) -> Processes:
    """The :class:`Processes` that the ``KERAS_DISTRIBUTION_*`` variables describe
    (one process when they are not set); ValueError naming a bad or missing one."""
    environ = os.environ if environ is None else environ
    timeout = _env_int(TIMEOUT_ENV, environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT)), 1)
    if not environ.get(COUNT_ENV):
        return Processes(timeout=timeout)
    count = _env_int(COUNT_ENV, environ[COUNT_ENV], 1)
    missing = [n for n in (ADDRESSES_ENV, INDEX_ENV) if not environ.get(n)]
    if missing and count > 1:
        raise ValueError(f"{COUNT_ENV}={count} needs {' and '.join(missing)} set too "
                         "(process 0's host:port; this process's number from 0).")
    index = _env_int(INDEX_ENV, environ.get(INDEX_ENV, "0"), 0)
    if index >= count:
        raise ValueError(f"{INDEX_ENV}={index} must be below {COUNT_ENV}={count}.")
    addresses = tuple(a.strip() for a in environ.get(ADDRESSES_ENV, "").split(",") if a.strip())
    return Processes(index, count, addresses, timeout)


def check_distribute(mode: str) -> None:
    """Refuse ``data-parallel`` where the backend has no implementation (before building)."""
    if mode == "data-parallel" and keras.backend.backend() not in ("jax", "tensorflow"):
        raise ValueError(
            "--distribute data-parallel is not supported on the PyTorch backend: Keras 3.15's "
            "keras.distribution is implemented for JAX only and its torch trainer does not "
            "wrap DistributedDataParallel (one process or several). Use KERAS_BACKEND=jax "
            "(keras.distribution.DataParallel, one process or several) or KERAS_BACKEND="
            "tensorflow (tf.distribute.MirroredStrategy, one process), or train on one device "
            "with --distribute none."
        )


def join_processes(mode: str) -> Processes:
    """Connect this process to the others of the run (a no-op for one process).

    Must run before the backend touches a device: JAX refuses to join after its
    first computation.
    """
    processes = processes_from_env()
    if processes.count == 1:
        return processes
    if mode != "data-parallel":
        raise ValueError(f"{COUNT_ENV}={processes.count} is set: several processes train one model "
                         f"with --distribute data-parallel only; pass it, or unset {COUNT_ENV}.")
    check_processes(processes.count)
    if _JOINED:
        if _JOINED[0] != processes:
            raise ValueError("this process already joined another multi-process run; start a new "
                             "process for this one.")
        return processes
    _join_jax(processes)
    _JOINED.append(processes)
    return processes


def _join_jax(processes):
    import jax

    if not processes.addresses:
        raise ValueError(f"{ADDRESSES_ENV} must name process 0's host:port.")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=processes.addresses[0], num_processes=processes.count,
            process_id=processes.index, initialization_timeout=processes.timeout,
            heartbeat_timeout_seconds=processes.timeout, shutdown_timeout_seconds=processes.timeout,
        )
    except RuntimeError as err:
        if "must be called before" not in str(err):
            raise
        raise ValueError("JAX already ran a computation in this process; a multi-process run "
                         "must join the others first: train in a fresh process.") from None


def check_processes(count) -> None:
    """Refuse ``count`` > 1 processes where Keras cannot train across processes."""
    if count > 1:
        check_distribute("data-parallel")
        if keras.backend.backend() == "tensorflow":
            raise ValueError(TF_MULTI_WORKER)


@dataclasses.dataclass
class Placement:
    """Where the run trains: ``mode``, device count, device names, processes."""

    mode: str = "none"
    num_devices: int = 1
    devices: tuple = ()
    processes: Processes = dataclasses.field(default_factory=Processes)

    @property
    def shard(self) -> tuple:
        """This process's slice of every global batch: ``(index, count)``."""
        return self.processes.shard

    def describe(self) -> str:
        if self.mode == "none":
            return "single device"
        where = f" in {self.processes.count} processes" if self.processes.count > 1 else ""
        return f"data-parallel over {self.num_devices} device(s){where}: {', '.join(self.devices)}"

    def local_copy(self, model):
        """``model`` itself in one process (and in processes other than 0); else a copy
        outside the distribution, on which process 0 validates and saves alone."""
        if self.processes.count == 1 or not self.processes.writer:
            return model

        def clone():
            copy = keras.models.clone_model(model)
            copy.set_weights(model.get_weights())
            return copy

        return self.run_local(clone)

    def run_local(self, function, *args, **kwargs):
        """``function(*args, **kwargs)`` as this process's own work (validation,
        evaluation, augmentation): with JAX's ``DataParallel`` unset for the call."""
        if self.processes.count == 1:
            return function(*args, **kwargs)
        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(None)
        try:
            return function(*args, **kwargs)
        finally:
            keras.distribution.set_distribution(previous)

    def feed(self, batches):
        """What ``fit`` reads: ``batches`` (:class:`~.data.TrainBatches`, already this
        process's shard); with several processes its augmentation is the process's own
        work, outside the distribution."""
        if self.processes.count > 1 and batches.augment is not None:
            batches.augment = functools.partial(self.run_local, batches.augment)
        return batches


class OnLocalCopy(keras.callbacks.Callback):
    """Process 0's end of epoch in a multi-process run: copy the trained weights
    into the local copy, then run ``callback`` (validation, saving) outside the
    distribution, so that the other processes take no part."""

    def __init__(self, placement, trained, copy, callback):
        super().__init__()
        self.placement, self.trained, self.copy, self.callback = placement, trained, copy, callback

    def set_model(self, model):
        super().set_model(model)
        self.callback.set_model(model)

    def on_epoch_begin(self, epoch, logs=None):
        self.callback.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        _ = self.model  # on JAX this syncs the training state into the variables
        self.copy.set_weights(self.trained.get_weights())
        self.placement.run_local(self.callback.on_epoch_end, epoch, logs)


def epoch_callbacks(placement, trained, copy, epoch_end, *callbacks) -> list:
    """``fit``'s callbacks: process 0 runs ``epoch_end`` (on the local copy when there
    are several processes); the other processes neither validate nor write."""
    if not placement.processes.writer:
        return list(callbacks)
    if copy is not trained:
        epoch_end = OnLocalCopy(placement, trained, copy, epoch_end)
    return [epoch_end, *callbacks]


def _tf_devices():
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


@contextlib.contextmanager
def data_parallel(mode: str, processes: Processes | None = None):
    """Context in which to build, compile and fit; yields a :class:`Placement`."""
    check_distribute(mode)
    processes = processes or Processes()
    if mode == "none":
        yield Placement(processes=processes)
        return
    backend = keras.backend.backend()
    if backend == "jax":
        devices = keras.distribution.list_devices()
        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(keras.distribution.DataParallel(
            devices=devices, auto_shard_dataset=processes.count == 1))
        try:
            yield Placement(mode, len(devices), tuple(devices), processes)
        finally:
            keras.distribution.set_distribution(previous)
        return
    import tensorflow as tf

    devices = _tf_devices()
    strategy = tf.distribute.MirroredStrategy(devices=devices)
    with strategy.scope():
        yield Placement(mode, strategy.num_replicas_in_sync, tuple(devices), processes)
