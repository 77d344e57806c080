"""Success paths of the ``cnnclassics`` subcommands and the ``tools/`` scripts, each
checked by its effect: the rows printed against the registry, the padding rows of
``profile --no-fold-padding``, the checkpoint ``evaluate``/``predict`` really load,
the exported files' input types read back by their own runtimes, the tf2onnx path
taken when torch cannot be imported.

The exports and the tools' real runs start TensorFlow or PyTorch workers whatever the
backend of the suite, so each runs on one backend per run (``heavy``, rotating).
"""

from __future__ import annotations

import csv
import fnmatch
import re
import io
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_cnnclassics as kc
from keras_cnnclassics import cli
from keras_cnnclassics.registry import all_specs, get_spec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BACKEND = keras.backend.backend()
TOOLS = os.path.join(ROOT, "tools")


def run_cli(capsys, *argv):
    """``cnnclassics *argv`` in this process; its stdout (asserting success)."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def run_python(*argv, backend=BACKEND, env=None):
    """``python *argv`` in a fresh interpreter from the repository root on ``backend``."""
    environ = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, *map(str, argv)], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=600)


def run_cli_subprocess(*argv, **kwargs):
    return run_python("-m", "keras_cnnclassics.cli", *argv, **kwargs)


def succeeded(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


# ------------------------------------------------------------------ list, list_models


def test_list_prints_every_registry_model():
    out = succeeded(run_cli_subprocess("list"))
    lines = out.splitlines()
    names = [spec.name for spec in all_specs()]
    assert len(names) > 50
    assert lines[0].split() == ["name", "year", "params", "reference"]
    assert [line.split()[0] for line in lines[1:-1]] == names
    assert lines[-1] == f"{len(names)} models"
    rows = {line.split()[0]: line.split() for line in lines[1:-1]}
    for spec in all_specs():
        assert rows[spec.name][1:3] == [str(spec.year), f"{spec.params:,}"]
        assert rows[spec.name][3] == (spec.reference or "-")


def test_list_with_a_pattern_is_case_insensitive(capsys):
    lines = run_cli(capsys, "list", "LeNet*").splitlines()
    assert [line.split()[:3] for line in lines[1:-1]] == [["lenet5", "1998", "60,850"],
                                                          ["lenet5_cs231n", "1998", "1,256,080"]]
    assert lines[-1] == "2 models"
    assert run_cli(capsys, "list", "--names-only", "*_cifar").split() == [
        "densenet40_k12_cifar", "densenet_bc100_k12_cifar", "densenet_bc190_k40_cifar"]


def test_list_models_filters_by_pattern():
    everything = kc.list_models()
    natural = sorted(set(everything), key=lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)])
    assert everything == natural and len(everything) > 50
    assert kc.list_models("resnet1*")[:4] == ["resnet18", "resnet101", "resnet110", "resnet110_stochastic_depth"]
    assert kc.list_models("vgg1[69]") == ["vgg16", "vgg19"]
    assert kc.list_models("lenet*") == kc.list_models("LENET*") == ["lenet5", "lenet5_cs231n"]
    assert kc.list_models("resnet?0") == ["resnet20", "resnet50"]
    assert kc.list_models("resnet??") == ["resnet18", "resnet20", "resnet32", "resnet34", "resnet44", "resnet50",
                                          "resnet56"]
    assert kc.list_models("squeezenet1_?") == ["squeezenet1_0", "squeezenet1_1"]
    assert kc.list_models("no_such_model*") == []
    for pattern in ("*net*", "wrn*", "*_bn"):
        assert kc.list_models(pattern) == [n for n in everything if fnmatch.fnmatchcase(n, pattern)]


# ------------------------------------------------------------------ table


def test_table_has_one_row_per_model_from_the_registry(capsys):
    lines = run_cli(capsys, "table").splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == ["model", "paper", "year", "params", "MACs", "input", "reference", "top-1 (%)"]
    rows = {}
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = dict(zip(header, cells))
    specs = all_specs()
    assert list(rows) == [spec.name for spec in specs]
    for spec in specs:
        row = rows[spec.name]
        assert (row["year"], row["params"]) == (str(spec.year), f"{spec.params:,}")
        assert row["input"] == "x".join(map(str, spec.input_shape))
        assert row["reference"] == (f"`{spec.reference}`" if spec.reference else "-")
        assert row["top-1 (%)"] == ("-" if spec.top1 is None else f"{spec.top1:.2f}")
    assert any(line.startswith(f"{len(specs)} models.") for line in lines)
    # The MACs column (a cache) agrees with a live count, to its 4 significant digits.
    for name in ("lenet5", "resnet20"):
        number, unit = rows[name]["MACs"].split()
        assert float(number) * {"K": 1e3, "M": 1e6, "G": 1e9}[unit] == pytest.approx(
            kc.profile(name).total_macs, rel=5e-4)


# ------------------------------------------------------------------ profile --no-fold-padding


def profile_rows(capsys, *flags):
    text = run_cli(capsys, "profile", "resnet20", "--format", "csv", *flags)
    rows = list(csv.DictReader(io.StringIO(text)))
    return rows[:-1], rows[-1]


def test_profile_no_fold_padding_shows_the_padding_rows(capsys):
    folded, folded_total = profile_rows(capsys)
    unfolded, unfolded_total = profile_rows(capsys, "--no-fold-padding")
    pads = [row for row in unfolded if row["type"] == "ZeroPadding2D"]
    # ResNet-20's two stride-2 3x3 convolutions pad their input by 1 on each side.
    assert [(row["name"], row["output_shape"]) for row in pads] == [
        ("layer2_0_conv1_pad", "34x34x16"), ("layer3_0_conv1_pad", "18x18x32")]
    assert not any(row["type"] == "ZeroPadding2D" for row in folded)
    assert [row["name"] for row in unfolded if row not in pads] == [row["name"] for row in folded]
    notes = {row["name"]: row["note"] for row in folded if row["note"]}
    assert notes == {"layer2_0_conv1": "+layer2_0_conv1_pad", "layer3_0_conv1": "+layer3_0_conv1_pad"}
    assert unfolded_total["name"] == "TOTAL" and folded_total["name"] == "TOTAL"
    assert unfolded_total["type"] == f"{len(unfolded)} layers" and folded_total["type"] == f"{len(folded)} layers"
    for column in ("params", "macs", "ops"):
        assert unfolded_total[column] == folded_total[column]
    assert float(unfolded_total["memory_kb"]) == pytest.approx(
        float(folded_total["memory_kb"]) + sum(float(row["memory_kb"]) for row in pads), abs=0.02)


# ------------------------------------------------------------------ evaluate, predict


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """LeNet-5, 4 epochs on 64 digits; the step schedule's last epoch (rate / 100) barely
    moves the weights, so the best epoch (first to reach the top validation score) comes
    before the last one and the two checkpoints differ."""
    run = str(tmp_path_factory.mktemp("evaluate") / "run")
    code = cli.main(["train", "lenet5", "--epochs", "4", "--limit", "64", "--batch-size", "16", "--seed", "1",
                     "--schedule", "step", "--warmup-epochs", "0", "--optimizer", "adamw", "--output", run])
    assert code == 0
    with open(os.path.join(run, "history.csv"), encoding="utf-8", newline="") as handle:
        history = list(csv.DictReader(handle))
    with open(os.path.join(run, "evaluation.json"), encoding="utf-8") as handle:
        best_epoch = json.load(handle)["epoch"]
    assert best_epoch < len(history) == 4, "the run must leave a best checkpoint other than the last"
    return run, history, best_epoch


@pytest.mark.parametrize("checkpoint", ["best", "last"])
def test_evaluate_checkpoint_scores_that_checkpoint(trained_run, checkpoint, capsys):
    run, history, best_epoch = trained_run
    result = json.loads(run_cli(capsys, "evaluate", run, "--checkpoint", checkpoint, "--json"))
    assert result["model"] == os.path.join(os.path.abspath(run), f"{checkpoint}.keras")
    epoch = best_epoch if checkpoint == "best" else len(history)
    row = history[epoch - 1]
    assert (result["split"], result["images"]) == ("validation", 64)
    assert result["top1"] == pytest.approx(float(row["val_accuracy"]))
    assert result["loss"] == pytest.approx(float(row["val_loss"]), rel=1e-5)
    text = run_cli(capsys, "evaluate", run, "--checkpoint", checkpoint)
    assert text.startswith(f"{result['model']}: top-1 {result['top1']:.2f} %")


def digit_images(folder, count=3):
    """Write ``count`` digits as 32x32 greyscale PNGs (8x8 pixels blown up 4x); (paths, uint8 NHWC)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = np.round(load_digits().images[:count] * (255.0 / 16.0)).astype("uint8")
    big = np.stack([np.kron(image, np.ones((4, 4), dtype="uint8")) for image in digits])
    paths = []
    for i, image in enumerate(big):
        paths.append(str(folder / f"digit{i}.png"))
        Image.fromarray(image, mode="L").save(paths[-1])
    return paths, big[..., None]


