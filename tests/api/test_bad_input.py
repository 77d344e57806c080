"""Bad input at every public entry point (issue 11): a clear message, never a wrong answer.

Each case checks that the error names the problem, that ``cnnclassics`` exits non-zero with one
line on stderr and no traceback, and that no output file was created or changed (a snapshot of
the folder's bytes and modification times before and after). Constructor arguments are also
checked property-based (hypothesis). Damaged and hostile files are in ``test_bad_files.py``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
import tempfile

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keras_cnnclassics as kc
from keras_cnnclassics import cli
from keras_cnnclassics.training import TrainConfig, predict, train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BACKEND = keras.backend.backend()
PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
# Validation happens before any layer is built, so even the big models cost nothing here.
CONSTRUCTORS = (kc.LeNet5, kc.ResNet20, kc.SqueezeNet1_1, kc.VGG16, kc.DenseNet121, kc.GoogLeNet)
QUICK = dict(epochs=1, batch_size=8, limit=16, warmup_epochs=0)


# ------------------------------------------------------------------ helpers
def snapshot(folder):
    """``{relative path: (sha256, mtime_ns)}`` of every file under ``folder`` (hidden ones too).

    A run folder's ``.lock`` is left out: every training that opens the folder takes the lock
    and writes its PID there (that is how a second one is refused); it holds no results.
    """
    state = {}
    for root, _, files in os.walk(folder):
        for name in files:
            if name == ".lock":
                continue
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
            state[os.path.relpath(path, folder)] = (digest, os.stat(path).st_mtime_ns)
    return state


class Unchanged:
    """``with Unchanged(folder):`` asserts that the block created, changed or removed no file."""

    def __init__(self, folder):
        self.folder = str(folder)

    def __enter__(self):
        self.before = snapshot(self.folder)
        return self

    def __exit__(self, *exc):
        if exc[0] is None or issubclass(exc[0], Exception):
            assert snapshot(self.folder) == self.before, f"files under {self.folder} changed"
        return False


def cli_error(capsys, argv, *fragments, code=2):
    """Run ``cnnclassics argv`` in-process: exit code ``code``, one stderr line naming the problem."""
    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as exit_info:  # argparse usage errors
        rc = exit_info.code
    err = capsys.readouterr().err.strip()
    assert rc == code, (rc, err)
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def raises(error, *fragments):
    """``pytest.raises`` whose message must contain every fragment (plain substrings)."""

    class Check:
        def __enter__(self):
            self.ctx = pytest.raises(error)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self.ctx.__exit__(*exc)
            message = str(self.info.value)
            for fragment in fragments:
                assert fragment in message, (fragment, message)
            return handled

    return Check()


def save_png(path, mode="L", size=(36, 36), seed=0):
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path)
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Weight files of lenet5 (10 and 5 classes) and resnet20/resnet32, and a short lenet5 run."""
    root = tmp_path_factory.mktemp("files")
    paths = {}
    for key, name, kwargs in (("lenet5", "lenet5", {}), ("lenet5_5", "lenet5", {"classes": 5}),
                              ("resnet20", "resnet20", {}), ("resnet32", "resnet32", {})):
        paths[key] = str(root / f"{key}.weights.h5")
        kc.get_model(name, **kwargs).save_weights(paths[key])
    paths["run"] = train(TrainConfig("lenet5", output=str(root / "run"), **QUICK), verbose=0).run_dir
    return paths


# ------------------------------------------------------------ constructor arguments
not_bool = st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=5), st.none())
bad_classes = st.one_of(
    st.integers(max_value=0), st.floats(allow_nan=True), st.text(max_size=5), st.booleans(),
    st.lists(st.integers(1, 9), max_size=2),
)
bad_size = st.one_of(st.integers(max_value=0), st.floats(allow_nan=True), st.text(max_size=3))


@PROPERTY
@given(constructor=st.sampled_from(CONSTRUCTORS), classes=bad_classes)
def test_classes_must_be_a_positive_integer(constructor, classes):
    with raises(ValueError, "classes must be a positive integer"):
        constructor(classes=classes)


