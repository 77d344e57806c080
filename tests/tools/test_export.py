"""ONNX and TFLite/LiteRT export (keras_cnnclassics.export), verified in their runtimes.

Each export is verified by ``export_model`` itself (float32 max |diff| <= 1e-4,
float16 <= 1e-2 x output range, int8 top-1 agreement >= 95 %); the tests assert
those numbers again from the returned report, and that a failed export leaves
no file. Conversions cost 10-60 s each on 2 cores, so the per-model cases are
sampled (one backend each, ``heavy`` markers) and use small inputs.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import keras
from keras_cnnclassics import cli
from keras_cnnclassics import get_model
from keras_cnnclassics.commands.export import tool_argv, tool_main
from keras_cnnclassics.export import ExportError, check_builtin_ops, export_model, load_runtime, measure_file
from keras_cnnclassics.export import pipeline, verify
from keras_cnnclassics.export.tflite_graph import float32_activations
from keras_cnnclassics.images import load_digits_data
from keras_cnnclassics.registry import all_specs

from support.model_cases import damp_residual_branches, heavy, small_input_shape
from support.reference import require

NAMED = ("squeezenet1_1", "googlenet", "resnet18")
PRECISIONS = ("none", "float16", "int8")
NAMED_SIZE = 64


def _export(model, fmt, path, **kwargs):
    return export_model(model, fmt, str(path), verbose=False, **kwargs)


def _assert_within_limits(report, quantize, min_agreement=0.95):
    """The limits of the issue, checked again on the returned report."""
    assert report.passed
    if quantize == "none":
        assert report.max_abs_diff <= 1e-4
    elif quantize == "float16":
        assert report.max_abs_diff <= 1e-2 * report.output_range
    else:
        assert report.top1_agreement >= min_agreement
    assert report.size_bytes == os.path.getsize(report.output)
    assert report.latency_ms > 0


# ------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def digits_lenet():
    """LeNet-5 trained on the real digits (32x32 grey) for a few epochs: ~97 % held-out."""
    keras.utils.set_random_seed(0)
    data = load_digits_data(32, 1)
    model = get_model("lenet5")  # 10 classes, 32x32x1, tanh, paper's C3 table
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data.x_train / 255.0, data.y_train, epochs=6, batch_size=32, verbose=0)
    accuracy = model.evaluate(data.x_val / 255.0, data.y_val, verbose=0)[1]
    assert accuracy >= 0.9
    return model


@pytest.fixture(scope="module")
def digits_resnet20():
    """ResNet-20 (CIFAR layout: BN, residual stages, global pooling) trained 3 epochs on digits.

    Held-out accuracy after 2 epochs depended on the seed (0.60-0.93 for seeds 0-3 on
    TensorFlow); after 3 it was 0.94-0.96 for all four."""
    from keras_cnnclassics.models.resnet_cifar import preprocess_input

    keras.utils.set_random_seed(0)
    data = load_digits_data(32, 3)
    model = get_model("resnet20")
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(preprocess_input(data.x_train), data.y_train, epochs=3, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="module")
def named_model():
    """The named models at 64x64 with 10 classes, randomly initialised (built once each)."""
    cache = {}

    def get(name):
        if name not in cache:
            keras.utils.set_random_seed(0)
            cache[name] = get_model(name, input_shape=(NAMED_SIZE, NAMED_SIZE, 3), classes=10)
        return cache[name]

    return get


# ------------------------------------------------- SqueezeNet, GoogLeNet, ResNet-18


@pytest.mark.parametrize(
    "name, fmt, quantize",
    [
        pytest.param(n, f, q, id=f"{n}-{f}-{q}", marks=pytest.mark.heavy(f"export-{n}-{f}-{q}"))
        for n in NAMED for f in ("onnx", "tflite") for q in PRECISIONS
    ],
)
def test_named_models_export_verified(named_model, tmp_path, name, fmt, quantize):
    """float32/float16 limits as in the issue; int8 exported, calibrated and run on digits.

    These networks are untrained (no weights can be downloaded; training them
    takes minutes), and an untrained network's int8 agreement is no measure of
    the quantization: its arg-max barely depends on the image, so near-ties decide
    it (88.0-100 % over keras.utils.set_random_seed 0-2, the three models and both
    formats on TensorFlow, with the initialiser of 65c8aaf; GoogLeNet at seed 0 gives
    89.5 % in ONNX and 88.0 % in LiteRT), or, once its BatchNorm statistics are set
    from real images, its logits tie (78-93 % measured earlier). The int8 exports
    are held to 85 % as a sanity check, far above the 10 % of a broken quantization
    (chance for 10 classes); the 95 % limit is asserted on digits-trained LeNet-5
    and ResNet-20 below.
    """
    model = named_model(name)
    kwargs = {}
    if quantize == "int8":
        kwargs = {"calibration": "digits", "int8_io": "uint8" if fmt == "tflite" else "float",
                  "min_agreement": 0.85}
    report = _export(model, fmt, tmp_path / f"{name}.{fmt}", quantize=quantize, **kwargs)
    _assert_within_limits(report, quantize, min_agreement=kwargs.get("min_agreement", 0.95))
    float_size = 4 * model.count_params()
    expected = {"none": (0.95, 1.1), "float16": (0.45, 0.6), "int8": (0.2, 0.4)}[quantize]
    assert expected[0] * float_size <= report.size_bytes <= expected[1] * float_size
    if quantize == "int8":
        assert report.verified_on == "held-out digits" and report.samples == 200
    if fmt == "tflite":
        assert "CONV_2D" in check_builtin_ops(report.output)


# ------------------------------------------------------ int8 on a trained model


@pytest.mark.parametrize("fmt, io", [("tflite", "uint8"), ("tflite", "float"), ("onnx", None)])
def test_int8_on_digits_trained_lenet_keeps_its_answers(digits_lenet, tmp_path, fmt, io):
    """ONNX int8 needs no int8_io: float input/output is its default (and its only choice)."""
    report = _export(digits_lenet, fmt, tmp_path / f"lenet.{fmt}", quantize="int8",
                     calibration="digits", int8_io=io)
    assert report.top1_agreement >= 0.95
    assert report.accuracy["keras"] >= 0.9
    assert report.accuracy["file"] >= report.accuracy["keras"] - 0.03
    assert report.input_dtype == ("uint8" if io == "uint8" else "float32")
    assert report.precision == {"uint8": "int8 (uint8 io)", "float": "int8 (float io)", None: "int8 (QDQ)"}[io]
    if io == "uint8":
        scale, zero = report.input_quantization
        assert scale == pytest.approx(1 / 255, rel=0.05) and zero == 0  # [0, 1] input, uint8
        assert float32_activations(report.output) == 0  # every layer runs in int8, none in float


@pytest.mark.heavy("export-digits-resnet20")
def test_int8_on_digits_trained_resnet20_keeps_its_answers(digits_resnet20, tmp_path):
    for fmt in ("tflite", "onnx"):
        report = _export(digits_resnet20, fmt, tmp_path / f"resnet20.{fmt}", quantize="int8",
                         calibration="digits", int8_io="float")
        assert report.top1_agreement >= 0.95
        assert report.accuracy["keras"] >= 0.8
        assert report.accuracy["file"] >= report.accuracy["keras"] - 0.03


def test_dynamic_int8_on_digits_trained_lenet(digits_lenet, tmp_path):
    report = _export(digits_lenet, "tflite", tmp_path / "lenet.tflite", quantize="dynamic-int8",
                     calibration="digits")
    assert report.top1_agreement >= 0.95 and report.verified_on == "held-out digits"


def test_folder_calibration_reads_images_through_preprocess_input(digits_lenet, tmp_path):
    require("PIL")
    from PIL import Image

    folder = tmp_path / "calibration"
    (folder / "sub").mkdir(parents=True)
    data = load_digits_data(32, 1)
    for i, image in enumerate(data.x_val[:12]):
        Image.fromarray(image[..., 0]).save(folder / ("sub" if i % 2 else "") / f"{i}.png")
    report = _export(digits_lenet, "tflite", tmp_path / "lenet.tflite", quantize="int8",
                     calibration=str(folder))
    assert report.samples == 12 and report.verified_on == "calibration-folder"
    assert report.top1_agreement >= 0.95


# --------------------------------------------------------- layout and batch size


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_dynamic_batch_runs_any_batch_like_keras(tmp_path, fmt):
    model = get_model("lenet5_cs231n")
    report = _export(model, fmt, tmp_path / f"m.{fmt}", batch_size="dynamic")
    assert report.batch == "dynamic"
    x = np.random.default_rng(1).uniform(0, 1, (3, 28, 28, 1)).astype("float32")
    runtime = load_runtime(report.output)
    assert runtime.batch is None
    np.testing.assert_allclose(runtime(x), np.asarray(model.predict(x, verbose=0)), atol=1e-5)


def test_fixed_batch_and_input_shape_of_a_registry_name(tmp_path):
    report = export_model("squeezenet1_1", "tflite", str(tmp_path / "s.tflite"), input_shape=(48, 48, 3),
                          batch_size=2, classes=5, verbose=False)
    runtime = load_runtime(report.output)
    assert runtime.batch == 2 and tuple(runtime.input["shape"]) == (2, 48, 48, 3)
    assert runtime(np.zeros((2, 48, 48, 3), "float32")).shape == (2, 5)


# ------------------------------------------------------------ float32 builds only


def test_mixed_precision_model_is_exported_from_a_float32_rebuild(tmp_path):
    keras.config.set_dtype_policy("mixed_float16")
    model = get_model("lenet5_cs231n")
    keras.config.set_dtype_policy("float32")
    assert model.layers[1].compute_dtype == "float16"
    report = _export(model, "tflite", tmp_path / "m.tflite")
    assert any("rebuilt in float32" in note for note in report.notes)
    assert report.max_abs_diff <= 1e-4
    assert set(check_builtin_ops(report.output)) <= {
        "CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX", "CONCATENATION",
        "STRIDED_SLICE", "PAD", "PADV2",
    }


def _tflite_with_operator(custom_code):
    """A minimal .tflite flatbuffer whose only operator code is ``custom_code``."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = custom_code
    model = schema.ModelT()
    model.version = 3
    model.operatorCodes = [code]
    builder = flatbuffers.Builder(256)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_flex_ops_are_refused(tmp_path):
    path = tmp_path / "flex.tflite"
    path.write_bytes(_tflite_with_operator("FlexConv2D"))
    with pytest.raises(ExportError, match="FlexConv2D"):
        check_builtin_ops(str(path))