def test_predict_json_with_each_checkpoint(trained_run, tmp_path, capsys):
    run, _, _ = trained_run
    paths, images = digit_images(tmp_path)
    probabilities = {}
    for checkpoint in ("best", "last"):
        out = run_cli(capsys, "predict", run, *paths, "--top-k", "3", "--checkpoint", checkpoint, "--json")
        results = json.loads(out)
        assert [r["image"] for r in results] == paths
        # Independently: the saved model on the images scaled to [0, 1] (LeNet-5's preprocessing).
        model = keras.saving.load_model(os.path.join(run, f"{checkpoint}.keras"), compile=False)
        expected = np.asarray(model.predict(images.astype("float32") / 255.0, verbose=0))
        for result, row in zip(results, expected, strict=True):
            top = result["top"]
            order = np.argsort(-row)[:3]
            assert [t["class"] for t in top] == [str(i) for i in order]
            np.testing.assert_allclose([t["probability"] for t in top], row[order], rtol=1e-5, atol=1e-6)
        probabilities[checkpoint] = expected
    assert not np.allclose(probabilities["best"], probabilities["last"])


# ------------------------------------------------------------------ export


@pytest.fixture(scope="module")
def lenet_weights(tmp_path_factory):
    """A LeNet-5 weights file drawn with numpy (the same on every backend) and its model.

    He-normal kernels, a classifier scaled by 0.1: near-even probabilities, whose int8
    file (uint8 output in steps of 1/256) agrees with the float model on the top-1 of
    87 % of the held-out digits on every backend: under the default 95 % limit."""
    model = kc.get_model("lenet5")
    rng = np.random.default_rng(0)
    weights = [rng.normal(0, np.sqrt(2 / np.prod(w.shape[:-1])), w.shape) if w.ndim > 1
               else rng.uniform(-0.1, 0.1, w.shape) for w in model.get_weights()]
    weights[-2:] = [0.1 * w for w in weights[-2:]]
    model.set_weights([w.astype("float32") for w in weights])
    path = str(tmp_path_factory.mktemp("lenet") / "lenet5.weights.h5")
    model.save_weights(path)
    return path, model


