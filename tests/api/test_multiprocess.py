"""Data parallelism across real processes on 127.0.0.1 (``--distribute data-parallel``
with the ``KERAS_DISTRIBUTION_*`` variables, and ``cnnclassics train --processes N``).

The processes run the backend pytest runs on. JAX (``jax.distributed`` with Gloo)
trains across processes; on TensorFlow (Keras 3.15's trainer fails under
``MultiWorkerMirroredStrategy``) and PyTorch the option is refused, which is
tested. Each process feeds its shard of every global batch, so two processes must
train exactly what one process trains with the same global batch and seed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest

from keras_cnnclassics.training import TrainConfig, train
from keras_cnnclassics.training.augment import Augmenter
from keras_cnnclassics.training.data import TrainBatches, open_folder_data
from keras_cnnclassics.training.launch import free_ports
from keras_cnnclassics.training.stream import ImageFiles

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BACKEND = keras.backend.backend()
# Few steps: 6 per epoch, global batch 16, each process 8 images per step.
RUN = dict(model="lenet5", epochs=2, limit=96, batch_size=16, seed=4, warmup_epochs=0, augment="basic")
DEAD_AFTER = 10  # CNNCLASSICS_PROCESS_TIMEOUT in the tests that kill a process
TOLERANCE = 1e-5  # the all-reduce sums in another order than one process; measured ~1e-8

# One process of a run: trains RUN (resumed if asked), optionally stops after an epoch,
# and saves the weights it ends with (every process, not only process 0).
WORKER = textwrap.dedent(
    """
    import json, sys
    import keras, numpy as np
    from keras_cnnclassics.training import TrainConfig, train

    output, weights, stop_after, resume, run = sys.argv[1:6]

    class Finish(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == int(stop_after):
                raise RuntimeError(f"stopped after epoch {epoch + 1}")

        def on_train_end(self, logs=None):
            np.savez(weights, *self.model.get_weights())

    config = TrainConfig(output=output, distribute="data-parallel", **json.loads(run))
    train(config, resume=resume == "1", verbose=2, callbacks=[Finish()])
    """
)

needs_data_parallel = pytest.mark.skipif(
    BACKEND != "jax", reason="Keras 3.15 trains across processes on JAX only (the refusals are tested below)")


def process_env(index, addresses, **extra):
    return {**os.environ, "KERAS_BACKEND": BACKEND, "TF_CPP_MIN_LOG_LEVEL": "3",
            "KERAS_DISTRIBUTION_JOB_ADDRESSES": ",".join(addresses),
            "KERAS_DISTRIBUTION_NUM_PROCESSES": str(len(addresses)),
            "KERAS_DISTRIBUTION_PROCESS_ID": str(index), **extra}


def start_workers(tmp_path, output, stop_after=0, resume=False, run=None, count=2, **extra):
    """``count`` WORKER processes of one run; their output goes to tmp_path/log-<i>.txt."""
    addresses = [f"127.0.0.1:{port}" for port in free_ports(count)]
    procs = []
    for index in range(count):
        log = open(tmp_path / f"log-{index}.txt", "w", encoding="utf-8")
        argv = [output, str(tmp_path / f"weights-{index}.npz"), str(stop_after), "1" if resume else "0",
                json.dumps(run or RUN)]
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, *argv], cwd=ROOT, stdout=log,
                                      stderr=subprocess.STDOUT, env=process_env(index, addresses, **extra)))
        log.close()
    return procs


def wait(procs, timeout):
    deadline = time.monotonic() + timeout
    try:
        return [proc.wait(max(1.0, deadline - time.monotonic())) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def log(tmp_path, index):
    return (tmp_path / f"log-{index}.txt").read_text(encoding="utf-8", errors="replace")


def saved_weights(path):
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


@pytest.fixture(scope="module")
def single_process_weights(tmp_path_factory):
    """RUN trained in this process on one device: the reference."""
    class Keep(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            self.weights = self.model.get_weights()

    keep = Keep()
    output = str(tmp_path_factory.mktemp("single") / "run")
    train(TrainConfig(output=output, **RUN), verbose=0, callbacks=[keep])
    return keep.weights


def launcher(*argv, **env):
    """``cnnclassics train ... --processes 2`` (the one-machine launcher) as a process."""
    environ = {**os.environ, "KERAS_BACKEND": BACKEND, "TF_CPP_MIN_LOG_LEVEL": "3", **env}
    return subprocess.Popen([sys.executable, "-m", "keras_cnnclassics.cli", "train", *map(str, argv)],
                            cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, errors="replace")


def run_flags(output):
    return ["lenet5", "--epochs", RUN["epochs"], "--limit", RUN["limit"], "--batch-size", RUN["batch_size"],
            "--seed", RUN["seed"], "--warmup-epochs", RUN["warmup_epochs"], "--augment", RUN["augment"],
            "--distribute", "data-parallel", "--processes", 2, "--output", output]


# ------------------------------------------------------------------ shards


@pytest.mark.parametrize("count", [2, 4])
def test_shards_partition_every_global_batch(count):
    """The shards of a step are the global batch's rows in process order, so across an
    epoch the processes together read every image once; each shard's images and
    augmentation are its rows of the one-process batch."""
    images = np.arange(40 * 8 * 8 * 3, dtype="float32").reshape(40, 8, 8, 3) % 251
    x, y = images.astype("uint8"), np.arange(40) % 5
    kwargs = dict(num_classes=5, batch_size=8, seed=7, augment=Augmenter("basic", 3))
    whole = TrainBatches(x, y, **kwargs)
    shards = [TrainBatches(x, y, shard=(i, count), **kwargs) for i in range(count)]
    for epoch in range(2):
        seen = []
        for step in range(epoch * whole.steps_per_epoch, (epoch + 1) * whole.steps_per_epoch):
            parts = [s.batch_indices(step) for s in shards]
            assert all(len(p) == 8 // count for p in parts)
            np.testing.assert_array_equal(np.concatenate(parts), whole.batch_indices(step))
            seen += [int(i) for p in parts for i in p]
        assert len(seen) == len(set(seen)) == whole.steps_per_epoch * 8  # nothing read twice
    for step in (0, 6):
        batch_x, batch_y = whole.batch(step)
        got_x = np.concatenate([s.batch(step)[0] for s in shards])
        got_y = np.concatenate([s.batch(step)[1] for s in shards])
        np.testing.assert_allclose(got_x, batch_x, atol=1e-4)
        np.testing.assert_array_equal(got_y, batch_y)


def test_shards_of_a_streamed_folder_decode_only_their_files(tmp_path, monkeypatch):
    """A folder read from disk: each process decodes the files of its shard only."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 255, (10, 10, 3), dtype="uint8")).save(
                tmp_path / "data" / name / f"{i}.png")
    data = open_folder_data(str(tmp_path / "data"), 8, 3, val_split=0.2, seed=1)
    assert isinstance(data.x_train, ImageFiles)
    whole = TrainBatches(data.x_train, data.y_train, 2, 8, seed=3)
    decoded = []
    original = ImageFiles.decode
    monkeypatch.setattr(ImageFiles, "decode", lambda self, i: decoded.append(i) or original(self, i))
    parts = []
    for index in range(2):
        decoded.clear()
        shard = TrainBatches(data.x_train, data.y_train, 2, 8, seed=3, shard=(index, 2))
        parts.append(shard.batch(1)[0])
        assert sorted(decoded) == sorted(int(i) for i in shard.batch_indices(1)), index
    np.testing.assert_array_equal(np.concatenate(parts), whole.batch(1)[0])


