"""Training as users run it (issue 9): run folder, resume after SIGKILL, refusals,
bad input, mixed precision, auxiliary heads, data parallelism, evaluate/predict.

Lean by construction: LeNet-5 on scikit-learn's digits (a few seconds an epoch)
for the engine's behaviour; the bigger networks (ResNet-18, GoogLeNet with aux
heads, DenseNet-BC) train a few steps on 32x32 digits and are sampled per
backend (``heavy``), as their compile time dominates.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_cnnclassics import cli, count_params, get_model
from keras_cnnclassics.training import TrainConfig, evaluate, predict, train
from keras_cnnclassics.training.augment import Augmenter
from keras_cnnclassics.training.config import AUX_LOSS_WEIGHT
from keras_cnnclassics.training.data import load_folder_data, load_image_file
from keras_cnnclassics.training.engine import compile_model
from keras_cnnclassics.registry import get_spec
from keras_cnnclassics.training.precision import resolve_policy
from keras_cnnclassics.training.runfolder import ARTIFACTS, RunFolder, RunFolderBusy, SaveError
from keras_cnnclassics.training.schedules import WarmupSchedule

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BACKEND = keras.backend.backend()
# A short LeNet-5 run for the mechanics: 320 training images, 20 steps of 16 per epoch.
QUICK = dict(epochs=2, limit=320, batch_size=16, seed=3, warmup_epochs=0)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Torch's two OpenMP threads spin-wait badly on this shared 2-core machine."""
    if BACKEND != "torch":
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _quiet_train(config, **kwargs):
    return train(config, verbose=0, **kwargs)