def litert_interpreter(path):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    return interpreter


def assert_onnx_matches_keras(path, model):
    """The ONNX file, run by ONNX Runtime, gives the Keras model's outputs."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(3).uniform(0, 1, (1, 32, 32, 1)).astype("float32")
    (got,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(got, np.asarray(model.predict(x, verbose=0)), rtol=1e-5, atol=1e-6)


@pytest.mark.heavy("cli-export-int8-uint8-json")
def test_export_int8_uint8_io_min_agreement_json(tmp_path, lenet_weights):
    output = tmp_path / "lenet5_int8.tflite"
    out = succeeded(run_cli_subprocess(
        "export", "lenet5", "--weights", lenet_weights[0], "--format", "tflite", "--quantize", "int8",
        "--calibration", "digits", "--int8-io", "uint8", "--min-agreement", "0.5", "--json", "--output", output))
    report = json.loads(out)
    # The int8 file agrees with Keras on fewer than the default 95 % of the images (see
    # lenet_weights), so only the lowered --min-agreement lets this export pass.
    assert report["passed"] is True and 0.5 <= report["top1_agreement"] < 0.95, report
    assert report["limit"] == "top-1 agreement >= 50%"
    assert (report["format"], report["precision"], report["input_dtype"]) == ("tflite", "int8 (uint8 io)", "uint8")
    assert report["output"] == str(output) and report["size_bytes"] == os.path.getsize(output)
    interpreter = litert_interpreter(output)
    (given,), (returned,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert (given["dtype"], returned["dtype"]) == (np.uint8, np.uint8)
    assert list(given["shape"]) == report["input_shape"] == [1, 32, 32, 1]
    scale, zero = given["quantization"]
    assert [scale, zero] == pytest.approx(report["input_quantization"])


# A sitecustomize that hides torch, torchvision and timm from every Python process started
# with it on PYTHONPATH (export workers included), as if they were not installed: ``import
# torch`` raises ModuleNotFoundError and ``importlib.util.find_spec("torch")`` is None.
NO_TORCH = """
import sys
from importlib.machinery import PathFinder


class PathFinderWithoutTorch(PathFinder):
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname.partition(".")[0] in ("torch", "torchvision", "timm"):
            return None
        return super().find_spec(fullname, path, target)


