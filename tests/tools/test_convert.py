"""Weight conversion (issue 7): torchvision/timm checkpoints -> Keras ``.weights.h5``.

Every registry model with a torchvision/timm reference: a randomly initialised
reference (eval mode, non-trivial BatchNorm, see ``conditioned_reference``) saved
the way its library publishes weights (torchvision ``.pth`` with DenseNet's legacy
names, timm ``.safetensors``), converted by the tool (which verifies itself against
the reference library), loaded through ``weights=``, and compared on a batch of 2
at the default resolution: every logit within 1e-4 (+ 1e-4 relative, see
``parity_tolerance``). Each model's case is sampled (``heavy("convert-<name>")``,
see ``model_cases.heavy``): it runs on one backend per run, and for the models
outside ``model_cases.REPRESENTATIVES`` in one run of a few; the copy is numpy and
identical everywhere, and 40 models at 224-299 px on three backends would not fit
CI's time. ``CNNCLASSICS_ALL_HEAVY=1`` runs every model on every backend. Then the reader's safety and error messages, ``--classes``,
``--no-top``, ``decode_predictions`` and ``preprocess_input``.
"""

from __future__ import annotations

import os
import pickle
import re
import runpy
import sys

import numpy as np
import pytest

import keras
import keras_cnnclassics as kc
from keras_cnnclassics import cli
from keras_cnnclassics.checkpoints import read_checkpoint
from keras_cnnclassics.convert import convert_checkpoint, family_mapping, head_layer, keras_name
from keras_cnnclassics.registry import all_specs, get_spec

from support.model_cases import heavy
from support.parity_tolerance import assert_logits_close, condition_batchnorm
from support.reference import require, torch_logits, torch_reference, torchvision_models

torch = require("torch")

TOLERANCE = 1e-4
CONVERTIBLE = [spec for spec in all_specs() if spec.reference]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def convert_cases():
    """Every model once per CI run (the copy is numpy; see the module docstring)."""
    for spec in CONVERTIBLE:
        yield pytest.param(spec, id=spec.name, marks=heavy(f"convert-{spec.name}", spec.name))


def conditioned_reference(reference, **kwargs):
    """``torch_reference`` made well-conditioned for a float32 comparison.

    Random networks amplify float32 rounding from layer to layer: with
    ``torch_reference``'s random BatchNorm statistics Inception v3's logits reach
    1e12, and even with statistics estimated from data and BN scales in [0.5, 1.5]
    torch's own float32 logits differ from its float64 ones by 2.2e-4 (Inception v3,
    299x299), above the 1e-4 this test asserts. So ``condition_batchnorm``: BN
    scales uniform in [0.1, 0.4], running statistics estimated on a random batch:
    all non-trivial, logits of a few units, and torch's float32-vs-float64
    difference 7.2e-6 on Inception v3.
    """
    spec = next(s for s in CONVERTIBLE if s.reference == reference)
    model = torch_reference(reference, **kwargs)
    return condition_batchnorm(model, images(spec.input_shape[0], seed=7, batch=4))


def library(spec):
    return spec.reference.split(":", 1)[0]


def published_names(spec, state_dict):
    """The key names of the library's published file: torchvision's DenseNet weights use the
    legacy ``denselayer1.norm.1.weight`` (the family's TORCH_MAPPING renames them back)."""
    if spec.family != "densenet":
        return state_dict
    return {re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", k): v for k, v in state_dict.items()}


def save_checkpoint(state_dict, path):
    """``torch.save`` for ``.pth``, safetensors for ``.safetensors`` (as the libraries publish)."""
    if str(path).endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state_dict.items()}, str(path))
    else:
        torch.save(state_dict, path)
    return path


def logits(model, x):
    return np.asarray(model.predict(x, verbose=0))


def images(size, seed=1, batch=2):
    return np.random.default_rng(seed).standard_normal((batch, size, size, 3)).astype("float32")


