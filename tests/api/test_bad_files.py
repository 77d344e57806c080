"""Damaged and hostile files (issue 11): truncated, empty, foreign, or carrying code.

Weight files (``.weights.h5``/``.keras``/``.h5``), PyTorch checkpoints (``.pth``/``.safetensors``),
saved models, run folders and image folders. Each is refused with a message naming the file and
what is wrong with it, the CLI exits 2 with one line, nothing is created or changed, and a file
that carries code never runs it (a marker file it would create stays absent).
"""

from __future__ import annotations

import os
import pickle
import shutil
import zipfile

import keras
import pytest

import keras_cnnclassics as kc
from keras_cnnclassics.checkpoints import read_checkpoint
from keras_cnnclassics.convert import convert_checkpoint
from keras_cnnclassics.training import TrainConfig, evaluate, train
from keras_cnnclassics.training.data import load_folder_data

from support.reference import require
from test_bad_input import QUICK, Unchanged, cli_error, raises, save_png


def _truncate(source, target, fraction=0.5):
    data = open(source, "rb").read()
    with open(target, "wb") as handle:
        handle.write(data[: int(len(data) * fraction)])
    return str(target)


def _damaged_copies(folder, good, stem, suffix):
    """``{kind: path}``: truncated, empty and text-file versions of ``good``."""
    paths = {"truncated": _truncate(good, folder / f"{stem}_truncated{suffix}"),
             "empty": str(folder / f"{stem}_empty{suffix}"), "text": str(folder / f"{stem}_text{suffix}")}
    open(paths["empty"], "wb").close()
    with open(paths["text"], "w") as handle:
        handle.write("these are not weights\n")
    return paths


