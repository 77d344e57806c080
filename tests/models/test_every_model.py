"""Every registry model: exact parameter count, forward pass, .keras round trip, one fit step.

Parameter counts are checked for every model on every backend (torchvision's
convention: BatchNorm running statistics are buffers, not parameters). The
forward/save/fit checks of models above 30 M parameters are sampled per
backend (see conftest.py).
"""

from __future__ import annotations

import numpy as np
import pytest

import keras
from keras_cnnclassics import count_params, get_model
from keras_cnnclassics.applications import deep_graph_recursion
from keras_cnnclassics.profiler import shapes_only
from keras_cnnclassics.registry import all_specs

from support.model_cases import THOUSAND_LAYER_NETS, damp_residual_branches, model_params, random_images, small_input_shape


@pytest.mark.parametrize("spec", [pytest.param(s, id=s.name) for s in all_specs()])
def test_parameter_count_is_exact(spec):
    with shapes_only():  # variables get shapes but no (slow) random initialisation
        model = get_model(spec.name)
    assert count_params(model) == spec.params
    assert model.output_shape == (None, spec.default_classes)


@pytest.mark.parametrize("spec", model_params())
def test_forward_save_load_and_fit(spec, tmp_path):
    shape = small_input_shape(spec)
    model = get_model(spec.name, input_shape=shape, classes=7)
    if spec.name in THOUSAND_LAYER_NETS:  # untrained, their inference overflows float32
        damp_residual_branches(model)
    x = random_images(shape)
    probs = np.asarray(model.predict(x, verbose=0))
    assert probs.shape == (2, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)

    path = tmp_path / f"{spec.name}.keras"
    model.save(path)
    with deep_graph_recursion():  # Keras maps the graph recursively: resnet1202 chains 4,213 layers
        reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(reloaded.predict(x, verbose=0)), probs, atol=1e-6)

    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="sparse_categorical_crossentropy")
    history = model.fit(x, np.array([1, 3]), epochs=1, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("spec", model_params())
def test_backbone_with_pooling(spec):
    shape = small_input_shape(spec)
    model = get_model(spec.name, include_top=False, pooling="avg", input_shape=shape)
    assert len(model.output_shape) == 2
    out = np.asarray(model.predict(random_images(shape, batch=1), verbose=0))
    assert out.shape == model.output_shape[:0] + (1, model.output_shape[1])
