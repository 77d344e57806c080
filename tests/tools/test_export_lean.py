"""Lean exports: ONNX (keras_cnnclassics.export.onnx_lean) and LiteRT files, and OpenCV's DNN module as a second runtime.

Facts asserted on the float32 files of SqueezeNet 1.1, GoogLeNet and ResNet-18
(64x64, 10 classes, BatchNorm with random statistics so that folding is
really tested): no Cast, Identity, Constant or shape-computing node, no
BatchNorm left (no Sub/Mul: folded into the Conv before it), one Transpose (at
the input), no Pad (folded into the Conv or pool after it), a node count at or
below a measured ceiling and no higher than torchvision's own ``torch.onnx.export``
of the same architecture plus our input Transpose and Softmax. The rewrites of
:mod:`~keras_cnnclassics.export.onnx_lean` are checked one by one on a small graph.

OpenCV's DNN module (``opencv-python-headless``) runs the same float32 files
within the export's own float32 limit of the Keras outputs, max |diff| <=
1e-4 x max(1, range); a float16 file within 1e-2 x range; an int8 QDQ file
with OpenCV 5's classic engine (OpenCV 4's only one), within 1e-2 of ONNX
Runtime on the same file; a dynamic-int8 file not at all (no
DynamicQuantizeLinear / ConvInteger layer).

Without torch, ONNX files come from tf2onnx on TensorFlow and go through the
same lean step. LiteRT float32 files hold no TRANSPOSE, CAST or DEQUANTIZE; a
float16 file keeps every weight in float16, each read by one DEQUANTIZE (the
format's own), and computes in float32 (no float16 activation).
"""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest

import keras
from keras_cnnclassics import cli, get_model
from keras_cnnclassics.export import export_model, load_runtime, writers
from keras_cnnclassics.export.onnx_lean import ENVIRONMENT_SWITCH, lean_enabled, lean_onnx
from keras_cnnclassics.export.tflite_graph import float16_weights
from keras_cnnclassics.export.tflite_graph import op_counts as tflite_op_counts
from keras_cnnclassics.export.runtimes import run_batches
from keras_cnnclassics.export.verify import check_in_runtime

from support.reference import require, torchvision_models

onnx = require("onnx")
cv2 = require("cv2")

MODELS = ("squeezenet1_1", "googlenet", "resnet18")
SIZE = 64
# Nodes of the lean float32 files at 64x64: those of torchvision's own export of the same
# architecture (83, 139, 49 with torch 2.13, opset 17, eval mode), plus our input Transpose and
# Softmax, less Flatten + GlobalAveragePool (one ReduceMean here), less SqueezeNet's Dropout.
NODE_CEILING = {"squeezenet1_1": 66, "googlenet": 140, "resnet18": 50}
# Nodes these lean float32 files never hold: casts, no-ops, constants and shape arithmetic,
# BatchNorm (folded into the Conv before it) and paddings (folded into the Conv or pool after them).
NEVER = ("Cast", "Identity", "Constant", "Shape", "ConstantOfShape", "Gather", "Slice", "Unsqueeze",
         "Reshape", "BatchNormalization", "Sub", "Mul", "Div", "Pad")


