"""Faults (issue 11): SIGKILL during training, conversion and export; two trainings on one folder.

Every fault runs the real ``cnnclassics`` command in a subprocess (``KERAS_BACKEND`` from this
process) and kills it with SIGKILL, from outside or at a chosen point inside. Afterwards the
previous output is byte-identical, no visible partial file exists, the hidden temporary a killed
writer leaves is removed by the next write into that folder, and a killed training resumes to
exactly the weights of an uninterrupted one. The self-kill mid-epoch is
``tests/api/test_training.py``'s test; its helpers are reused here.
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

import keras_cnnclassics as kc
from keras_cnnclassics import cli
from keras_cnnclassics.training import TrainConfig
from keras_cnnclassics.training.runfolder import RunFolder

from support.reference import require
from test_bad_input import Unchanged, cli_error, snapshot
from test_training import QUICK, ROOT, _quiet_train, _sha, _weights

BACKEND = keras.backend.backend()
ENV = {**os.environ, "KERAS_BACKEND": BACKEND, "TF_CPP_MIN_LOG_LEVEL": "3"}
CLI = [sys.executable, "-m", "keras_cnnclassics.cli"]
TRAIN_FLAGS = ["--limit", str(QUICK["limit"]), "--batch-size", str(QUICK["batch_size"]),
               "--seed", str(QUICK["seed"]), "--warmup-epochs", "0"]


def _start(argv):
    """``cnnclassics argv`` in its own process group (so a kill takes its workers too)."""
    return subprocess.Popen([*CLI, *map(str, argv)], cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for(condition, proc, what, timeout=300):
    deadline = time.time() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the command ended (rc {proc.returncode}) before {what}: {proc.stderr.read()[-2000:]}")
        if time.time() > deadline:
            _kill(proc)
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def _kill(proc):
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    return proc.returncode


def _temporaries(folder):
    return sorted(name for name in os.listdir(folder) if name.startswith(".tmp-"))


def _visible(folder):
    return sorted(name for name in os.listdir(folder) if not name.startswith("."))


def _assert_stale_temporaries_are_cleaned(folder, dead_pid):
    """What a killed writer left is hidden, names its PID, and goes with the next write here."""
    for name in _temporaries(folder):
        assert f"-{dead_pid}-" in name
    kc.weights.save_weights(kc.LeNet5(), os.path.join(folder, "next write.weights.h5"))
    assert _temporaries(folder) == []


# ------------------------------------------------------------------ training
def test_sigkill_of_a_cli_training_then_resume_is_exact(tmp_path):
    """Killed from outside right after epoch 1 is committed (wherever epoch 2 then is)."""
    settings = dict(QUICK, epochs=3)
    whole = _quiet_train(TrainConfig("lenet5", output=str(tmp_path / "whole"), **settings))
    killed = tmp_path / "killed"
    proc = _start(["train", "lenet5", "--output", killed, "--epochs", 3, *TRAIN_FLAGS])
    _wait_for(lambda: (killed / "checkpoint.npz").exists(), proc, "epoch 1 was committed")
    assert _kill(proc) == -signal.SIGKILL
    with np.load(killed / "checkpoint.npz") as state:
        assert json.loads(str(state["meta"]))["epoch"] in (1, 2, 3)
    assert cli.main(["train", "lenet5", "--output", str(killed), "--resume"]) == 0
    assert _temporaries(killed) == []  # the resumed run's first write removed the killed one's
    run = RunFolder(killed)
    assert [row["epoch"] for row in _history(run)] == [1, 2, 3]
    for a, b in zip(_weights(run.file("last.keras")), _weights(os.path.join(whole.run_dir, "last.keras"))):
        np.testing.assert_array_equal(a, b)
    assert run.read_json("evaluation.json")["top1"] == whole.evaluation["top1"]


def _history(run):
    with open(run.file("history.csv")) as handle:
        rows = handle.read().splitlines()[1:]
    return [{"epoch": int(row.split(",")[0])} for row in rows]


def test_two_trainings_on_one_run_folder(tmp_path, capsys):
    """The second refuses (plain, --force and --resume) and changes nothing; the first completes."""
    out = tmp_path / "shared run"
    first = _start(["train", "lenet5", "--output", out, "--epochs", 2, *TRAIN_FLAGS])
    _wait_for(lambda: (out / "config.json").exists(), first, "the first training wrote config.json")
    os.kill(first.pid, signal.SIGSTOP)  # hold it still while the second one tries
    try:
        with Unchanged(out):
            for extra in ([], ["--force"], ["--resume"]):
                cli_error(capsys, ["train", "lenet5", "--output", out, "--epochs", 2, *TRAIN_FLAGS, *extra],
                          "is in use by a training", f"process {first.pid}")
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert first.wait(timeout=600) == 0, first.stderr.read()[-2000:]
    first.stderr.close()
    run = RunFolder(out)
    assert [row["epoch"] for row in _history(run)] == [1, 2]
    assert run.read_json("evaluation.json")["epoch"] in (1, 2)


# ------------------------------------------------------------------ conversion
KILLED_CONVERSION = textwrap.dedent(
    """
    import os, signal, sys
    import keras
    from keras_cnnclassics import cli

    def half_then_sigkill(self, path, *args, **kwargs):  # the process dies in the middle of the write
        with open(path, "wb") as handle:
            handle.write(b"\\x89HDF\\r\\n\\x1a\\n half of a weights file")
        os.kill(os.getpid(), signal.SIGKILL)

    keras.Model.save_weights = half_then_sigkill
    sys.exit(cli.main(sys.argv[1:]))
    """
)


def test_sigkill_during_conversion_keeps_the_previous_output(tmp_path):
    torch = require("torch")
    models = require("torchvision")
    checkpoint = tmp_path / "squeezenet1_1.pth"
    torch.save(models.squeezenet1_1(weights=None).state_dict(), checkpoint)
    folder = tmp_path / "weights out"
    folder.mkdir()
    output = folder / "squeezenet1_1.weights.h5"
    output.write_bytes(b"the previous conversion")
    argv = ["convert", "--arch", "squeezenet1_1", "--source", "torchvision", "--input", str(checkpoint),
            "--output", str(output), "--force", "--no-verify"]
    proc = subprocess.run([sys.executable, "-c", KILLED_CONVERSION, *argv], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert output.read_bytes() == b"the previous conversion"
    assert _visible(folder) == ["squeezenet1_1.weights.h5"] and len(_temporaries(folder)) == 1
    assert cli.main(argv) == 0  # the next conversion replaces it and removes the killed one's temporary
    assert _temporaries(folder) == [] and kc.SqueezeNet1_1(weights=str(output)).name == "squeezenet1_1"


# ------------------------------------------------------------------ export
@pytest.mark.heavy("faults-export")
def test_sigkill_during_export_keeps_the_previous_output(tmp_path):
    fmt = "tflite" if BACKEND == "tensorflow" else "onnx"  # jax: a torch worker, killed with its group
    folder = tmp_path / "export out"
    folder.mkdir()
    output = folder / f"lenet5.{fmt}"
    output.write_bytes(b"the previous export")
    proc = _start(["export", "lenet5", "--format", fmt, "--output", output, "--force"])
    _wait_for(lambda: _temporaries(folder), proc, "the export started writing")
    assert _kill(proc) == -signal.SIGKILL
    assert output.read_bytes() == b"the previous export"
    assert _visible(folder) == [output.name]
    _assert_stale_temporaries_are_cleaned(folder, proc.pid)
    assert snapshot(folder).keys() == {output.name, "next write.weights.h5"}