@pytest.mark.parametrize("spec", list(convert_cases()))
def test_converted_checkpoint_matches_reference(spec, tmp_path):
    reference = conditioned_reference(spec.reference)
    suffix = ".safetensors" if library(spec) == "timm" else ".pth"
    checkpoint = save_checkpoint(published_names(spec, reference.state_dict()), tmp_path / f"{spec.name}{suffix}")
    output = tmp_path / f"{spec.name}.weights.h5"

    result = convert_checkpoint(spec.name, library(spec), checkpoint, output, log=None)
    assert result.max_abs_diff is not None and result.max_abs_diff <= TOLERANCE * max(1, result.logit_scale)

    model = kc.get_model(spec.name, weights=output, classifier_activation=None)
    x = images(spec.input_shape[0])
    expected = torch_logits(reference, x)
    got = logits(model, x)
    diff = np.max(np.abs(got - expected))
    print(f"\nPARITY {spec.name} {keras.backend.backend()} max|diff| {diff:.2e} max|logit| {np.max(np.abs(expected)):.2f}")
    assert_logits_close(got, expected)


# ----------------------------------------------------------------------------------
# The smallest convertible models keep the remaining tests fast.
# ----------------------------------------------------------------------------------

SMALL = min(CONVERTIBLE, key=lambda s: s.params)
# A model of another family (few layers: quick to build), and a family at two depths.
OTHER = min((s for s in CONVERTIBLE if s.family != SMALL.family and library(s) == library(SMALL)),
            key=lambda s: (s.name != "alexnet", s.params))
DEPTH_PAIRS = (("resnet18", "resnet34"), ("vgg11", "vgg13"), ("densenet121", "densenet169"))
# The conversion itself is numpy; tests that only need one backend's Keras are sampled.
sampled = pytest.mark.heavy


@pytest.fixture(scope="module")
def small_reference():
    return torch_reference(SMALL.reference)


@pytest.fixture(scope="module")
def small_checkpoint(small_reference, tmp_path_factory):
    return save_checkpoint(small_reference.state_dict(), tmp_path_factory.mktemp("ckpt") / "small.pth")


def run_cli(*args):
    return cli.main(["convert", *map(str, args)])


@sampled("convert-formats")
def test_pth_and_safetensors_convert_to_identical_files(small_reference, small_checkpoint, tmp_path):
    safetensors_file = save_checkpoint(small_reference.state_dict(), tmp_path / "small.safetensors")
    assert run_cli("--arch", SMALL.name, "--source", library(SMALL), "--input", small_checkpoint,
                   "--output", tmp_path / "a.weights.h5") == 0
    assert run_cli("--arch", SMALL.name, "--source", library(SMALL), "--input", safetensors_file,
                   "--output", tmp_path / "b.weights.h5", "--no-verify") == 0
    a = kc.get_model(SMALL.name, weights=tmp_path / "a.weights.h5")
    b = kc.get_model(SMALL.name, weights=tmp_path / "b.weights.h5")
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


@sampled("convert-script")
def test_tools_script_converts_and_reports_the_difference(small_checkpoint, tmp_path, capsys, monkeypatch):
    script = os.path.join(ROOT, "tools", "convert_weights.py")
    output = tmp_path / "small.weights.h5"
    argv = ["--arch", SMALL.name, "--source", library(SMALL), "--input", str(small_checkpoint),
            "--output", str(output)]
    assert cli.subcommand_argv("convert", ["--backend", "jax", *argv])[:3] == ["--backend", "jax", "convert"]
    monkeypatch.setattr(sys, "argv", ["convert_weights.py", *argv])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(script, run_name="__main__")
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "max |logit difference|" in out and str(output) in out
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(output).st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not mkstemp's 0600