def random_batchnorm(model, seed=0):
    """Random gamma, beta and running statistics in every BatchNormalization layer."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.uniform(-0.5, 0.5, n),
                               rng.uniform(-0.5, 0.5, n), rng.uniform(0.5, 1.5, n)])
    return model


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).uniform(-1, 1, (4, SIZE, SIZE, 3)).astype("float32")


@pytest.fixture(scope="module")
def float32_export(tmp_path_factory, images):
    """``get(name, quantize) -> (path, keras outputs on images)``: each file exported once.

    float32 files from models with random BatchNorm statistics; the quantized ones from
    BatchNorm at its initial values (random statistics saturate the softmax of an
    untrained network, where a float16 rounding moves the output by 2 % of its range).
    """
    cache = {}

    def get(name, quantize="none"):
        if (name, quantize) not in cache:
            keras.utils.set_random_seed(0)
            model = get_model(name, input_shape=(SIZE, SIZE, 3), classes=10)
            if quantize == "none":
                random_batchnorm(model)
            path = tmp_path_factory.mktemp("lean") / f"{name}-{quantize}.onnx"
            options = {"calibration": "digits", "min_agreement": 0.85} if "int8" in quantize else {}
            export_model(model, "onnx", str(path), quantize=quantize, verbose=False, **options)
            cache[name, quantize] = str(path), np.asarray(model.predict(images, verbose=0))
        return cache[name, quantize]

    return get


def op_counts(path):
    return collections.Counter(node.op_type for node in onnx.load(path).graph.node)


# ------------------------------------------------------------------ node counts


@pytest.mark.parametrize("name", MODELS)
def test_float32_graph_is_lean(float32_export, name):
    path, _ = float32_export(name)
    graph = onnx.load(path).graph
    counts = op_counts(path)
    assert {op: counts[op] for op in NEVER if counts[op]} == {}
    assert sum(counts.values()) <= NODE_CEILING[name]
    transposes = [node for node in graph.node if node.op_type == "Transpose"]
    assert len(transposes) == 1 and list(transposes[0].input) == [graph.input[0].name]
    assert counts["Conv"] == {"squeezenet1_1": 26, "googlenet": 57, "resnet18": 20}[name]


@pytest.mark.parametrize("name", MODELS)
def test_no_more_nodes_than_torchvisions_own_export(float32_export, tmp_path, name):
    torch = require("torch")
    reference = getattr(torchvision_models(), name)(weights=None, num_classes=10).eval()
    theirs = tmp_path / f"{name}-torchvision.onnx"
    torch.onnx.export(reference, (torch.zeros(1, 3, SIZE, SIZE),), str(theirs), opset_version=17, dynamo=False)
    ours = op_counts(float32_export(name)[0])
    assert ours["Transpose"] == ours["Softmax"] == 1
    assert sum(ours.values()) - 2 <= sum(op_counts(str(theirs)).values())


@pytest.mark.heavy("export-lean-tf2onnx")
def test_tf2onnx_files_go_through_the_lean_step_too(monkeypatch, tmp_path, images):
    """Without torch, tf2onnx on TensorFlow writes the file (here or in a worker); it is made
    lean like the PyTorch exporter's: the same operators, plus one Squeeze after the pool."""
    monkeypatch.setattr(writers, "torch_installed", lambda: False)
    keras.utils.set_random_seed(0)
    model = random_batchnorm(get_model("resnet18", input_shape=(SIZE, SIZE, 3), classes=10))
    report = export_model(model, "onnx", str(tmp_path / "resnet18.onnx"), verbose=False)
    assert "(tf2onnx) on the TensorFlow backend" in report.writer
    assert report.writer.endswith(f", then {writers.LEAN_STEP}")
    counts = op_counts(report.output)
    assert {op: counts[op] for op in NEVER if counts[op]} == {}
    assert counts["Transpose"] == 1 and counts["Conv"] == 20
    assert sum(counts.values()) <= NODE_CEILING["resnet18"] + 1
    assert report.max_abs_diff <= 1e-4 * max(1.0, report.output_range)
    reference = np.asarray(model.predict(images, verbose=0))
    assert check_in_runtime(report.output, "opencv", images, reference)[2]


@pytest.mark.heavy("export-lean-written-by")
def test_written_by_names_the_lean_step_when_it_ran(monkeypatch, tmp_path):
    """The switch reaches a worker process started before it was set (on TensorFlow and JAX)."""
    model = get_model("lenet5")
    lean = export_model(model, "onnx", str(tmp_path / "lean.onnx"), verbose=False)
    monkeypatch.setenv(ENVIRONMENT_SWITCH, "0")
    written = export_model(model, "onnx", str(tmp_path / "written.onnx"), verbose=False)
    assert lean.writer == f"{written.writer}, then {writers.LEAN_STEP}"
    assert sum(op_counts(written.output).values()) > sum(op_counts(lean.output).values())


# ------------------------------------------------------------------ LiteRT files


@pytest.mark.heavy("export-lean-litert")
def test_litert_float_files_hold_no_redundant_operators_and_float16_weights(tmp_path):
    keras.utils.set_random_seed(0)  # BatchNorm at its initial values: see float32_export
    model = get_model("resnet18", input_shape=(SIZE, SIZE, 3), classes=10)
    paths = {q: tmp_path / f"resnet18-{q}.tflite" for q in ("none", "float16")}
    for quantize, path in paths.items():
        export_model(model, "tflite", str(path), quantize=quantize, verbose=False)
    single, half = tflite_op_counts(str(paths["none"])), tflite_op_counts(str(paths["float16"]))
    assert {op: single[op] for op in ("TRANSPOSE", "CAST", "DEQUANTIZE", "QUANTIZE") if single[op]} == {}
    assert single["CONV_2D"] == 20
    weights = float16_weights(str(paths["float16"]))
    assert weights["float16_constants"] >= 21  # every Conv and the Dense kernel
    assert weights["float32_constants"] == weights["float16_activations"] == 0
    assert half["DEQUANTIZE"] == weights["dequantize_of_float16_constants"] == weights["float16_constants"]
    assert half - collections.Counter(DEQUANTIZE=half["DEQUANTIZE"]) == single


