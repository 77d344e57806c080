"""Train, save, reload: files Keras writes after ``fit`` load through ``weights=``.

A compiled and trained model's ``.weights.h5`` (and the ``.keras`` file's weights) hold an
``optimizer/`` group beside the layers. ``weights=`` checks layers only, so such a file loads
as it does through ``model.load_weights``, and a file for another head or depth is still
refused with the usual message.
"""

from __future__ import annotations

import h5py
import keras
import numpy as np
import pytest

import keras_cnnclassics as kc
from keras_cnnclassics import weights as weights_lib

CLASSES = 3
SHAPES = {"lenet5": (32, 32, 1), "resnet18": (32, 32, 3)}


def _trained(name):
    """``name`` at 32x32 with 3 classes, compiled and fitted for one step; and its inputs."""
    model = kc.get_model(name, input_shape=SHAPES[name], classes=CLASSES)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(0)
    images = rng.random((4, *SHAPES[name]), dtype=np.float32)
    before = [keras.ops.convert_to_numpy(v) for v in model.weights]
    model.fit(images, np.array([0, 1, 2, 0]), batch_size=4, epochs=1, verbose=0)
    changed = sum(not np.array_equal(a, keras.ops.convert_to_numpy(v)) for a, v in zip(before, model.weights))
    assert changed, "one step of fit changed no weight"
    return model, images


# LeNet-5 runs on every backend; ResNet-18 (batch norm statistics too) on one per run.
@pytest.fixture(scope="module", params=["lenet5", pytest.param("resnet18", marks=pytest.mark.heavy("roundtrip resnet18"))])
def trained(request):
    return request.param, *_trained(request.param)


def _predict(model, images):
    return model.predict(images, batch_size=len(images), verbose=0)


def _reloaded(name, path, **kwargs):
    return kc.get_model(name, input_shape=SHAPES[name], classes=CLASSES, weights=str(path), **kwargs)


def _optimizer_variables(h5):
    return len(h5["optimizer/vars"]) if "optimizer/vars" in h5 else 0


@pytest.mark.parametrize("writer", ["keras", "package"])
def test_weights_saved_after_fit_reload_through_weights(trained, writer, tmp_path):
    name, model, images = trained
    path = tmp_path / f"{name}.weights.h5"
    if writer == "keras":
        model.save_weights(path)
    else:
        weights_lib.save_weights(model, path)
    with h5py.File(path, "r") as h5:
        assert _optimizer_variables(h5) > 0  # the case at stake: an optimizer group beside the layers
    assert weights_lib.file_manifest(path) == weights_lib.model_manifest(model)
    expected = _predict(model, images)
    np.testing.assert_allclose(_predict(_reloaded(name, path), images), expected, rtol=0, atol=1e-6)
    by_keras = kc.get_model(name, input_shape=SHAPES[name], classes=CLASSES)
    by_keras.load_weights(path)
    np.testing.assert_allclose(_predict(by_keras, images), expected, rtol=0, atol=1e-6)
    fresh = kc.get_model(name, input_shape=SHAPES[name], classes=CLASSES)
    assert not np.allclose(_predict(fresh, images), expected, atol=1e-6)  # the reload is what matched


def test_keras_file_saved_after_fit_reloads(trained, tmp_path):
    name, model, images = trained
    path = tmp_path / f"{name}.keras"
    model.save(path)
    expected = _predict(model, images)
    np.testing.assert_allclose(_predict(_reloaded(name, path), images), expected, rtol=0, atol=1e-6)
    whole = weights_lib.load_model_file(path)
    np.testing.assert_allclose(_predict(whole, images), expected, rtol=0, atol=1e-6)


def test_trained_file_for_another_head_is_still_refused(trained, tmp_path):
    name, model, _ = trained
    path = tmp_path / f"{name}.weights.h5"
    model.save_weights(path)
    head = "output" if name == "lenet5" else "fc"
    with pytest.raises(ValueError, match=f"Only the head '{head}' differs.*classes={CLASSES}"):
        kc.get_model(name, input_shape=SHAPES[name], classes=CLASSES + 1, weights=str(path))
    other = "resnet34" if name == "resnet18" else "resnet18"
    with pytest.raises(ValueError, match="does not fit model"):
        kc.get_model(other, input_shape=SHAPES["resnet18"], classes=CLASSES, weights=str(path))