@PROPERTY
@given(constructor=st.sampled_from(CONSTRUCTORS), include_top=not_bool)
def test_include_top_must_be_a_bool(constructor, include_top):
    with raises(ValueError, "include_top must be True or False"):
        constructor(include_top=include_top)


@PROPERTY
@given(constructor=st.sampled_from(CONSTRUCTORS),
       pooling=st.one_of(st.text(max_size=6).filter(lambda s: s not in ("avg", "max")), st.integers()))
def test_pooling_must_be_avg_max_or_none(constructor, pooling):
    with raises(ValueError, "pooling must be None, 'avg' or 'max'"):
        constructor(include_top=False, pooling=pooling)


@PROPERTY
@given(constructor=st.sampled_from(CONSTRUCTORS[1:]), size=bad_size, axis=st.sampled_from((0, 1)))
def test_input_height_and_width_must_be_positive_integers(constructor, size, axis):
    shape = [64, 64, 3]
    shape[axis] = size
    with raises(ValueError, "input height/width must be positive integers"):
        constructor(include_top=False, input_shape=tuple(shape))


@PROPERTY
@given(constructor=st.sampled_from(CONSTRUCTORS), channels=st.one_of(bad_size, st.none()))
def test_input_channels_must_be_a_positive_integer(constructor, channels):
    with raises(ValueError, "channel axis of input_shape"):
        constructor(include_top=False, input_shape=(64, 64, channels))


@PROPERTY
@given(constructor=st.sampled_from(CONSTRUCTORS),
       shape=st.one_of(st.lists(st.integers(1, 64), max_size=5).filter(lambda s: len(s) != 3),
                       st.text(max_size=8), st.integers()))
def test_input_shape_must_have_three_entries(constructor, shape):
    with raises(ValueError, "input_shape must be a tuple of 3 integers"):
        constructor(input_shape=shape)


@PROPERTY
@given(constructor=st.sampled_from(CONSTRUCTORS), size=st.integers(1, 14))
def test_input_below_the_minimum_size_is_refused(constructor, size):
    spec = constructor.spec
    if size >= spec.min_size:
        return
    with raises(ValueError, "too small", f">= {spec.min_size}"):
        constructor(include_top=False, input_shape=(size, size, spec.input_shape[-1]))


@PROPERTY
@given(constructor=st.sampled_from(CONSTRUCTORS),
       activation=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10))
def test_unknown_classifier_activation_is_named(constructor, activation):
    try:
        keras.activations.get(activation)
        return  # a real activation name
    except ValueError:
        pass
    with raises(ValueError, f"unknown classifier_activation {activation!r}"):
        constructor(classifier_activation=activation)


@PROPERTY
@given(constructor=st.sampled_from(CONSTRUCTORS),
       weights=st.one_of(st.text(max_size=12).filter(lambda s: not s.endswith((".h5", ".keras"))
                                                      and s.lower() != "imagenet"),
                         st.integers(), st.binary(max_size=4)))
def test_weights_must_be_a_local_keras_weights_file(constructor, weights):
    with raises(ValueError, "weights"):
        constructor(weights=weights)


@PROPERTY
@given(constructor=st.sampled_from(CONSTRUCTORS),
       name=st.one_of(st.integers(), st.just(""), st.text(max_size=4).map(lambda s: f"{s}/x")))
def test_model_name_must_be_a_plain_string(constructor, name):
    with raises(ValueError, "name must be None or a non-empty string"):
        constructor(name=name)