# ------------------------------------------------------- OpenCV as a second runtime


@pytest.mark.parametrize("name", MODELS)
def test_opencv_runs_float32_exports_like_keras(float32_export, images, name):
    path, reference = float32_export(name)
    max_diff, agreement, passed = check_in_runtime(path, "opencv", images, reference)
    assert passed and max_diff <= 1e-4 * max(1.0, float(np.ptp(reference)))
    assert agreement == 1.0


def test_opencv_runs_float16_exports(float32_export, images):
    path, reference = float32_export("resnet18", "float16")
    max_diff, _, passed = check_in_runtime(path, "opencv", images, reference, quantize="float16")
    assert passed and max_diff <= 1e-2 * float(np.ptp(reference))


@pytest.mark.heavy("export-lean-opencv-int8")
def test_opencv_runs_int8_qdq_exports_with_its_classic_engine(float32_export, images):
    path, _ = float32_export("resnet18", "int8")
    in_onnxruntime = run_batches(load_runtime(path), images)
    in_opencv = run_batches(load_runtime(path, runtime="opencv-classic"), images)
    assert np.max(np.abs(in_opencv - in_onnxruntime)) <= 1e-2
    assert np.array_equal(in_opencv.argmax(-1), in_onnxruntime.argmax(-1))


@pytest.mark.heavy("export-lean-opencv-dynamic-int8")
def test_opencv_does_not_load_dynamic_int8_exports(float32_export):
    path, _ = float32_export("resnet18", "dynamic-int8")
    for runtime in ("opencv", "opencv-classic"):
        with pytest.raises(cv2.error, match="DynamicQuantizeLinear|ConvInteger"):
            load_runtime(path, runtime=runtime)


# ------------------------------------------------------------- int8 default


def test_int8_onnx_needs_no_io_option_on_the_command_line(tmp_path, capsys):
    target = tmp_path / "lenet_int8.onnx"
    argv = ["export", "lenet5", "--format", "onnx", "--quantize", "int8", "--calibration", "digits",
            "--seed", "0", "--min-agreement", "0.5", "--output", str(target), "--json"]
    assert cli.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["precision"] == "int8 (QDQ)" and report["input_dtype"] == "float32"
    assert op_counts(str(target))["QuantizeLinear"] > 0


# ------------------------------------------------------ the rewrites, one by one