class RunsCode:
    """Unpickling this runs ``touch MARKER`` (what a hostile checkpoint would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


# ------------------------------------------------------------ Keras weight files
@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras files")
    model = kc.LeNet5()
    paths = {"weights": str(folder / "lenet5.weights.h5"), "keras": str(folder / "lenet5.keras")}
    model.save_weights(paths["weights"])
    model.save(paths["keras"])
    for key, suffix in (("weights", ".weights.h5"), ("keras", ".keras")):
        paths.update({f"{key} {kind}": path for kind, path in _damaged_copies(folder, paths[key], key, suffix).items()})
    paths["h5 empty"] = str(folder / "legacy.h5")
    open(paths["h5 empty"], "wb").close()
    paths["keras without weights"] = str(folder / "config_only.keras")
    with zipfile.ZipFile(paths["keras without weights"], "w") as archive:
        archive.writestr("config.json", "{}")
    return paths


DAMAGED_WEIGHTS = ["weights truncated", "weights empty", "weights text", "keras truncated", "keras empty",
                   "keras text", "h5 empty", "keras without weights"]


@pytest.mark.parametrize("kind", DAMAGED_WEIGHTS)
def test_damaged_weight_files_are_refused(keras_files, kind, tmp_path, capsys):
    path = keras_files[kind]
    with raises(ValueError, f"Cannot read weights file {path!r}", "not a complete Keras"):
        kc.LeNet5(weights=path)
    with Unchanged(tmp_path):
        cli_error(capsys, ["export", "lenet5", "--format", "onnx", "--output", tmp_path / "m.onnx", "--weights", path],
                  "Cannot read weights file", os.path.basename(path))
        cli_error(capsys, ["train", "lenet5", "--output", tmp_path / "run", "--weights", path, "--limit", "16"],
                  "Cannot read weights file", os.path.basename(path))


@pytest.mark.parametrize("kind", ["keras truncated", "keras empty", "keras text", "keras without weights"])
def test_damaged_model_files_are_refused(keras_files, kind, tmp_path, capsys):
    path = keras_files[kind]
    image = save_png(tmp_path / "x.png")
    with Unchanged(tmp_path):
        cli_error(capsys, ["export", path, "--format", "onnx", "--output", tmp_path / "m.onnx"], os.path.basename(path),
                  ".keras")
        cli_error(capsys, ["predict", path, image], os.path.basename(path), ".keras")
        cli_error(capsys, ["evaluate", path, "--data", "digits"], os.path.basename(path), ".keras")


def test_a_keras_file_with_code_is_refused_and_never_runs(tmp_path, capsys):
    marker = tmp_path / "MARKER"
    hostile = eval(f"lambda x: (__import__('os').system(\"touch '{marker}'\"), x)[1]")  # noqa: S307
    inputs = keras.Input((32, 32, 1), name="input_layer")
    outputs = kc.LeNet5()(keras.layers.Lambda(hostile, name="payload")(inputs))
    path = tmp_path / "lenet5.keras"
    keras.Model(inputs, outputs, name="lenet5").save(path)
    marker.unlink()  # building the model ran the lambda once, here, on purpose
    image = save_png(tmp_path / "x.png")
    for argv in (["export", path, "--format", "onnx", "--output", tmp_path / "m.onnx"], ["predict", path, image],
                 ["evaluate", path, "--data", "digits"]):
        with Unchanged(tmp_path):
            cli_error(capsys, argv, "Lambda", "safe_mode")
    assert not marker.exists()


# ------------------------------------------------------------ PyTorch checkpoints
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    torch = require("torch")
    require("safetensors")
    from safetensors.torch import save_file

    models = require("torchvision")
    folder = tmp_path_factory.mktemp("checkpoints")
    state = models.squeezenet1_1(weights=None).state_dict()
    paths = {"pth": str(folder / "squeezenet1_1.pth"), "safetensors": str(folder / "squeezenet1_1.safetensors"),
             "other arch": str(folder / "squeezenet1_0.pth"), "marker": str(folder / "MARKER")}
    torch.save(state, paths["pth"])
    save_file({k: v.contiguous() for k, v in state.items()}, paths["safetensors"])
    torch.save(models.squeezenet1_0(weights=None).state_dict(), paths["other arch"])
    for key, suffix in (("pth", ".pth"), ("safetensors", ".safetensors")):
        paths.update({f"{key} {kind}": path for kind, path in _damaged_copies(folder, paths[key], key, suffix).items()})
    paths["pth code"] = str(folder / "with_code.pth")
    torch.save({"features.0.weight": torch.zeros(1), "payload": RunsCode(paths["marker"])}, paths["pth code"])
    paths["pickle code"] = str(folder / "legacy_pickle.pth")
    with open(paths["pickle code"], "wb") as handle:
        pickle.dump(RunsCode(paths["marker"]), handle, protocol=2)
    paths["no tensors"] = str(folder / "no_tensors.pth")
    torch.save({"epoch": 3, "notes": "no weights"}, paths["no tensors"])
    return paths


@pytest.mark.parametrize(
    "kind, message",
    [
        ("pth truncated", "is truncated or corrupted"),
        ("pth empty", "is empty (0 bytes)"),
        ("pth text", "is not a PyTorch checkpoint"),
        ("safetensors truncated", "is not a readable .safetensors file"),
        ("safetensors empty", "is empty (0 bytes)"),
        ("safetensors text", "is not a PyTorch checkpoint"),
        ("no tensors", "holds no state dict of tensors"),
        ("pth code", "refuses to load"),
        ("pickle code", "refuses to load"),
        ("other arch", "does not fit squeezenet1_1"),
    ],
)
def test_bad_checkpoints_are_refused_and_the_output_is_kept(checkpoints, kind, message, tmp_path, capsys):
    output = tmp_path / "squeezenet1_1.weights.h5"
    output.write_bytes(b"the previous conversion")
    argv = ["convert", "--arch", "squeezenet1_1", "--source", "torchvision", "--input", checkpoints[kind],
            "--output", output, "--force"]
    with Unchanged(tmp_path):
        cli_error(capsys, argv, message, os.path.basename(checkpoints[kind]))
        with raises(ValueError, message):
            convert_checkpoint("squeezenet1_1", "torchvision", checkpoints[kind], str(output), force=True, log=None)
    assert not os.path.exists(checkpoints["marker"])  # the pickled os.system never ran


def test_checkpoint_code_is_refused_before_it_runs(checkpoints):
    for kind in ("pth code", "pickle code"):
        with raises(ValueError, "could run code when unpickled", "refuses to load posix.system"):
            read_checkpoint(checkpoints[kind])
    assert not os.path.exists(checkpoints["marker"])


def test_bad_conversion_requests(checkpoints, tmp_path, capsys):
    output = tmp_path / "w.weights.h5"
    base = ["convert", "--arch", "squeezenet1_1", "--input", checkpoints["pth"], "--output", output]
    with Unchanged(tmp_path):
        cli_error(capsys, base + ["--source", "timm"], "--source timm does not fit squeezenet1_1")
        cli_error(capsys, base + ["--source", "caffe"], "invalid choice: 'caffe'")
        cli_error(capsys, base + ["--source", "torchvision", "--tolerance", "nan"], "tolerance must be a number")
        cli_error(capsys, base + ["--source", "torchvision", "--classes", "0"], "classes must be a positive integer")
        cli_error(capsys, ["convert", "--arch", "lenet5", "--source", "torchvision", "--input", checkpoints["pth"],
                           "--output", output], "lenet5 has no torchvision/timm counterpart")
        cli_error(capsys, ["convert", "--arch", "squeezenet1_1", "--source", "torchvision", "--input", tmp_path,
                           "--output", output], "is a folder, not a file")
        cli_error(capsys, base[:-1] + [tmp_path / "w.h5", "--source", "torchvision"], "must end in .weights.h5")
        with raises(ValueError, "input must be the path of a .pth/.pt/.safetensors file"):
            convert_checkpoint("squeezenet1_1", "torchvision", None, str(output), log=None)


# ------------------------------------------------------------ run folders
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lenet5"
    return train(TrainConfig("lenet5", output=str(out), **QUICK), verbose=0).run_dir


def _damaged_copy(finished_run, tmp_path, name, content):
    """A copy of a finished run folder with ``name`` overwritten by ``content``."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / name).write_bytes(content)
    return run


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("config.json", b"{not json", "config.json is damaged: not valid JSON"),
        ("config.json", b"{}", "is not a training run's configuration"),
        ("checkpoint.npz", b"PK\x03\x04 truncated", "resume checkpoint"),
        ("checkpoint.npz", b"", "resume checkpoint"),
    ],
)
def test_damaged_run_folder_files_are_named_on_resume(finished_run, tmp_path, name, content, message, capsys):
    run = _damaged_copy(finished_run, tmp_path, name, content)
    with Unchanged(run):
        cli_error(capsys, ["train", "lenet5", "--output", run, "--resume"], message, name)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("config.json", b"\xff\xfe binary", "config.json is damaged"),
        ("config.json", b'{"config": {}}', "is not a training run's configuration"),
        ("best.keras", b"PK\x03\x04 truncated", "is not a readable .keras file"),
        ("best.keras", b"", "is not a readable .keras file"),
    ],
)
def test_damaged_run_folder_files_are_named_on_evaluate(finished_run, tmp_path, name, content, message, capsys):
    run = _damaged_copy(finished_run, tmp_path, name, content)
    with Unchanged(run):
        cli_error(capsys, ["evaluate", run], message, name)
        with raises(ValueError, message):
            evaluate(str(run))


# ------------------------------------------------------------ image folders
def test_image_folders_with_nothing_readable_are_refused(tmp_path, capsys):
    broken = tmp_path / "broken"
    for label in ("a", "b"):
        (broken / label).mkdir(parents=True)
        (broken / label / "zero.png").write_bytes(b"")
        (broken / label / "junk.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
        (broken / label / "notes.txt").write_text("not an image")
    text_only = tmp_path / "text only"
    for label in ("a", "b"):
        (text_only / label).mkdir(parents=True)
        (text_only / label / "readme.txt").write_text("hello")
    out = tmp_path / "run"
    with Unchanged(tmp_path):
        cli_error(capsys, ["train", "lenet5", "--data", broken, "--output", out, "--val-split", "0.25"],
                  "after skipping 4 unreadable image(s)")
        cli_error(capsys, ["train", "lenet5", "--data", text_only, "--output", out], "hold no images")
        cli_error(capsys, ["train", "lenet5", "--data", broken / "a" / "zero.png", "--output", out],
                  "must be 'digits' or an existing image folder")
    assert not out.exists()
    with raises(ValueError, "has no class subfolders"):
        load_folder_data(str(broken / "a"), 32, 1)
