"""``cnnclassics train`` flags, each run from the command line and checked by its effect.

Every flag is given on the command line (``cli.main`` in this process, or a fresh
``python -m keras_cnnclassics.cli`` where the run changes process-wide state) and
checked in what the run leaves behind: the per-epoch rate in ``history.csv``, the
saved model's input size and dtype policies, the backbone's weights. Where the
effect lives in the training loop itself (the optimizer object, the rate at every
step, the augmented batches) the same options go through the public Python API
(:func:`keras_cnnclassics.training.train`) with a callback that records it.

Kept small: LeNet-5 (and ResNet-20 at 16x16 where a size can change) on
scikit-learn's digits, a few steps of 16 images.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_cnnclassics as kc
from keras_cnnclassics import cli
from keras_cnnclassics.training import TrainConfig, train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BACKEND = keras.backend.backend()
PEAK_LR = 0.01
WEIGHT_DECAY = 0.003
# Run A: 64 training images in batches of 16 = 4 steps an epoch, 16 steps in all.
RUN_A_FLAGS = ["--epochs", "4", "--batch-size", "16", "--limit", "64", "--seed", "1",
               "--schedule", "step", "--warmup-epochs", "0", "--lr", str(PEAK_LR),
               "--optimizer", "adamw", "--weight-decay", str(WEIGHT_DECAY), "--augment", "basic"]
# The Python API runs: 32 images in batches of 16 = 2 steps an epoch, one shared first batch.
PROBE = dict(model="lenet5", limit=32, batch_size=16, seed=0, epochs=1)


def train_cli(capsys, *argv):
    """``cnnclassics train *argv`` in this process; returns what it printed (asserting success)."""
    code = cli.main(["train", *map(str, argv)])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def train_cli_subprocess(*argv, **env):
    """``cnnclassics train *argv`` in a fresh interpreter on this backend."""
    environ = {**os.environ, "KERAS_BACKEND": BACKEND, "TF_CPP_MIN_LOG_LEVEL": "3", **env}
    return subprocess.run([sys.executable, "-m", "keras_cnnclassics.cli", "train", *map(str, argv)],
                          cwd=ROOT, env=environ, capture_output=True, text=True, timeout=600)


def read_json(run, name):
    with open(os.path.join(run, name), encoding="utf-8") as handle:
        return json.load(handle)


def read_history(run):
    with open(os.path.join(run, "history.csv"), encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def load_saved(run, stem):
    return keras.saving.load_model(os.path.join(run, f"{stem}.keras"), compile=False)


def to_float(value):
    return float(keras.ops.convert_to_numpy(value))


class Recorder(keras.callbacks.Callback):
    """Records, while ``model.fit`` runs, what the options set up: the optimizer,
    the layers' dtype policies, the rate of every step and every batch's loss."""

    def __init__(self):
        super().__init__()
        self.rates, self.losses = [], []
        self.optimizer = self.policies = None

    def on_train_begin(self, logs=None):
        self.optimizer = self.model.optimizer
        self.policies = {layer.name: (layer.dtype_policy.name, [v.dtype for v in layer.weights])
                         for layer in self.model.layers if layer.weights}

    def on_train_batch_begin(self, batch, logs=None):
        self.rates.append(to_float(self.model.optimizer.learning_rate))

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))


def record(tmp_path, name, **options):
    """Train ``PROBE`` updated with ``options`` through the Python API; the :class:`Recorder`."""
    recorder = Recorder()
    config = TrainConfig(**{**PROBE, **options, "output": str(tmp_path / name)})
    train(config, verbose=0, callbacks=[recorder])
    return recorder


@pytest.fixture(scope="module")
def run_a(tmp_path_factory):
    """Run A from the command line: step schedule, AdamW, weight decay, basic augmentation."""
    run = str(tmp_path_factory.mktemp("flags") / "run_a")
    code = cli.main(["train", "lenet5", *RUN_A_FLAGS, "--output", run])
    assert code == 0
    return run


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Python API runs sharing their data, seed and first batch, differing in one option each."""
    root = tmp_path_factory.mktemp("recorded")
    return {
        "default": record(root, "default"),
        "adamw_step": record(root, "adamw_step", epochs=4, optimizer="adamw", lr=PEAK_LR,
                             weight_decay=WEIGHT_DECAY, schedule="step", warmup_epochs=0),
        "basic": record(root, "basic", augment="basic"),
        "strong": record(root, "strong", augment="strong"),
    }