def _sha(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def _weights(path):
    model = keras.saving.load_model(path, compile=False)
    return [np.asarray(w) for w in model.get_weights()]


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lenet5"
    # all 1,437 training digits, 2 epochs of 89 steps, flips and crops
    settings = {**QUICK, "limit": None, "augment": "basic"}
    return _quiet_train(TrainConfig("lenet5", output=str(out), **settings))


def _digit_folder(root, classes=3, per_class=8, size=(40, 30), mode="L"):
    """An image folder of real digits as PNG files (non-square, to exercise the crop)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for label in range(classes):
        os.makedirs(root / f"class_{label}", exist_ok=True)
        images = digits.images[digits.target == label][:per_class]
        for i, image in enumerate(images):
            pixels = (image * 255 / 16).astype("uint8")
            Image.fromarray(pixels).resize(size).convert(mode).save(root / f"class_{label}" / f"{i}.png")
    return root


# -- the run folder ------------------------------------------------------------------
def test_run_folder_holds_every_artifact(lenet_run):
    run = RunFolder(lenet_run.run_dir)
    assert all(run.exists(name) for name in ARTIFACTS)
    assert not [f for f in os.listdir(run.path) if f.startswith(".tmp-")]
    with open(run.file("history.csv")) as handle:
        lines = handle.read().splitlines()
    assert lines[0].split(",")[:6] == ["epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy"]
    assert len(lines) == 1 + QUICK["epochs"]
    for png in ("curves.png", "confusion_matrix.png"):
        with open(run.file(png), "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    info = run.read_json("config.json")
    assert info["config"]["augment"] == "basic" and info["config"]["label_smoothing"] == 0.1
    assert info["model"]["params"] == 60_850
    assert info["data"]["class_names"] == [str(i) for i in range(10)]
    assert info["precision"]["policy"] == "float32"  # auto on a CPU
    evaluation = run.read_json("evaluation.json")
    best = max(lenet_run.history, key=lambda row: row["val_accuracy"])
    assert evaluation["epoch"] == best["epoch"]
    assert evaluation["top1"] == pytest.approx(best["val_accuracy"], abs=1e-9)
    assert np.asarray(evaluation["confusion_matrix"]).sum() == evaluation["images"] == 360
    assert evaluation["top1"] > 60.0  # two epochs of LeNet-5 on real digits (measured 80 % on TF)


def test_evaluate_reproduces_the_runs_validation_score(lenet_run, capsys):
    result = evaluate(lenet_run.run_dir)
    assert result["split"] == "validation"
    assert result["top1"] == pytest.approx(lenet_run.evaluation["top1"], abs=1e-9)
    # cnnclassics evaluate RUN --data digits --split all: all 1,797 digits (no --limit there)
    assert cli.main(["evaluate", lenet_run.run_dir, "--data", "digits", "--split", "all", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 1797


def test_predict_names_the_classes(lenet_run, tmp_path, capsys):
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    paths = []
    for index in (0, 1):
        path = tmp_path / f"digit{index}.png"
        Image.fromarray((digits.images[index] * 255 / 16).astype("uint8")).save(path)
        paths.append(str(path))
    results = predict(lenet_run.run_dir, paths, top_k=3)
    assert [len(top) for _, top in results] == [3, 3]
    assert all(name in [str(i) for i in range(10)] for _, top in results for name, _ in top)
    probs = [p for _, top in results for _, p in top]
    assert all(0.0 <= p <= 1.0 for p in probs)
    assert cli.main(["predict", lenet_run.run_dir, *paths, "--top-k", "2"]) == 0
    assert capsys.readouterr().out.count("\n") == 2 * 3


# -- refusals ---------------------------------------------------------------------------
def test_existing_run_is_never_overwritten(lenet_run):
    run = RunFolder(lenet_run.run_dir)
    before = {name: _sha(run.file(name)) for name in ARTIFACTS}
    with pytest.raises(FileExistsError, match="pass --resume to continue it or --force"):
        _quiet_train(TrainConfig("lenet5", output=run.path, **QUICK))
    with pytest.raises(ValueError, match="epochs: 2 -> 5"):
        _quiet_train(TrainConfig("lenet5", output=run.path, **{**QUICK, "epochs": 5}), resume=True)
    assert {name: _sha(run.file(name)) for name in ARTIFACTS} == before


def test_second_training_on_a_locked_folder_refuses(tmp_path):
    run = RunFolder(tmp_path / "busy")
    with run.locked():
        with pytest.raises(RunFolderBusy, match=f"process {os.getpid()}"):
            _quiet_train(TrainConfig("lenet5", output=run.path, **QUICK))
    with open(run.file(".lock")) as handle:
        assert handle.read().split()[0] == str(os.getpid())
    assert not run.has_run()


def test_force_starts_over(tmp_path):
    out, small = str(tmp_path / "forced"), {**QUICK, "limit": 64}
    _quiet_train(TrainConfig("lenet5", output=out, **small))
    result = _quiet_train(TrainConfig("lenet5", output=out, **{**small, "epochs": 1}), force=True)
    assert [row["epoch"] for row in result.history] == [1]
    assert RunFolder(out).read_json("config.json")["config"]["epochs"] == 1


# -- crash safety -----------------------------------------------------------------------
KILLED_WORKER = textwrap.dedent(
    """
    import os, signal, sys
    import keras
    from keras_cnnclassics.training import TrainConfig, train

    class KillMidEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 1 and batch == 4:  # the second epoch, half-way
                os.kill(os.getpid(), signal.SIGKILL)

    if keras.backend.backend() == "torch":
        import torch
        torch.set_num_threads(1)
    train(TrainConfig(**eval(sys.argv[1])), verbose=0, callbacks=[KillMidEpoch()])
    """
)


def test_resume_after_sigkill_gives_the_uninterrupted_weights(tmp_path):
    settings = dict(model="lenet5", augment="strong", **QUICK)
    whole = _quiet_train(TrainConfig(output=str(tmp_path / "whole"), **settings))
    killed = str(tmp_path / "killed")
    env = {**os.environ, "KERAS_BACKEND": BACKEND, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WORKER, repr({**settings, "output": killed})],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]  # SIGKILL, in the middle of epoch 2
    run = RunFolder(killed)
    with np.load(run.file("checkpoint.npz")) as state:
        assert json.loads(str(state["meta"]))["epoch"] == 1
    resumed = _quiet_train(TrainConfig(output=killed, **settings), resume=True)
    assert resumed.resumed_from == 1
    assert [row["epoch"] for row in resumed.history] == [1, 2]
    for a, b in zip(_weights(run.file("last.keras")), _weights(os.path.join(whole.run_dir, "last.keras"))):
        np.testing.assert_array_equal(a, b)  # bit-exact on CPU, all three backends
    assert resumed.history[-1]["val_loss"] == whole.history[-1]["val_loss"]


def test_full_disk_on_save_loses_no_checkpoint(tmp_path, monkeypatch):
    """The disk fills up while epoch 2's checkpoint is written: epoch 1's survives."""
    out = str(tmp_path / "disk")
    run, real_savez, seen = RunFolder(out), np.savez, {}

    def disk_full_on_second_checkpoint(path, **arrays):
        if not run.exists("checkpoint.npz"):
            return real_savez(path, **arrays)
        seen["before"] = _sha(run.file("checkpoint.npz"))
        with open(path, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full_on_second_checkpoint)
    with pytest.raises(SaveError, match="No space left on device. Nothing was lost"):
        _quiet_train(TrainConfig("lenet5", output=out, **QUICK))
    monkeypatch.setattr(np, "savez", real_savez)
    assert _sha(run.file("checkpoint.npz")) == seen["before"]
    assert not [f for f in os.listdir(out) if f.startswith(".tmp-")]
    result = _quiet_train(TrainConfig("lenet5", output=out, **QUICK), resume=True)
    assert result.resumed_from == 1 and [r["epoch"] for r in result.history] == [1, 2]


# -- bad input --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options, message",
    [
        (dict(batch_size=0), "batch-size must be an integer >= 1; got 0"),
        (dict(image_size=8, model="googlenet"), "too small; this network needs height and width >= 15"),
        (dict(image_size=28), "input must be 32x32"),
        (dict(optimizer="adam"), "optimizer must be one of sgd, adamw"),
        (dict(model="lenet6"), "Unknown model name 'lenet6'. Closest names: lenet5"),
        (dict(model_options={"depth": 3}), "unknown option"),
        (dict(label_smoothing=1.5), r"label-smoothing must be a number in \[0.0, 1.0\)"),
        (dict(warmup_epochs=3, epochs=2), "warmup_epochs .* must be smaller than epochs"),
    ],
)
def test_bad_options_fail_before_anything_is_built(tmp_path, options, message):
    out = tmp_path / "never"
    options = {"model": "lenet5", **options}
    with pytest.raises(ValueError, match=message):
        _quiet_train(TrainConfig(output=str(out), **options))
    assert not out.exists()


def test_command_line_errors_are_one_line(capsys):
    assert cli.main(["train", "lenet5", "--batch-size", "0"]) == 2
    assert "train: error: batch-size must be an integer >= 1; got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "lenet5", "--learning-rate", "1"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --learning-rate" in capsys.readouterr().err
    assert cli.main(["train", "lenet5", "--resume"]) == 2
    assert "--resume needs --output" in capsys.readouterr().err


def test_empty_and_one_class_folders_are_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="has no class subfolders"):
        load_folder_data(str(empty), 32, 1)
    one = _digit_folder(tmp_path / "one", classes=1)
    with pytest.raises(ValueError, match="has one class .*at least 2 class subfolders"):
        load_folder_data(str(one), 32, 1)
    (one / "class_9").mkdir()
    with pytest.raises(ValueError, match="class folder\\(s\\) class_9 hold no images"):
        load_folder_data(str(one), 32, 1)


def test_folder_training_skips_unreadable_images(tmp_path, capsys):
    folder = _digit_folder(tmp_path / "digits", classes=3, per_class=8)
    (folder / "class_0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "class_2" / "empty.jpg").write_bytes(b"")
    data = load_folder_data(str(folder), 32, 1, val_split=0.25, seed=0)
    assert data.skipped == 2
    assert len(data.y_train) + len(data.y_val) == 24
    assert "Skipped 2 unreadable image(s)" in capsys.readouterr().out
    # predict decodes a file exactly as the training pipeline did
    image = load_image_file(folder / "class_1" / "3.png", 32, 1)
    assert any(np.array_equal(image, x) for x in np.concatenate([data.x_train, data.x_val]))

    out = str(tmp_path / "run")
    result = _quiet_train(TrainConfig("lenet5", data=str(folder), output=out, epochs=1,
                                      batch_size=6, val_split=0.25))
    info = RunFolder(out).read_json("config.json")
    assert info["data"]["skipped_unreadable"] == 2 and info["config"]["augment"] == "basic"
    assert info["data"]["class_names"] == ["class_0", "class_1", "class_2"]
    assert result.evaluation["top5"] is None  # 3 classes
    top = predict(out, [str(folder / "class_2" / "0.png")], top_k=5)[0][1]
    assert sorted(name for name, _ in top) == ["class_0", "class_1", "class_2"]


# -- pieces: precision, schedule, augmentation, heads, weights --------------------------
def test_mixed_precision_policy_resolution():
    assert resolve_policy("auto", gpu=None) == ("float32", "auto: no GPU, float32")
    assert resolve_policy("auto", gpu={"name": "A100", "bfloat16": True})[0] == "mixed_bfloat16"
    assert resolve_policy("auto", gpu={"name": "T4", "bfloat16": False})[0] == "mixed_float16"
    assert resolve_policy("off")[0] == "float32"
    keras.config.set_dtype_policy("mixed_float16")
    model = get_model("lenet5")
    cfg = TrainConfig("lenet5").resolved(get_spec("lenet5"))
    compile_model(model, cfg, steps_per_epoch=10)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)  # float16: scaled
    assert model.get_layer("predictions").compute_dtype == "float32"
    assert model.get_layer("c1").compute_dtype == "float16"


def test_warmup_schedules():
    cosine = WarmupSchedule(0.1, total_steps=100, warmup_steps=10)
    values = [float(keras.ops.convert_to_numpy(cosine(s))) for s in (0, 4, 9, 10, 55, 99)]
    np.testing.assert_allclose(values[:3], [0.01, 0.05, 0.1], rtol=1e-6)
    np.testing.assert_allclose(values[3:], [0.1, 0.05, 0.1 * 0.5 * (1 + np.cos(np.pi * 89 / 90))],
                               rtol=1e-5, atol=1e-8)  # float32 cosine
    step = WarmupSchedule(0.1, total_steps=100, kind="step")
    values = [float(keras.ops.convert_to_numpy(step(s))) for s in (0, 49, 50, 74, 75, 99)]
    np.testing.assert_allclose(values, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-5)
    clone = WarmupSchedule.from_config(cosine.get_config())
    assert float(keras.ops.convert_to_numpy(clone(4))) == pytest.approx(0.05, rel=1e-6)


def test_augmentation_is_a_function_of_its_seed():
    images = np.random.default_rng(0).uniform(0, 255, (4, 24, 24, 3)).astype("float32")
    strong = Augmenter("strong", 3)
    first, again = strong(images, seed=(0, 5)), strong(images, seed=(0, 5))
    other = strong(images, seed=(0, 6))
    assert first.shape == images.shape and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    assert 0.0 <= first.min() and first.max() <= 255.0
    assert Augmenter("none", 3)(images, seed=(0, 1)) is images


def test_auxiliary_losses_are_weighted_0_3():
    inputs = keras.Input((4,))
    outputs = [keras.layers.Dense(3, activation="softmax", name=n)(inputs) for n in ("main", "aux1", "aux2")]
    model = keras.Model(inputs, outputs)
    cfg = TrainConfig("lenet5").resolved(get_spec("lenet5"))
    compile_model(model, cfg, steps_per_epoch=10)
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    y = np.eye(3, dtype="float32")[np.arange(8) % 3]
    logs = model.evaluate(x, (y, y, y), return_dict=True, verbose=0)
    expected = logs["main_loss"] + AUX_LOSS_WEIGHT * (logs["aux1_loss"] + logs["aux2_loss"])
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)


def test_drop_path_is_active_only_in_training():
    model = get_model("resnet20", input_shape=(32, 32, 3), drop_path_rate=0.5)
    x = np.random.default_rng(0).uniform(0, 1, (4, 32, 32, 3)).astype("float32")
    inference = [keras.ops.convert_to_numpy(model(x, training=False)) for _ in range(2)]
    training = [keras.ops.convert_to_numpy(model(x, training=True)) for _ in range(2)]
    np.testing.assert_array_equal(*inference)
    assert not np.allclose(*training)


def test_start_weights_with_a_new_head_and_a_frozen_backbone(tmp_path):
    donor = get_model("lenet5", classes=5)
    donor_path = str(tmp_path / "donor.weights.h5")
    donor.save_weights(donor_path)
    out = str(tmp_path / "finetune")
    _quiet_train(TrainConfig("lenet5", output=out, weights=donor_path, freeze_backbone=True,
                             **{**QUICK, "epochs": 1}))
    tuned = keras.saving.load_model(os.path.join(out, "last.keras"), compile=False)
    for name in ("c1", "s2", "c3", "s4", "c5"):  # loaded, then frozen
        for a, b in zip(tuned.get_layer(name).get_weights(), donor.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert tuned.get_layer("output").get_weights()[0].shape == (84, 10)  # the new head
    assert not np.allclose(tuned.get_layer("f6").get_weights()[0], donor.get_layer("f6").get_weights()[0])


# -- bigger networks: a few steps on 32x32 digits decrease the loss ---------------------
BIG = [
    pytest.param("resnet18", "bfloat16", {}, marks=pytest.mark.heavy("train-resnet18-bf16"), id="resnet18-bf16"),
    pytest.param("googlenet", "off", {}, marks=pytest.mark.heavy("train-googlenet-aux"), id="googlenet-aux"),
    # DenseNet-BC (k=12) at depth 40 instead of the registered 100: a third of the
    # layers to compile, the same blocks and training path.
    pytest.param("densenet_bc100_k12_cifar", "off", {"depth": 40},
                 marks=pytest.mark.heavy("train-densenet-bc"), id="densenet-bc40"),
]


@pytest.mark.parametrize("name, precision, options", BIG)
def test_bigger_networks_learn_digits(tmp_path, name, precision, options):
    out = str(tmp_path / name)
    result = _quiet_train(TrainConfig(
        name, output=out, image_size=32, limit=32, batch_size=16, epochs=6, optimizer="adamw",
        warmup_epochs=0, mixed_precision=precision, model_options=options,
    ))
    losses = [row["loss"] for row in result.history]
    # measured on TF: resnet18 3.15 -> 0.87, googlenet 5.16 -> 1.79, densenet-bc40 2.61 -> 1.84
    assert losses[-1] < 0.8 * losses[0], losses
    info = RunFolder(out).read_json("config.json")
    best = keras.saving.load_model(os.path.join(out, "best.keras"), compile=False)
    assert len(best.outputs) == 1  # aux heads are for training only
    if name == "googlenet":
        assert info["model"]["outputs"] == 3 and info["model"]["options"]["aux_logits"] is True
        assert count_params(best) == count_params(get_model("googlenet", classes=10, input_shape=(32, 32, 3)))
    if precision == "bfloat16":
        assert info["precision"]["policy"] == "mixed_bfloat16"
        assert best.get_layer("conv1").compute_dtype == "bfloat16"
        assert best.get_layer("predictions").compute_dtype == "float32"


# -- data parallelism on simulated CPU devices ------------------------------------------
PARALLEL_WORKER = textwrap.dedent(
    """
    import json, sys
    import keras, numpy as np
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from keras_cnnclassics.training import TrainConfig, train
    weights = {}
    for mode in ("none", "data-parallel"):
        out = sys.argv[1] + "/" + mode
        train(TrainConfig("lenet5", output=out, distribute=mode, augment="basic", epochs=2,
                          limit=320, batch_size=32, seed=3), verbose=0)
        weights[mode] = keras.saving.load_model(out + "/last.keras").get_weights()
    info = json.load(open(sys.argv[1] + "/data-parallel/config.json"))
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(weights["none"], weights["data-parallel"]))
    print(json.dumps({"placement": info["placement"], "max_diff": diff}))
    """
)


def test_data_parallel_two_devices_match_one(tmp_path):
    """JAX (DataParallel) and TensorFlow (MirroredStrategy) on two simulated CPU
    devices; on PyTorch the option is refused with the reason."""
    if BACKEND == "torch":
        config = TrainConfig("lenet5", output=str(tmp_path / "dp"), distribute="data-parallel", **QUICK)
        with pytest.raises(ValueError, match="not supported on the PyTorch backend"):
            _quiet_train(config)
        assert not (tmp_path / "dp").exists()
        return
    env = {**os.environ, "KERAS_BACKEND": BACKEND, "TF_CPP_MIN_LOG_LEVEL": "3",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    proc = subprocess.run([sys.executable, "-c", PARALLEL_WORKER, str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "over 2 device(s)" in report["placement"]
    assert report["max_diff"] < 1e-5, report  # reduction order differs; measured ~1e-7
