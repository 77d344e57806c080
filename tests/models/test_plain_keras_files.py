"""Saved ``.keras`` files of architectures made of Keras' own layers load with plain
``keras.saving.load_model`` in a process that cannot import this package, and give
the same outputs there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_cnnclassics as kc

# (registry name, input size, constructor options): small inputs, every part of the graph.
CASES = [
    ("resnet18", 64, {}),
    ("vgg11", 32, {"classes": 10}),  # the adaptive 7x7 pool upsamples the 1x1 map
    ("densenet121", 64, {}),
    ("squeezenet1_1", 64, {}),
    ("googlenet", 64, {"transform_input": True, "aux_logits": True}),
    ("inception_v3", 75, {"transform_input": True}),
]

# Loads each listed file with Keras alone; importing keras_cnnclassics raises ImportError.
LOADER = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class NoPackage(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "keras_cnnclassics":
                raise ImportError(f"{name} cannot be imported here")
            return None

    sys.meta_path.insert(0, NoPackage())
    try:
        import keras_cnnclassics
    except ImportError:
        pass
    else:
        sys.exit("keras_cnnclassics was importable")

    import keras
    import numpy as np

    for case in json.loads(sys.argv[1]):
        model = keras.saving.load_model(case["model"])
        outputs = model.predict(np.load(case["input"]), verbose=0)
        np.savez(case["output"], *(outputs if isinstance(outputs, list) else [outputs]))
    assert not any(name.split(".")[0] == "keras_cnnclassics" for name in sys.modules)
    """
)


def _as_list(outputs):
    return [np.asarray(o) for o in (outputs if isinstance(outputs, list) else [outputs])]


def _kerass_own_outputs(model, x):
    """The outputs of ``model`` computed by Keras' own layers: on the PyTorch backend the
    package builds fast-path subclasses, which ``clone_model`` turns back into Keras' layers."""
    outputs = _as_list(model.predict(x, verbose=0))
    if keras.backend.backend() != "torch":
        return outputs
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    plain = _as_list(clone.predict(x, verbose=0))
    for fast, own in zip(outputs, plain):  # the fast path computes the same
        np.testing.assert_allclose(fast, own, rtol=1e-5, atol=1e-6)
    return plain


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """Each case built, saved and run here; then loaded and run in the package-free process."""
    folder = tmp_path_factory.mktemp("plain_keras")
    rng = np.random.default_rng(0)
    cases, expected = [], {}
    for name, size, options in CASES:
        model = kc.get_model(name, input_shape=(size, size, 3), **options)
        x = rng.normal(size=(2, size, size, 3)).astype("float32")
        case = {key: str(folder / f"{name}.{suffix}") for key, suffix in
                (("model", "keras"), ("input", "npy"), ("output", "npz"))}
        model.save(case["model"])
        np.save(case["input"], x)
        expected[name] = _kerass_own_outputs(model, x)
        cases.append(case)
    child = subprocess.run(
        [sys.executable, "-c", LOADER, json.dumps(cases)],
        cwd=folder, capture_output=True, text=True, timeout=1800,
        env={**os.environ, "KERAS_BACKEND": keras.backend.backend()},
    )
    assert child.returncode == 0, child.stderr[-3000:]
    return {name: (case, expected[name]) for (name, _, _), case in zip(CASES, cases)}


def _config_classes(config, found):
    """(module, class_name, registered_name) of every serialized object in a config."""
    if isinstance(config, dict):
        if "class_name" in config and "module" in config:
            found.add((config["module"], config["class_name"], config.get("registered_name")))
        for value in config.values():
            _config_classes(value, found)
    elif isinstance(config, list):
        for value in config:
            _config_classes(value, found)
    return found


@pytest.mark.parametrize("name", [case[0] for case in CASES])
def test_file_loads_with_plain_keras_and_gives_the_same_outputs(saved_models, name):
    case, expected = saved_models[name]
    with np.load(case["output"]) as loaded:
        outputs = [loaded[key] for key in loaded.files]
    assert len(outputs) == len(expected)
    for got, own in zip(outputs, expected):
        np.testing.assert_array_equal(got, own)


@pytest.mark.parametrize("name", [case[0] for case in CASES])
def test_saved_config_names_only_keras_classes(saved_models, name):
    case, _ = saved_models[name]
    import zipfile

    with zipfile.ZipFile(case["model"]) as archive:
        config = json.loads(archive.read("config.json"))
    classes = _config_classes(config, set())
    assert {module.split(".")[0] for module, _, _ in classes} <= {"keras", "builtins"}, classes
    assert not any(">" in (registered or "") for _, _, registered in classes), classes  # no package's name