# ------------------------------------------------------------------ real processes


@needs_data_parallel
@pytest.mark.timeout(300)
def test_two_processes_train_what_one_trains(tmp_path, single_process_weights):
    """``--processes 2``: process 0 alone writes the run folder; the model it saves is
    the one-process model (same global batch and seed)."""
    output = str(tmp_path / "run")
    proc = launcher(*run_flags(output))
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    assert "[process 1] process 1: done; process 0 writes" in err
    info = json.load(open(os.path.join(output, "config.json"), encoding="utf-8"))
    assert "in 2 processes" in info["placement"]
    assert not os.path.exists(os.path.join(output, "history.csv.tmp"))
    model = keras.saving.load_model(os.path.join(output, "last.keras"))
    for got, expected in zip(model.get_weights(), single_process_weights, strict=True):
        np.testing.assert_allclose(got, expected, atol=TOLERANCE)


@needs_data_parallel
@pytest.mark.timeout(300)
def test_two_processes_resume_and_agree(tmp_path, single_process_weights):
    """Stopped after epoch 1 and resumed: both processes end with identical weights,
    equal to an uninterrupted one-process run."""
    output = str(tmp_path / "run")
    codes = wait(start_workers(tmp_path, output, stop_after=1), timeout=150)
    assert all(code != 0 for code in codes), log(tmp_path, 0)[-3000:]
    assert "stopped after epoch 1" in log(tmp_path, 0)
    history = open(os.path.join(output, "history.csv"), encoding="utf-8").read().splitlines()
    assert len(history) == 2, history  # header + epoch 1: the checkpoint to resume from
    codes = wait(start_workers(tmp_path, output, resume=True), timeout=150)
    assert codes == [0, 0], log(tmp_path, 0)[-3000:] + log(tmp_path, 1)[-3000:]
    assert "resuming after epoch 1" in log(tmp_path, 0)
    first, second = (saved_weights(tmp_path / f"weights-{i}.npz") for i in range(2))
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)  # every process holds the same model
    for got, expected in zip(first, single_process_weights, strict=True):
        np.testing.assert_allclose(got, expected, atol=TOLERANCE)