# ------------------------------------------------------------------ failures


def test_failed_verification_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(verify, "FLOAT32_MAX_DIFF", -1.0)
    target = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match="does not reproduce") as info:
        _export(get_model("lenet5"), "onnx", target)
    assert info.value.report is not None and not info.value.report.passed
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"format": "coreml"}, ValueError, "unknown format 'coreml'"),
        ({"quantize": "int4"}, ValueError, "unknown quantization 'int4'"),
        ({"format": "onnx", "quantize": "int8", "calibration": "digits", "int8_io": "uint8"}, ValueError,
         "uint8 input/output is not supported for onnx"),
        ({"quantize": "int8"}, ValueError, "needs representative images"),
        ({"quantize": "float16", "calibration": "digits"}, ValueError, "only used by the int8"),
        ({"quantize": "int8", "calibration": "no-such-folder"}, ValueError, "is not a folder"),
        ({"quantize": "int8", "calibration": "EMPTY"}, ValueError, "holds no images"),
        ({"output": "missing/m.tflite"}, FileNotFoundError, "does not exist"),
        ({"output": "m.onnx"}, ValueError, "must end in .tflite"),
        ({"output": "EXISTING"}, FileExistsError, "already exists"),
        ({"batch_size": 0}, ValueError, "positive integer or 'dynamic'"),
        ({"int8_io": "int16"}, ValueError, "int8_io must be"),
        ({"min_agreement": 1.5}, ValueError, "min_agreement must be a fraction"),
        ({"seed": -1}, ValueError, "seed must be a non-negative integer"),
    ],
)
def test_bad_options_fail_before_building(tmp_path, monkeypatch, kwargs, error, message):
    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "EXISTING.tflite").write_bytes(b"keep me")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pipeline, "load_source", lambda *a: pytest.fail("built a model"))
    options = {"format": "tflite", "output": "out.tflite", **kwargs}
    options["calibration"] = {"EMPTY": str(tmp_path / "EMPTY")}.get(options.get("calibration"), options.get("calibration"))
    if options["output"] == "EXISTING":
        options["output"] = "EXISTING.tflite"
    fmt, output = options.pop("format"), options.pop("output")
    with pytest.raises(error, match=message):
        export_model("lenet5", fmt, output, **options)
    assert sorted(os.listdir(tmp_path)) == ["EMPTY", "EXISTING.tflite"]
    assert (tmp_path / "EXISTING.tflite").read_bytes() == b"keep me"