def _stem_and_pool_graph(keepdims):
    """NHWC input -> Pad -> Transpose -> Conv -> BatchNorm as Keras writes it (Sub, Mul, Add)
    -> Transpose -> Relu -> ReduceMean."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {
        "pads": np.array([0, 1, 1, 0, 0, 1, 1, 0], np.int64),
        "kernel": rng.normal(size=(4, 3, 3, 3)).astype("float32"),
        "mean": rng.normal(size=(1, 4, 1, 1)).astype("float32"),
        "scale": rng.uniform(0.5, 1.5, (1, 4, 1, 1)).astype("float32"),
        "beta": rng.normal(size=(1, 4, 1, 1)).astype("float32"),
        "axes": np.array([1, 2], np.int64),
    }
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["padded"], mode="constant"),
        helper.make_node("Transpose", ["padded"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "kernel"], ["conv"]),
        helper.make_node("Sub", ["conv", "mean"], ["centred"]),
        helper.make_node("Mul", ["centred", "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "beta"], ["shifted"]),
        helper.make_node("Transpose", ["shifted"], ["nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Relu", ["nhwc"], ["relu"]),
        helper.make_node("ReduceMean", ["relu", "axes"], ["y"], keepdims=keepdims),
    ]
    out_shape = [2, 1, 1, 4] if keepdims else [2, 4]
    graph = helper.make_graph(
        nodes, "stem", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8, 8, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize("keepdims", [0, 1])
def test_lean_rewrites_are_exact(tmp_path, keepdims):
    """The stem Pad folds into the Conv, BatchNorm too, and one Transpose stays (at the input);
    with keepdims the pooled (N, C, 1, 1) map is transposed back to NHWC."""
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype("float32")
    before, after, ops = _lean_outputs(tmp_path, _stem_and_pool_graph(keepdims), x)
    assert ops == ["Transpose", "Conv", "Relu", "ReduceMean"] + (["Transpose"] if keepdims else [])
    np.testing.assert_allclose(after, before, atol=1e-5)


def _pool_graph(pads, mode, pool, shape):
    """NCHW input -> Relu -> Pad -> ``pool`` (a MaxPool or AveragePool node) -> output."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Relu", ["x"], ["relu"]),
             helper.make_node("Pad", ["relu", "pads"], ["padded"], mode=mode), pool]
    graph = helper.make_graph(
        nodes, "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array(pads, np.int64), "pads")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _lean_outputs(tmp_path, model, x):
    """Outputs before and after lean_onnx, and the lean graph's operators."""
    path = str(tmp_path / "graph.onnx")
    onnx.save(model, path)
    before = load_runtime(path)(x)
    lean_onnx(path)
    return before, load_runtime(path)(x), [node.op_type for node in onnx.load(path).graph.node]


@pytest.mark.parametrize("size", [5, 6, 7, 8])
@pytest.mark.parametrize("kernel, stride, extra", [(2, 2, 1), (3, 2, 1), (3, 2, 2), (3, 1, 1)])
def test_edge_padding_becomes_ceil_mode_only_where_exact(tmp_path, size, kernel, stride, extra):
    from onnx import helper

    pool = helper.make_node("MaxPool", ["padded"], ["y"], kernel_shape=[kernel] * 2, strides=[stride] * 2)
    model = _pool_graph([0, 0, 0, 0, 0, 0, extra, extra], "edge", pool, [1, 2, size, size])
    x = np.random.default_rng(size).normal(size=(1, 2, size, size)).astype("float32")
    before, after, ops = _lean_outputs(tmp_path, model, x)
    np.testing.assert_array_equal(after, before)
    ceil_size = -(-(size - kernel) // stride) + 1
    exact = ceil_size == (size + extra - kernel) // stride + 1 and (ceil_size - 1) * stride <= size - 1
    assert ("Pad" not in ops) == exact


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_zero_padding_moves_into_the_pool(tmp_path, op):
    from onnx import helper

    pool = helper.make_node(op, ["padded"], ["y"], kernel_shape=[3, 3], strides=[2, 2])
    model = _pool_graph([0, 0, 1, 1, 0, 0, 1, 1], "constant", pool, [1, 2, 8, 8])
    x = np.random.default_rng(0).normal(size=(1, 2, 8, 8)).astype("float32")
    before, after, ops = _lean_outputs(tmp_path, model, x)
    np.testing.assert_allclose(after, before, rtol=1e-6)
    assert ops == ["Relu", op]


def test_unfoldable_batchnorm_becomes_one_node(tmp_path):
    """Keras' (x - mean) * scale + beta after a ReLU (DenseNet's pre-activation): one BatchNormalization."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    constants = {k: rng.uniform(0.5, 1.5, (1, 3, 1, 1)).astype("float32") for k in ("mean", "scale", "beta")}
    nodes = [helper.make_node("Relu", ["x"], ["relu"]), helper.make_node("Sub", ["relu", "mean"], ["centred"]),
             helper.make_node("Mul", ["centred", "scale"], ["scaled"]),
             helper.make_node("Add", ["scaled", "beta"], ["y"])]
    graph = helper.make_graph(
        nodes, "bn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4, 4])],
        [numpy_helper.from_array(v, k) for k, v in constants.items()],
    )
    x = rng.normal(size=(2, 3, 4, 4)).astype("float32")
    before, after, ops = _lean_outputs(tmp_path, helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), x)
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)
    assert ops == ["Relu", "BatchNormalization"]


def test_lean_switch(monkeypatch):
    monkeypatch.delenv(ENVIRONMENT_SWITCH, raising=False)
    assert lean_enabled()
    monkeypatch.setenv(ENVIRONMENT_SWITCH, "0")
    assert not lean_enabled()
    monkeypatch.setenv(ENVIRONMENT_SWITCH, "yes")
    with pytest.raises(ValueError, match=f"{ENVIRONMENT_SWITCH}='yes': set it to 1"):
        lean_enabled()