@needs_data_parallel
@pytest.mark.timeout(300)
def test_a_killed_process_stops_the_others(tmp_path):
    """SIGKILL one process mid-training: the survivor stops by itself, within the
    timeout, with a message saying another process died (no launcher involved)."""
    procs = start_workers(tmp_path, str(tmp_path / "run"), run=dict(RUN, epochs=200),
                          CNNCLASSICS_PROCESS_TIMEOUT=str(DEAD_AFTER))
    deadline = time.monotonic() + 150
    while "Epoch 2/" not in log(tmp_path, 1) and time.monotonic() < deadline and procs[0].poll() is None:
        time.sleep(0.5)
    assert "Epoch 2/" in log(tmp_path, 1), log(tmp_path, 1)[-3000:]
    procs[1].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    code = wait(procs[:1], timeout=DEAD_AFTER + 60)[0]
    waited = time.monotonic() - killed
    wait(procs, timeout=5)
    assert code != 0
    assert waited < DEAD_AFTER + 60
    text = log(tmp_path, 0)
    assert "Task 1 heartbeat timeout" in text, text[-3000:]


@needs_data_parallel
@pytest.mark.timeout(300)
def test_launcher_stops_every_process_when_one_dies(tmp_path):
    """The launcher notices a dead process at once, stops the other and names it."""
    flags = run_flags(str(tmp_path / "run"))
    flags[flags.index("--epochs") + 1] = 200
    proc = launcher(*flags)
    children = []
    deadline = time.monotonic() + 120
    while len(children) < 2 and time.monotonic() < deadline:
        children = _children(proc.pid)
        time.sleep(0.5)
    assert len(children) == 2
    time.sleep(15)  # let them start training
    second = next(pid for pid in children if _environ(pid).get("KERAS_DISTRIBUTION_PROCESS_ID") == "1")
    os.kill(second, signal.SIGKILL)
    killed = time.monotonic()
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - killed < 30
    assert proc.returncode == 1
    assert "process 1 of 2 was killed by SIGKILL; stopped the other process(es)" in err
    assert all(not os.path.exists(f"/proc/{pid}") or _zombie(pid) for pid in children)


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


def _environ(pid):
    with open(f"/proc/{pid}/environ", "rb") as handle:
        pairs = [item.split(b"=", 1) for item in handle.read().split(b"\0") if b"=" in item]
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _zombie(pid):
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
        return handle.read().split(")")[-1].split()[0] == "Z"


REFUSALS = {"tensorflow": "not supported on the TensorFlow backend: Keras 3.15's TensorFlow trainer "
                           "fails under tf.distribute.MultiWorkerMirroredStrategy",
            "torch": "not supported on the PyTorch backend: Keras 3.15's keras.distribution"}


def test_processes_refused_where_keras_cannot_train_across_them(tmp_path):
    """``--processes`` needs ``--distribute data-parallel``; on TensorFlow and PyTorch
    several processes are refused with what Keras supports, before any process starts
    (the launcher) or writes (a process started by hand)."""
    output = str(tmp_path / "run")
    flags = run_flags(output)
    without = [f for i, f in enumerate(flags) if f != "--distribute" and flags[i - 1] != "--distribute"]
    proc = launcher(*without)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "add --distribute data-parallel" in err, err
    if BACKEND in REFUSALS:
        proc = launcher(*flags)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, err
        assert len(err.strip().splitlines()) == 1 and REFUSALS[BACKEND] in err, err
        codes = wait(start_workers(tmp_path, output), timeout=120)
        assert codes == [1, 1], log(tmp_path, 0)
        assert REFUSALS[BACKEND] in log(tmp_path, 0) and REFUSALS[BACKEND] in log(tmp_path, 1)
    assert not os.path.exists(output)