sys.meta_path[:] = [PathFinderWithoutTorch if f is PathFinder else f for f in sys.meta_path]
"""


@pytest.mark.heavy("cli-export-onnx-without-torch")
def test_onnx_export_without_torch_uses_tf2onnx(tmp_path, lenet_weights):
    """ONNX files are written on the PyTorch backend; without torch, by tf2onnx on TensorFlow
    (in this process on TensorFlow, in a worker on JAX; a torch-less Keras cannot run PyTorch)."""
    site = tmp_path / "no_torch"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_TORCH)
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    blocked = run_python("-c", "import torch", env=env)
    assert blocked.returncode != 0 and "No module named 'torch'" in blocked.stderr, blocked.stderr
    weights, model = lenet_weights
    output = tmp_path / "lenet5.onnx"
    backend = "tensorflow" if BACKEND == "torch" else BACKEND
    report = json.loads(succeeded(run_cli_subprocess(
        "export", "lenet5", "--format", "onnx", "--weights", weights, "--json", "--output", output,
        backend=backend, env=env)))
    assert report["passed"] is True and "TensorFlow backend" in report["writer"], report
    assert_onnx_matches_keras(output, model)


# ------------------------------------------------------------------ tools/ scripts


@pytest.mark.parametrize("script, options", [
    ("convert_weights.py", ["--arch", "--source", "--input", "--output", "--no-top"]),
    ("export_onnx.py", ["--output", "--quantize", "--calibration", "--min-agreement"]),
    ("export_tflite.py", ["--output", "--quantize", "--int8-io", "--min-agreement"]),
])
def test_tools_scripts_help(script, options):
    out = succeeded(run_python(os.path.join(TOOLS, script), "--help"))
    assert out.startswith("usage: ")
    assert all(option in out for option in options), out


@pytest.mark.heavy("tools-export-onnx")
def test_tools_export_onnx_writes_a_file_onnxruntime_agrees_with(tmp_path, lenet_weights):
    weights, model = lenet_weights
    output = tmp_path / "lenet5.onnx"
    out = succeeded(run_python(os.path.join(TOOLS, "export_onnx.py"), "lenet5", "--weights", weights,
                               "--output", output))
    assert any(line.startswith("onnx ") and line.rstrip().endswith(" ok") for line in out.splitlines()), out
    assert_onnx_matches_keras(output, model)


@pytest.mark.heavy("tools-export-tflite-int8-float-io")
def test_tools_export_tflite_int8_with_float_io(tmp_path, lenet_weights):
    weights, _ = lenet_weights
    output = tmp_path / "lenet5_int8.tflite"
    out = succeeded(run_python(os.path.join(TOOLS, "export_tflite.py"), "lenet5", "--weights", weights,
                               "--quantize", "int8", "--calibration", "digits", "--int8-io", "float",
                               "--min-agreement", "0.5", "--output", output))
    assert "int8 (float io)" in out, out
    interpreter = litert_interpreter(output)
    (given,), (returned,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert (given["dtype"], returned["dtype"]) == (np.float32, np.float32)
    assert any(t["dtype"] == np.int8 for t in interpreter.get_tensor_details())  # quantized inside
    interpreter.set_tensor(given["index"], np.zeros((1, 32, 32, 1), "float32"))
    interpreter.invoke()
    probs = interpreter.get_tensor(returned["index"])
    assert probs.shape == (1, 10) and abs(float(probs.sum()) - 1) < 0.05


@pytest.mark.heavy("tools-convert-weights")
def test_tools_convert_weights_writes_the_torch_weights(tmp_path):
    from support.reference import require, torch_reference

    torch = require("torch")
    spec = get_spec("squeezenet1_1")
    reference = torch_reference(spec.reference)
    checkpoint = tmp_path / "squeezenet1_1.pth"
    torch.save(reference.state_dict(), checkpoint)
    output = tmp_path / "squeezenet1_1.weights.h5"
    out = succeeded(run_python(os.path.join(TOOLS, "convert_weights.py"), "--arch", "squeezenet1_1",
                               "--source", "torchvision", "--input", checkpoint, "--output", output))
    assert "max |logit difference|" in out and str(output) in out
    model = kc.get_model("squeezenet1_1", weights=str(output))
    state = {k: v.numpy() for k, v in reference.state_dict().items()}
    # torch's OIHW convolution kernels are Keras' HWIO ones, transposed.
    first = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    kernel, bias = first.get_weights()
    np.testing.assert_array_equal(kernel, state["features.0.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(bias, state["features.0.bias"])
    last = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)][-1]
    np.testing.assert_array_equal(last.get_weights()[0], state["classifier.1.weight"].transpose(2, 3, 1, 0))