def test_unreadable_calibration_image_is_named(tmp_path, digits_lenet):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="unreadable image file.*broken.png"):
        _export(digits_lenet, "tflite", tmp_path / "m.tflite", quantize="int8", calibration=str(folder))
    assert sorted(os.listdir(tmp_path)) == ["images"]


# ---------------------------------------------------------------- command line


def test_cli_exports_then_refuses_to_overwrite(tmp_path, capsys):
    target = tmp_path / "lenet.tflite"
    argv = ["export", "lenet5", "--format", "tflite", "--output", str(target)]
    assert cli.main(argv) == 0
    table = capsys.readouterr().out
    assert "tflite  float32" in table and "ok" in table
    before = target.read_bytes()
    assert cli.main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    assert target.read_bytes() == before
    assert cli.main(argv + ["--quantize", "int8"]) == 2
    assert "needs representative images" in capsys.readouterr().err
    assert cli.main(["export", "lenet5", "--format", "onnx", "--output", str(target), "--input-shape", "3,3"]) == 2
    assert "--input-shape must be H,W,C" in capsys.readouterr().err


def _file_outputs(path, x):
    return load_runtime(str(path))(x)


def test_cli_seed_fixes_the_random_weights(tmp_path):
    """--seed N: the same N gives the same file's outputs, another N other outputs."""
    paths = {name: tmp_path / f"{name}.tflite" for name in ("a", "b", "c")}
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        argv = ["export", "lenet5", "--format", "tflite", "--output", str(paths[name]), "--seed", seed, "--json"]
        assert cli.main(argv) == 0
    x = np.random.default_rng(0).uniform(0, 1, (1, 32, 32, 1)).astype("float32")
    same, other = _file_outputs(paths["b"], x), _file_outputs(paths["c"], x)
    np.testing.assert_array_equal(_file_outputs(paths["a"], x), same)
    assert np.max(np.abs(same - other)) > 1e-3