# ------------------------------------------------------------------ --schedule step


def test_schedule_step_divides_the_rate_by_10_at_half_and_three_quarters(run_a):
    # history.csv's rate is the one of each epoch's last step: steps 3, 7, 11 and 15 of 16,
    # so the /10 after step 8 (50 %) and the /100 after step 12 (75 %) show in epochs 3 and 4.
    rates = [float(row["lr"]) for row in read_history(run_a)]
    np.testing.assert_allclose(rates, [PEAK_LR, PEAK_LR, PEAK_LR / 10, PEAK_LR / 100], rtol=1e-6)
    assert read_json(run_a, "config.json")["config"]["schedule"] == "step"


def test_schedule_step_rate_of_every_step(recorded):
    # 4 epochs of 2 steps: the rate used by steps 0-3 is the peak, 4-5 a tenth, 6-7 a hundredth.
    expected = [PEAK_LR] * 4 + [PEAK_LR / 10] * 2 + [PEAK_LR / 100] * 2
    np.testing.assert_allclose(recorded["adamw_step"].rates, expected, rtol=1e-6)
    # The default (cosine, one epoch, no warm-up) starts at the peak and decreases.
    default = recorded["default"].rates
    assert default[0] == pytest.approx(0.05, rel=1e-6) and default[1] < default[0]


# ------------------------------------------------------------------ --optimizer, --weight-decay


def test_optimizer_and_weight_decay_flags_reach_the_run(run_a):
    config = read_json(run_a, "config.json")["config"]
    assert (config["optimizer"], config["weight_decay"], config["lr"]) == ("adamw", WEIGHT_DECAY, PEAK_LR)


def test_optimizer_class_and_its_weight_decay(recorded):
    # isinstance: the PyTorch backend uses its own subclasses of Keras' optimizers.
    adamw = recorded["adamw_step"].optimizer
    assert isinstance(adamw, keras.optimizers.AdamW)
    assert adamw.weight_decay == pytest.approx(WEIGHT_DECAY)
    sgd = recorded["default"].optimizer
    assert isinstance(sgd, keras.optimizers.SGD) and not isinstance(sgd, keras.optimizers.Adam)
    assert sgd.momentum == pytest.approx(0.9) and sgd.weight_decay == pytest.approx(5e-4)


# ------------------------------------------------------------------ --augment


def test_augment_flag_reaches_the_run(run_a):
    assert read_json(run_a, "config.json")["config"]["augment"] == "basic"


def test_augment_levels_change_the_training_images(recorded):
    # Same seed, data and initial weights: the first batch's loss (before any update) is the
    # same for every run without augmentation, and differs once the images are augmented.
    none_a, none_b = recorded["default"].losses[0], recorded["adamw_step"].losses[0]
    basic, strong = recorded["basic"].losses[0], recorded["strong"].losses[0]
    assert none_a == none_b
    assert len({none_a, basic, strong}) == 3, (none_a, basic, strong)


# ------------------------------------------------------------------ --image-size, --freeze-backbone


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory):
    """ResNet-20 (BatchNorm in the backbone) at 16x16 instead of 32x32, started from a
    weights file with its backbone frozen."""
    root = tmp_path_factory.mktemp("frozen")
    start = kc.get_model("resnet20", input_shape=(16, 16, 3))
    start_file = str(root / "start.weights.h5")
    start.save_weights(start_file)
    run = str(root / "run")
    code = cli.main(["train", "resnet20", "--image-size", "16", "--freeze-backbone", "--weights", start_file,
                     "--epochs", "1", "--limit", "32", "--batch-size", "16", "--lr", "0.1", "--output", run])
    assert code == 0
    return run, start