@settings(max_examples=5, deadline=None)
@given(classes=st.integers(1, 50), kind=st.sampled_from((int, np.int32, np.int64)))
def test_numpy_integer_classes_build_that_head(classes, kind):
    """numpy integers pass the check and must build (Keras' Dense refused np.int64 before)."""
    model = kc.get_model("lenet5", classes=kind(classes), name="lenet5_np")
    assert model.output_shape == (None, classes) and model.name == "lenet5_np"


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("resnet20", {"depth": 21}, "depth must be 6n+2"),
        ("resnet20", {"depth": "20"}, "depth must be 6n+2"),
        ("resnet20", {"block": "triple"}, "block must be 'basic' or 'bottleneck'"),
        ("resnet20", {"shortcut": "D"}, "shortcut must be 'A'"),
        ("resnet20", {"groups": 3}, "groups=3 must divide the channels"),
        ("resnet20", {"dropout": 1.5}, "dropout must be in [0, 1)"),
        ("resnet20", {"drop_path_rate": float("nan")}, "drop_path_rate must be in [0, 1)"),
        ("resnet20", {"se_reduction": 0}, "se_reduction must be None or a positive integer"),
        ("resnet20", {"widths": (16, -32, 64)}, "widths must be one positive integer per stage"),
        ("resnet20", {"foo": 1}, "unknown option(s) foo"),
        ("resnet18", {"depth": 19}, "depth must be one of"),
        ("resnet18", {"stride_in_1x1": "yes"}, "stride_in_1x1 must be True or False"),
        ("resnet18", {"width_per_group": 0}, "width_per_group must be a positive integer"),
        ("vgg11", {"depth": 12}, "depth must be one of [11, 13, 16, 19]"),
        ("vgg11", {"batch_norm": "no"}, "batch_norm must be True or False"),
        ("squeezenet1_1", {"version": "2.0"}, "version must be one of"),
        ("squeezenet1_1", {"dropout": 2.0}, "dropout must be a number in [0, 1)"),
        ("lenet5", {"activation": "tanhh"}, "unknown activation 'tanhh'"),
        ("lenet5", {"connection_table": "full"}, "connection_table must be True or False"),
        ("densenet40_k12_cifar", {"depth": 41}, "depth must be 3n + 4"),
        ("densenet40_k12_cifar", {"bottleneck": "yes"}, "bottleneck must be True or False"),
        ("densenet40_k12_cifar", {"compression": 0.0}, "compression (theta) must be in (0, 1]"),
        ("densenet121", {"block_config": ()}, "block_config must be a non-empty sequence"),
        ("fractalnet20", {"columns": 0}, "columns (C) must be an integer >= 1"),
        ("fractalnet20", {"blocks": 9, "filters": (8,) * 9}, "height and width must be >= 512"),
        ("googlenet", {"aux_logits": "no"}, "aux_logits must be True or False"),
        ("googlenet", {"branch3_kernel_size": 4}, "branch3_kernel_size must be 3"),
        ("alexnet_original", {"towers": 3}, "towers must be 1 or 2"),
        ("zfnet", {"conv345": (1, 2)}, "conv345 must be three positive integers"),
        ("nin", {"dropout": -1}, "dropout must be in [0, 1)"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_bad_family_options_are_refused_before_building(name, options, message):
    with raises(ValueError, message):
        kc.get_model(name, include_top=False, **options)


def test_unknown_model_names_suggest_the_closest(capsys):
    with raises(ValueError, "Unknown model name 'ResNet-51'", "Closest names:", "resnet50"):
        kc.get_model("ResNet-51")
    with raises(ValueError, "Unknown model name ''"):
        kc.get_model("")
    with raises(TypeError, "Model name must be a string"):
        kc.get_model(None)
    for argv in (["info", "resnet51"], ["profile", "resnet51"], ["train", "resnet51"]):
        cli_error(capsys, argv, "Unknown model name 'resnet51'", "resnet50")


def test_input_tensor_must_be_symbolic_and_agree_with_input_shape():
    with raises(ValueError, "input_tensor must be a symbolic Keras tensor", "ndarray"):
        kc.ResNet20(input_tensor=np.zeros((1, 32, 32, 3), "float32"))
    with raises(ValueError, "input_shape (64, 64, 3) differs from input_tensor's shape (32, 32, 3)"):
        kc.ResNet20(input_tensor=keras.Input((32, 32, 3)), input_shape=(64, 64, 3))


# ---------------------------------------------------------------- weights= files
def test_weights_of_another_architecture_depth_or_head(files):
    with raises(ValueError, "does not fit model 'lenet5'", "missing from the file (7): c1"):
        kc.LeNet5(weights=files["resnet20"])
    with raises(ValueError, "does not fit model 'resnet32'", "missing from the file (24): layer1_3_conv1"):
        kc.ResNet32(weights=files["resnet20"])
    with raises(ValueError, "Only the head 'output' differs", "pass classes=5"):
        kc.LeNet5(weights=files["lenet5_5"])
    assert kc.LeNet5(weights=files["lenet5_5"], classes=5).output_shape == (None, 5)
    with raises(ValueError, "weights='imagenet' cannot be downloaded"):
        kc.LeNet5(weights="imagenet")
    with raises(ValueError, "does not exist"):
        kc.LeNet5(weights=files["lenet5"] + ".missing.h5")
    with raises(ValueError, "weights must be the path of"):
        kc.weights.load_weights(kc.LeNet5(), None)


# ---------------------------------------------------------------- export options
def test_export_refuses_bad_sources_and_weights(files, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    with Unchanged(tmp_path):
        with raises(ValueError, "must be a registry name, the path of a .keras file or a keras.Model"):
            kc.export_model(5, "onnx", str(out))
        with raises(ValueError, "does not fit model 'lenet5'"):
            kc.export_model("lenet5", "onnx", str(out), weights=files["resnet20"])
        cli_error(capsys, ["export", "lenet5", "--format", "onnx", "--output", out, "--weights", files["lenet5_5"]],
                  "Only the head 'output' differs", "classes=5")
        cli_error(capsys, ["export", "lenet5", "--format", "onnx", "--output", out, "--classes", "0"],
                  "classes must be a positive integer")
        cli_error(capsys, ["export", "lenet5", "--format", "onnx", "--output", out, "--input-shape", "3,3"],
                  "--input-shape must be H,W,C")
        cli_error(capsys, ["export", "lenet5", "--format", "onnx", "--output", out, "--batch-size", "two"],
                  "batch_size must be a positive integer or 'dynamic'")
        cli_error(capsys, ["export", "lenet5", "--format", "onnx", "--output", out, "--preprocess", "nope"],
                  "Unknown model name 'nope'")


def test_bad_int8_calibration_sets(tmp_path, capsys):
    images = tmp_path / "calibration"
    images.mkdir()
    (images / "notes.txt").write_text("not an image")
    out = tmp_path / "m.tflite"
    base = ["export", "lenet5", "--format", "tflite", "--output", out, "--quantize", "int8"]
    with Unchanged(tmp_path):
        cli_error(capsys, base + ["--calibration", images], "holds no images")
        cli_error(capsys, base + ["--calibration", tmp_path / "missing"], "is not a folder")
        cli_error(capsys, base, "needs representative images")
        cli_error(capsys, ["export", "lenet5", "--format", "tflite", "--output", out, "--calibration", "digits"],
                  "only used by the int8")
    (images / "zero.png").write_bytes(b"")
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff junk")
    save_png(images / "good.png")
    with Unchanged(tmp_path):
        cli_error(capsys, base + ["--calibration", images], "2 unreadable image file(s)", "broken.jpg", "zero.png")
    with Unchanged(tmp_path), raises(ValueError, "calibration from a folder needs a square input"):
        kc.export_model("resnet20", "tflite", str(out), input_shape=(32, 48, 3), quantize="int8",
                        calibration=str(images))


# ------------------------------------------------------------------- profile
def test_profile_bad_inputs(capsys):
    with raises(ValueError, "batch_size must be a positive integer"):
        kc.profile("lenet5", batch_size=0)
    with raises(ValueError, "expected a keras.Model or a registry name; got int"):
        kc.profile(12)
    with raises(ValueError, "weights are not needed"):
        kc.profile("lenet5", weights="x.weights.h5")
    with raises(ValueError, "can only fill its None dimensions"):
        kc.profile(kc.LeNet5(), input_shape=(64, 64, 1))
    cli_error(capsys, ["profile", "resnet20", "--input-shape", "a,b"], "--input-shape must look like 227,227,3")
    cli_error(capsys, ["profile", "resnet20", "--batch-size", "0"], "batch_size must be a positive integer")
    cli_error(capsys, ["profile", "lenet5", "--input-shape", "64,64,1"], "input must be 32x32")
    cli_error(capsys, ["profile", "resnet20", "--format", "xml"], "invalid choice: 'xml'")


# ------------------------------------------------- the other subcommands' bad arguments
def test_list_info_table_and_chart_refuse_bad_arguments(tmp_path, capsys):
    with Unchanged(tmp_path):
        cli_error(capsys, ["list", "zzz*"], "no model matches 'zzz*'")
        cli_error(capsys, ["info"], "the following arguments are required: name")
        cli_error(capsys, ["table", "--check", "README.md"], "unrecognized arguments: --check")
        cli_error(capsys, ["chart", "--out", tmp_path / "chart.xyz"], "its extension must be one of", "png")
        cli_error(capsys, ["chart", "--out", tmp_path / "missing" / "chart.png"], "does not exist")
        cli_error(capsys, ["chart", "--out", tmp_path / "chart.png", "resnet51"], "Unknown model name")
        cli_error(capsys, ["bench"], "invalid choice: 'bench'")  # tools/benchmark.py
        cli_error(capsys, ["nonsense"], "invalid choice: 'nonsense'")
        cli_error(capsys, ["--backend", "mxnet", "list"], "invalid choice: 'mxnet'")


def test_training_options_are_refused_without_leaving_a_run_folder(files, tmp_path, capsys):
    out = tmp_path / "run"
    with Unchanged(tmp_path):
        cli_error(capsys, ["train", "lenet5", "--output", out, "--epochs", "0"], "epochs must be an integer >= 1")
        cli_error(capsys, ["train", "lenet5", "--output", out, "--lr", "-1"], "lr must be a number in (0.0, inf)")
        cli_error(capsys, ["train", "lenet5", "--output", out, "--val-split", "1.5"], "val-split must be a number")
        cli_error(capsys, ["train", "lenet5", "--output", out, "--option", "depth"], "--option takes KEY=VALUE")
        cli_error(capsys, ["train", "lenet5", "--output", out, "--option", "activation=relu6x", "--limit", "8"],
                  "unknown activation 'relu6x'")
        cli_error(capsys, ["train", "lenet5", "--output", out, "--weights", files["resnet20"], "--limit", "16"],
                  "does not fit model 'lenet5'")
        cli_error(capsys, ["train", "lenet5", "--output", out, "--resume", "--force"], "nothing to resume")
        cli_error(capsys, ["train", "lenet5", "--output", out, "--batch-size", "64", "--limit", "16"],
                  "batch size 64 is larger than the training split (16 images)")
    assert not out.exists()  # no empty run folder (or stray .lock) is left behind
    with raises(ValueError, "model_options must be a dict"):
        train(TrainConfig("lenet5", output=str(out), model_options=[("depth", 3)]), verbose=0)
    assert not out.exists()


def test_evaluate_and_predict_refuse_bad_arguments(files, tmp_path, capsys):
    run = files["run"]
    png = save_png(tmp_path / "digit.png")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("hello")
    other = tmp_path / "other_classes"
    for name in ("cats", "dogs"):
        (other / name).mkdir(parents=True)
        save_png(other / name / "a.png")
    with Unchanged(tmp_path), Unchanged(run):
        cli_error(capsys, ["evaluate", tmp_path / "nothing"], "is neither a run folder nor an existing .keras file")
        cli_error(capsys, ["evaluate", tmp_path], "is not a run folder (no config.json)")
        cli_error(capsys, ["evaluate", run, "--batch-size", "0"], "batch size must be an integer >= 1")
        cli_error(capsys, ["evaluate", run, "--data", other], "must be among the model's classes", "unknown: cats, dogs")
        cli_error(capsys, ["evaluate", run, "--data", other, "--split", "validation"], "split 'validation' is the run's")
        cli_error(capsys, ["predict", run, png, "--top-k", "0"], "top-k must be an integer >= 1")
        cli_error(capsys, ["predict", run, tmp_path / "empty.png"], "cannot read image", "empty.png", "Input is empty")
        cli_error(capsys, ["predict", run, tmp_path / "notes.txt"], "cannot read image", "Unknown image file format")
        cli_error(capsys, ["predict", run, tmp_path], "is a folder, not an image file")
        cli_error(capsys, ["predict", run, tmp_path / "missing.png"], "missing.png", "does not exist")
        cli_error(capsys, ["predict", run], "the following arguments are required: IMAGE")


# ----------------------------------------------- images of another channel count
def test_grayscale_and_rgba_images_work_for_rgb_and_grey_models(files, tmp_path):
    """An RGB model is fed grey and RGBA files (and a grey model RGB/RGBA files): converted, not refused."""
    paths = [save_png(tmp_path / f"{mode}.png", mode, seed=i) for i, mode in enumerate(("L", "RGBA", "RGB", "P"))]
    results = predict(files["run"], paths, top_k=2)  # LeNet-5: one grey channel
    assert [len(top) for _, top in results] == [2] * 4
    folder = tmp_path / "mixed"
    for label, modes in (("a", "L RGBA RGB P L RGB"), ("b", "RGB RGBA L RGB L RGBA")):
        (folder / label).mkdir(parents=True)
        for i, mode in enumerate(modes.split()):
            save_png(folder / label / f"{i}.png", mode, seed=10 * i + len(label))
    result = train(TrainConfig("resnet20", data=str(folder), output=str(tmp_path / "rgb run"),
                               epochs=1, batch_size=4, warmup_epochs=0), verbose=0)
    assert result.evaluation["images"] == 2 and len(result.history) == 1


# ------------------------------------------------------ output locations
def test_output_whose_parent_is_a_file(files, tmp_path, capsys):
    """A read-only location that even root cannot write: the output's parent is a regular file."""
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("I am a file")
    with Unchanged(tmp_path):
        cli_error(capsys, ["export", "lenet5", "--format", "onnx", "--output", blocker / "m.onnx"],
                  "is a file, not a folder")
        cli_error(capsys, ["convert", "--arch", "squeezenet1_1", "--source", "torchvision", "--input", files["lenet5"],
                           "--output", blocker / "w.weights.h5"], "is a file, not a folder")
        cli_error(capsys, ["chart", "--out", blocker / "c.png"], "is a file, not a folder")
        cli_error(capsys, ["train", "lenet5", "--output", blocker, "--limit", "16"], "is a file; choose another --output")
        cli_error(capsys, ["train", "lenet5", "--output", blocker / "run", "--limit", "16"], "Not a directory")
        with raises(FileNotFoundError, "is a file, not a folder"):
            kc.weights.save_weights(kc.LeNet5(), str(blocker / "w.weights.h5"))


def test_read_only_output_folder(tmp_path, monkeypatch, capsys):
    """Writing into a read-only folder is refused with the folder named; nothing appears.

    Root ignores permission bits, so there the folder's refusal is simulated where the package
    first writes into it (the temporary file); as a normal user the folder is made read-only.
    """
    folder = tmp_path / "read only ü"
    folder.mkdir()
    (folder / "keep.weights.h5").write_bytes(b"previous")
    if os.geteuid() == 0:
        def refuse(*args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    else:
        folder.chmod(0o555)
    try:
        with Unchanged(folder):
            with raises(PermissionError, "cannot write in folder", "read only ü", "Permission denied"):
                kc.weights.save_weights(kc.LeNet5(), str(folder / "w.weights.h5"))
            cli_error(capsys, ["chart", "--out", folder / "c.png", "alexnet"], "cannot write in folder",
                      "Permission denied")
    finally:
        folder.chmod(0o755)


def test_full_disk_leaves_the_previous_file(tmp_path, monkeypatch, capsys):
    """The disk fills up while a file is written: the old file survives, no temporary is left."""
    target = tmp_path / "lenet5.weights.h5"
    model = kc.LeNet5()
    kc.weights.save_weights(model, str(target))

    def disk_full(self, path, *args, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(keras.Model, "save_weights", disk_full)
    with Unchanged(tmp_path), raises(OSError, "No space left on device"):
        kc.weights.save_weights(model, str(target), overwrite=True)
    chart = tmp_path / "chart.png"
    chart.write_bytes(b"old chart")
    from matplotlib.figure import Figure

    monkeypatch.setattr(Figure, "savefig", lambda self, path, **kw: disk_full(None, path))
    with Unchanged(tmp_path):
        cli_error(capsys, ["chart", "--out", chart, "--force", "alexnet", "vgg16"], "No space left on device")


# ------------------------------------------------ paths with spaces and unicode
def test_paths_with_spaces_and_unicode_work(files, tmp_path, capsys):
    folder = tmp_path / "mes modèles ü ß 模型"
    folder.mkdir()
    weights = folder / "le net 5 é.weights.h5"
    kc.weights.save_weights(kc.LeNet5(), str(weights))
    assert kc.LeNet5(weights=str(weights)).name == "lenet5"
    image = save_png(folder / "chiffre ü 7.png")
    assert cli.main(["predict", files["run"], image, "--top-k", "1"]) == 0
    assert "chiffre ü 7.png" in capsys.readouterr().out
    out = folder / "run ö"
    assert cli.main(["train", "lenet5", "--output", str(out), "--weights", str(weights),
                     *[str(a) for kv in QUICK.items() for a in (f"--{kv[0].replace('_', '-')}", kv[1])]]) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", str(out), "--json"]) == 0
    assert '"top1"' in capsys.readouterr().out
    chart = folder / "graphique ü.svg"
    assert cli.main(["chart", "--out", str(chart), "alexnet", "vgg16"]) == 0
    assert chart.read_bytes().lstrip().startswith(b"<?xml")


# ------------------------------------------------- one-line errors, --debug, --backend
def test_unexpected_errors_are_one_line_without_traceback(monkeypatch, capsys):
    from keras_cnnclassics.commands import info

    def broken(args):
        raise KeyError("config")

    monkeypatch.setattr(info, "run", broken)
    err = cli_error(capsys, ["info", "lenet5"], "KeyError: 'config'", "--debug", code=1)
    assert "unexpected" in err
    with pytest.raises(KeyError):
        cli.main(["--debug", "info", "lenet5"])


def test_debug_shows_the_traceback_only_when_asked(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": BACKEND}
    command = [sys.executable, "-m", "keras_cnnclassics.cli"]
    quiet = subprocess.run([*command, "info", "resnet51"], capture_output=True, text=True, env=env, cwd=tmp_path)
    loud = subprocess.run([*command, "--debug", "info", "resnet51"], capture_output=True, text=True, env=env,
                          cwd=tmp_path)
    assert quiet.returncode == 2 and loud.returncode == 1
    ours = [line for line in quiet.stderr.splitlines() if line.startswith("cnnclassics")]
    assert ours == ["cnnclassics info: error: Unknown model name 'resnet51'. Closest names: resnet50, "
                    "resnet56, resnet152, resnet101, resnet18."] or (len(ours) == 1 and "resnet51" in ours[0])
    assert "Traceback" not in quiet.stderr
    assert "Traceback (most recent call last)" in loud.stderr and "ValueError: Unknown model name" in loud.stderr


def test_backend_flag_after_keras_was_imported_runs_on_that_backend(capfd):
    """``--backend X`` when this process's Keras runs another backend: the command runs on X."""
    other = "jax" if BACKEND != "jax" else "torch"
    assert cli.main(["--backend", other, "info", "lenet5", "--build", "--json"]) == 0
    out = capfd.readouterr().out
    assert '"built_params": 60850' in out
    assert keras.backend.backend() == BACKEND  # this process is unchanged