def test_seed_is_refused_for_a_model_that_has_its_weights(tmp_path):
    with pytest.raises(ValueError, match="seed apply to registry names"):
        _export(get_model("lenet5"), "onnx", tmp_path / "m.onnx", seed=1)
    assert os.listdir(tmp_path) == []


def test_export_prints_the_table_only_unless_verbose(tmp_path, capfd):
    """verbose=1: the table and nothing else (no converter log lines, warnings or why a
    worker process wrote the file); verbose=2 adds that reason."""
    model = get_model("lenet5")
    report = export_model(model, "onnx", str(tmp_path / "quiet.onnx"))
    out, err = capfd.readouterr()
    assert out == report.table(details=False) + "\n" and err == ""
    assert (report.writer_reason is None) == (keras.backend.backend() == "torch")
    if report.writer_reason:
        assert report.writer_reason not in out
        loud = export_model(model, "onnx", str(tmp_path / "loud.onnx"), verbose=2)
        assert f"written by: {loud.writer}: {loud.writer_reason}" in capfd.readouterr().out


def test_tools_put_global_flags_first_and_fix_the_format():
    assert tool_argv(["vgg11", "--backend", "jax", "--output", "v.onnx", "--debug"], "onnx") == [
        "--backend", "jax", "--debug", "export", "vgg11", "--output", "v.onnx", "--format", "onnx",
    ]


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_a_tool_help_does_not_ask_for_the_format_it_fixes(fmt, capsys):
    assert tool_main(["--help"], fmt, f"tools/export_{fmt}.py") == 0
    usage = capsys.readouterr().out
    assert usage.startswith(f"usage: tools/export_{fmt}.py") and "--output OUTPUT" in usage
    assert "--format FORMAT" not in usage


# ------------------------------------------------------------------- benchmark


def test_measure_file_reports_size_and_latency_per_thread_count(tmp_path):
    report = _export(get_model("lenet5"), "onnx", tmp_path / "m.onnx")
    measured = measure_file(report.output, budget_s=0.2)
    assert measured["size_bytes"] == os.path.getsize(report.output)
    assert set(measured["latency_ms"]) == {"1", "all"}
    assert all(ms > 0 for ms in measured["latency_ms"].values())


# ---------------------------------------------------------- every registry model


@pytest.mark.parametrize(
    "spec",
    [pytest.param(s, id=s.name, marks=heavy(f"export-{s.name}", s.name)) for s in all_specs()],
)
def test_every_registry_model_exports_to_onnx_float32(spec, tmp_path):
    shape = small_input_shape(spec)
    # Logits: the softmax of an untrained deep network is saturated, and a rounding-level
    # change of its large logits flips the probabilities.
    model = get_model(spec.name, input_shape=shape, classes=7, classifier_activation=None)
    if spec.family.startswith("resnet"):
        damp_residual_branches(model)
    report = export_model(model, "onnx", str(tmp_path / f"{spec.name}.onnx"), verbose=False)
    assert report.max_abs_diff <= 1e-4 * max(1.0, report.output_range)
    assert report.input_shape == (1, *shape)


def test_a_model_with_non_finite_outputs_is_refused_before_anything_is_written(tmp_path):
    model = get_model("lenet5")
    kernel = model.get_layer("output").kernel
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))
    target = tmp_path / "nan.onnx"
    with pytest.raises(ExportError, match="not finite"):
        export_model(model, "onnx", str(target), verbose=False)
    assert not target.exists() and os.listdir(tmp_path) == []