def test_image_size_sets_the_models_input(frozen_run):
    run, _ = frozen_run
    assert read_json(run, "config.json")["model"]["input_shape"] == [16, 16, 3]
    for stem in ("best", "last"):
        assert tuple(load_saved(run, stem).input_shape) == (None, 16, 16, 3)


def test_freeze_backbone_keeps_the_backbone_bit_identical_and_trains_the_head(frozen_run):
    run, start = frozen_run
    trained = load_saved(run, "last")
    backbone = {layer.name for layer in kc.get_model("resnet20", include_top=False, input_shape=(16, 16, 3)).layers}
    head = [layer for layer in trained.layers if layer.weights and layer.name not in backbone]
    assert [layer.name for layer in head] == ["fc"]
    checked = 0
    for layer in trained.layers:
        if layer.name in backbone and layer.weights:
            for got, before in zip(layer.get_weights(), start.get_layer(layer.name).get_weights(), strict=True):
                np.testing.assert_array_equal(got, before, err_msg=layer.name)
                checked += 1
    # Convolutions and BatchNorm gamma/beta/moving statistics of all 19 conv-BN pairs.
    assert checked == 19 + 19 * 4
    for got, before in zip(head[0].get_weights(), start.get_layer("fc").get_weights()):
        assert not np.array_equal(got, before)


# ------------------------------------------------------------------ --mixed-precision float16


def test_mixed_precision_float16_computes_in_float16_with_float32_variables(tmp_path, capsys):
    run = str(tmp_path / "fp16")
    out = train_cli(capsys, "lenet5", "--mixed-precision", "float16", "--epochs", "1", "--limit", "32",
                    "--batch-size", "16", "--output", run)
    assert "policy mixed_float16 (--mixed-precision float16)" in out
    assert read_json(run, "config.json")["precision"]["policy"] == "mixed_float16"
    model = load_saved(run, "best")
    weighted = [layer for layer in model.layers if layer.weights]
    assert {layer.dtype_policy.name for layer in weighted} == {"mixed_float16"}
    assert {layer.compute_dtype for layer in weighted} == {"float16"}
    assert {v.dtype for layer in weighted for v in layer.weights} == {"float32"}
    assert model.get_layer("predictions").compute_dtype == "float32"
    assert np.isfinite(float(read_history(run)[0]["loss"]))


def test_mixed_precision_float16_trains_with_loss_scaling(tmp_path):
    recorder = record(tmp_path, "fp16", mixed_precision="float16")
    assert isinstance(recorder.optimizer, keras.optimizers.LossScaleOptimizer)
    conv = recorder.policies["c1"]
    assert conv == ("mixed_float16", ["float32", "float32"])
    assert all(np.isfinite(recorder.losses))


# ------------------------------------------------------------------ --distribute


def test_distribute_data_parallel(tmp_path, capsys):
    """JAX: two simulated CPU devices (``XLA_FLAGS``); TensorFlow: MirroredStrategy over the
    one CPU; both give the single-device result. PyTorch refuses it with the reason."""
    run = str(tmp_path / "parallel")
    flags = ["lenet5", "--epochs", "1", "--limit", "32", "--batch-size", "16", "--seed", "2"]
    proc = train_cli_subprocess(*flags, "--distribute", "data-parallel", "--output", run,
                                XLA_FLAGS="--xla_force_host_platform_device_count=2")
    if BACKEND == "torch":
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "not supported on the PyTorch backend" in proc.stderr
        assert not os.path.exists(run)
        return
    assert proc.returncode == 0, proc.stderr[-3000:]
    devices = 2 if BACKEND == "jax" else 1
    info = read_json(run, "config.json")
    assert info["config"]["distribute"] == "data-parallel"
    assert info["placement"].startswith(f"data-parallel over {devices} device(s)")
    single = str(tmp_path / "single")
    train_cli(capsys, *flags, "--output", single)
    for got, expected in zip(load_saved(run, "last").get_weights(), load_saved(single, "last").get_weights(),
                             strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert read_json(run, "evaluation.json")["top1"] == pytest.approx(read_json(single, "evaluation.json")["top1"])