def test_training_checkpoint_containers_are_unwrapped(small_reference, tmp_path):
    state = small_reference.state_dict()
    plain = read_checkpoint(save_checkpoint(state, tmp_path / "plain.pth"))
    wrapped = {"epoch": 7, "state_dict": {f"module.{k}": v for k, v in state.items()},
               "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]}}
    torch.save(wrapped, tmp_path / "train.pth")
    torch.save({"model": {k: v.half() for k, v in state.items()}}, tmp_path / "half.pth")
    unwrapped = read_checkpoint(tmp_path / "train.pth")
    half = read_checkpoint(tmp_path / "half.pth")
    assert list(unwrapped) == list(plain) == list(half)
    for key, value in plain.items():
        np.testing.assert_array_equal(unwrapped[key], value)
        assert half[key].dtype == (np.float32 if value.dtype.kind == "f" else value.dtype)


def test_safetensors_reads_without_torch_into_numpy(small_reference, tmp_path):
    path = save_checkpoint(small_reference.state_dict(), tmp_path / "small.safetensors")
    state = read_checkpoint(path)
    assert all(isinstance(v, np.ndarray) for v in state.values())
    assert set(state) == set(small_reference.state_dict())
    # bfloat16 has no numpy dtype: read from the file's bytes, widened to float32.
    from safetensors.torch import save_file

    save_file({"w": torch.full((2, 3), 1.5, dtype=torch.bfloat16)}, str(tmp_path / "bf16.safetensors"))
    bf16 = read_checkpoint(tmp_path / "bf16.safetensors")["w"]
    assert bf16.dtype == np.float32 and np.all(bf16 == 1.5)


# ----------------------------------------------------------------------------------
# Bad input: one line, exit code 2, existing output untouched, no temporary files.
# ----------------------------------------------------------------------------------


class Payload:
    """Unpickling this would create a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _text(path):
    path.write_text("hello, I am not a checkpoint\n")


def _empty(path):
    path.write_bytes(b"")


def _truncated(path):
    torch.save({"w": torch.ones(64, 64)}, path)
    path.write_bytes(path.read_bytes()[:300])


def _truncated_safetensors(path):
    from safetensors.numpy import save_file

    save_file({"w": np.ones((64, 64), "float32")}, str(path))
    path.write_bytes(path.read_bytes()[:-100])


def _pickle_with_code(path):
    with open(path, "wb") as f:
        pickle.dump({"state_dict": Payload(path.parent / "PWNED")}, f)


def _torch_save_with_code(path):
    torch.save({"state_dict": Payload(path.parent / "PWNED")}, path)


def _no_tensors(path):
    torch.save({"epoch": 3, "lr": 0.1}, path)


@pytest.mark.parametrize(
    "make, suffix, message",
    [
        (_text, ".pth", "is not a PyTorch checkpoint"),
        (_empty, ".pth", "is empty"),
        (_truncated, ".pth", "is truncated or corrupted"),
        (_truncated_safetensors, ".safetensors", "truncated or corrupted"),
        (_pickle_with_code, ".pth", "refuses to load"),
        (_torch_save_with_code, ".pt", "refuses to load"),
        (_no_tensors, ".pth", "holds no state dict of tensors"),
    ],
    ids=["text", "empty", "truncated", "truncated-safetensors", "pickle-code", "torch-save-code", "no-tensors"],
)
def test_bad_files_give_one_clear_line(make, suffix, message, tmp_path, capsys):
    bad = tmp_path / f"bad{suffix}"
    make(bad)
    output = tmp_path / "out.weights.h5"
    output.write_bytes(b"previous file")
    code = run_cli("--arch", SMALL.name, "--source", library(SMALL), "--input", bad, "--output", output, "--force")
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1, err
    assert output.read_bytes() == b"previous file"
    assert not (tmp_path / "PWNED").exists()  # the pickled os.system never ran
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([bad.name, "out.weights.h5"])  # no temp file


def _mismatch_cases():
    cases = [pytest.param(OTHER.name, id="other-architecture", marks=sampled("convert-other-arch"))]
    for small, deeper in DEPTH_PAIRS:
        if all(name in kc.list_models() for name in (small, deeper)):
            cases.append(pytest.param((small, deeper), id="other-depth", marks=sampled("convert-other-depth")))
            break
    return cases


@pytest.mark.parametrize("target", _mismatch_cases())
def test_checkpoint_of_another_architecture_or_depth_is_refused(target, small_checkpoint, tmp_path, capsys):
    if isinstance(target, tuple):  # a checkpoint of the smaller model of one family
        source_name, target = target
        checkpoint = save_checkpoint(torch_reference(get_spec(source_name).reference).state_dict(),
                                     tmp_path / "source.pth")
    else:
        checkpoint = small_checkpoint
    output = tmp_path / "out.weights.h5"
    code = run_cli("--arch", target, "--source", library(get_spec(target)), "--input", checkpoint, "--output", output)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert f"does not fit {target}" in err and "another architecture or depth" in err
    assert "missing" in err or "mismatch" in err
    assert not output.exists()


OTHER_SOURCE = "timm" if library(SMALL) == "torchvision" else "torchvision"


@pytest.mark.parametrize(
    "overrides, extra, message",
    [
        ({"--source": OTHER_SOURCE}, [], f"use --source {library(SMALL)}"),
        ({"--arch": "lenet5"}, [], "has no torchvision/timm counterpart"),
        ({"--arch": "resnet5O"}, [], "Unknown model name"),
        ({}, ["--classes", "0"], "classes must be a positive integer"),
        ({"--output": "out.h5"}, [], "must end in .weights.h5"),
        ({}, ["--tolerance", "-1", "--force"], "Conversion check failed"),
        ({}, [], "already exists"),
    ],
    ids=["wrong-source", "no-reference", "unknown-arch", "bad-classes", "bad-suffix", "check-fails", "no-force"],
)
def test_bad_requests_leave_the_output_untouched(overrides, extra, message, small_checkpoint, tmp_path, capsys,
                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    output = tmp_path / "out.weights.h5"
    output.write_bytes(b"previous file")
    options = {"--arch": SMALL.name, "--source": library(SMALL), "--input": small_checkpoint,
               "--output": output, **overrides}
    code = run_cli(*[x for pair in options.items() for x in pair], *extra)
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert output.read_bytes() == b"previous file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.weights.h5"]


def test_unknown_source_is_an_argparse_error(small_checkpoint, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        run_cli("--arch", SMALL.name, "--source", "caffe", "--input", small_checkpoint,
                "--output", tmp_path / "o.weights.h5")
    assert exit_info.value.code == 2


# ----------------------------------------------------------------------------------
# Heads on purpose: a fine-tuned checkpoint, --classes N, --no-top.
# ----------------------------------------------------------------------------------


@sampled("convert-fine-tuned")
def test_fine_tuned_checkpoint_keeps_its_head(tmp_path):
    reference = conditioned_reference(SMALL.reference, num_classes=10)
    checkpoint = save_checkpoint(reference.state_dict(), tmp_path / "ft.pth")
    result = convert_checkpoint(SMALL.name, library(SMALL), checkpoint, tmp_path / "ft.weights.h5", log=None)
    assert result.checkpoint_classes == 10 and result.reinitialised == []
    model = kc.get_model(SMALL.name, classes=10, weights=tmp_path / "ft.weights.h5", classifier_activation=None)
    x = images(SMALL.input_shape[0])
    assert_logits_close(logits(model, x), torch_logits(reference, x))


@sampled("convert-heads")
def test_classes_reinitialises_only_the_head_and_no_top_drops_it(small_checkpoint, tmp_path):
    full_file, ten_file, top_free = (tmp_path / f"{n}.weights.h5" for n in ("full", "ten", "notop"))
    convert_checkpoint(SMALL.name, library(SMALL), small_checkpoint, full_file, log=None)
    ten = convert_checkpoint(SMALL.name, library(SMALL), small_checkpoint, ten_file, classes=10, verify=False, log=None)
    convert_checkpoint(SMALL.name, library(SMALL), small_checkpoint, top_free, include_top=False, verify=False, log=None)

    full = kc.get_model(SMALL.name, weights=full_file)
    assert ten.reinitialised == [head_layer(full).name]
    model = kc.get_model(SMALL.name, classes=10, weights=ten_file)
    for layer in model.layers:
        if layer.weights and layer.name not in ten.reinitialised:
            for a, b in zip(layer.get_weights(), full.get_layer(layer.name).get_weights(), strict=True):
                np.testing.assert_array_equal(a, b)

    backbone = kc.get_model(SMALL.name, include_top=False, weights=top_free)
    features = keras.Model(full.input, full.get_layer(backbone.layers[-1].name).output)
    x = images(SMALL.input_shape[0])
    np.testing.assert_allclose(logits(backbone, x), logits(features, x), atol=1e-6)


@sampled("convert-headless")
def test_checkpoint_without_head_converts_with_no_top_only(small_reference, tmp_path, capsys):
    head = head_layer(kc.get_model(SMALL.name)).name
    state = {k: v for k, v in small_reference.state_dict().items() if keras_name(k.rsplit(".", 1)[0]) != head}
    assert len(state) < len(small_reference.state_dict())
    checkpoint = save_checkpoint(state, tmp_path / "headless.pth")
    code = run_cli("--arch", SMALL.name, "--source", library(SMALL), "--input", checkpoint,
                   "--output", tmp_path / "top.weights.h5")
    assert code == 2 and "converts with --no-top" in capsys.readouterr().err
    result = convert_checkpoint(SMALL.name, library(SMALL), checkpoint, tmp_path / "bb.weights.h5",
                                include_top=False, log=None)
    assert result.checkpoint_classes is None and "no classifier head" in result.skipped
    backbone = kc.get_model(SMALL.name, include_top=False, weights=tmp_path / "bb.weights.h5")
    # The backbone's last layer is a torch module too: compare its output (NCHW -> NHWC).
    module = dict((keras_name(n), m) for n, m in small_reference.named_modules())[backbone.layers[-1].name]
    captured = []
    hook = module.register_forward_hook(lambda mod, inputs, out: captured.append(out.detach().numpy()))
    x = images(SMALL.input_shape[0])
    torch_logits(small_reference, x)
    hook.remove()
    np.testing.assert_allclose(logits(backbone, x), captured[0].transpose(0, 2, 3, 1), atol=TOLERANCE)


# ----------------------------------------------------------------------------------
# decode_predictions and preprocess_input
# ----------------------------------------------------------------------------------


def test_decode_predictions_uses_torchvisions_class_names():
    torchvision_models()  # importable on a CPU-only torch
    from torchvision.models._meta import _IMAGENET_CATEGORIES as names

    preds = np.zeros((2, 1000), "float32")
    preds[0, [3, 7, 999]] = [0.2, 0.5, 0.3]
    preds[1, 0] = 1.0
    decoded = kc.decode_predictions(preds, top=3)
    assert [row[1] for row in decoded[0]] == [names[7], names[999], names[3]]
    assert decoded[0][0] == ("n01514668", "cock", 0.5)
    assert decoded[1][0] == ("n01440764", "tench", 1.0)
    assert [len(row) for row in kc.decode_predictions(preds)] == [5, 5]
    from keras_cnnclassics.imagenet import imagenet_classes

    assert [name for _, name in imagenet_classes()] == list(names)


@pytest.mark.parametrize("bad, message", [(np.zeros((2, 10)), "shape"), (np.zeros(1000), "shape")])
def test_decode_predictions_rejects_other_shapes(bad, message):
    with pytest.raises(ValueError, match=message):
        kc.decode_predictions(bad)
    with pytest.raises(ValueError, match="top must be"):
        kc.decode_predictions(np.zeros((1, 1000)), top=0)


@pytest.mark.parametrize("spec", [pytest.param(s, id=s.name) for s in CONVERTIBLE])
def test_preprocess_input_equals_the_reference_normalisation(spec):
    """torchvision: transforms.Normalize with the mean/std of the model's published weights
    (``get_model_weights(name).DEFAULT.transforms()``) after ToTensor's /255; timm: the
    model's pretrained_cfg mean/std."""
    image = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3)).astype("uint8")
    original = image.copy()
    got = spec.preprocess_input(image)
    tensor = torch.from_numpy(image.transpose(0, 3, 1, 2).astype("float32") / 255.0)
    name = spec.reference.split(":", 1)[1]
    models = torchvision_models()
    from torchvision import transforms

    if library(spec) == "torchvision":
        preset = models.get_model_weights(name).DEFAULT.transforms()
        mean, std = preset.mean, preset.std
    else:
        import timm

        cfg = timm.get_pretrained_cfg(name)
        mean, std = cfg.mean, cfg.std
    expected = transforms.Normalize(mean, std)(tensor)
    np.testing.assert_allclose(np.asarray(got), expected.numpy().transpose(0, 2, 3, 1), atol=1e-6)
    np.testing.assert_array_equal(image, original)  # the argument is not modified
