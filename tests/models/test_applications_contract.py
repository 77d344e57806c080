"""The keras.applications contract on every registry model, in the style of Keras'
own ``keras/src/applications/applications_test.py``.

For each model: a backbone (``include_top=False``) built at a variable input size
with 1 and 4 input channels (``pooling=None`` and ``"max"``), the head at a custom
input size, logits (``classifier_activation=None``) against softmax, a
``get_config``/``from_config`` round trip and ``channels_first`` against
``channels_last``, all at small inputs. ``channels_first`` is skipped only on
TensorFlow where its CPU cannot run NCHW convolutions (``channels_first_problem``).
Which models run on which backend follows ``model_cases.model_params`` (big models
sampled per backend, see conftest.py). Also: every constructor's signature and
docstring, and the registry's natural order.
"""

from __future__ import annotations

import inspect
from contextlib import nullcontext

import keras
import numpy as np
import pytest
from support.capabilities import needs_channels_first

import keras_cnnclassics as kc
from keras_cnnclassics.applications import deep_graph_recursion
from keras_cnnclassics.backend_support import channels_first_problem
from keras_cnnclassics.profiler import shapes_only
from keras_cnnclassics.registry import all_specs

from support.model_cases import damp_residual_branches, model_params, random_images

TORCHVISION_RESNETS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


def _small_size(spec, extra=0):
    """A small valid spatial size: the architecture's minimum, at least 32, plus ``extra``."""
    return max(spec.min_size, 32) + extra


def _build(spec, **kwargs):
    """``spec``'s model; residual networks damped (see ``damp_residual_branches``): untrained,
    the deep ones overflow float32 or reach activations where NCHW and NHWC rounding differ
    beyond any fixed tolerance."""
    model = spec.build(**kwargs)
    return damp_residual_branches(model) if spec.family.startswith("resnet") else model


def _predict(model, x):
    """Outputs on one batch. JAX compiles a whole model at once much faster than it runs
    a first eager call op by op; TensorFlow and PyTorch answer one eager call sooner."""
    if keras.backend.backend() == "jax":
        return np.asarray(model.predict(x, verbose=0))
    return keras.ops.convert_to_numpy(model(x, training=False))


def _custom_shape(spec):
    """A non-square input other than the default, for the top; the default where the
    top flattens a fixed-size map."""
    if not spec.flexible_top:
        return tuple(spec.input_shape)
    return (_small_size(spec, 3), _small_size(spec, 9), spec.input_shape[-1])


@pytest.fixture(scope="module", params=model_params())
def head(request):
    """``(spec, logits model at _custom_shape, a batch, its logits)``, built once per model
    for the tests that use it (pytest runs them one model after the other)."""
    spec = request.param
    shape = _custom_shape(spec)
    model = _build(spec, input_shape=shape, classes=6, classifier_activation=None)
    x = random_images(shape, batch=1)
    return spec, model, x, _predict(model, x)


@pytest.mark.parametrize("spec", model_params())
def test_backbone_takes_one_and_four_channels_at_a_variable_size(spec):
    """As Keras' ``test_application_notop_variable_input_channels``: the graph builds
    with unknown height and width, and the input's channels change only the first layer."""
    one = spec.build(include_top=False, input_shape=(None, None, 1))
    assert one.input_shape == (None, None, None, 1)
    assert len(one.output_shape) == 4 and one.output_shape[1:3] == (None, None)
    four = spec.build(include_top=False, input_shape=(None, None, 4), pooling="max")
    assert four.input_shape == (None, None, None, 4)
    assert four.output_shape == (None, one.output_shape[-1])


def test_head_at_a_custom_input_size(head):
    spec, model, _, logits = head
    assert model.input_shape == (None, *_custom_shape(spec))
    assert model.output_shape == (None, 6) and logits.shape == (1, 6) and np.all(np.isfinite(logits))
    if not spec.flexible_top:  # a top that flattens a fixed-size map refuses other sizes
        with pytest.raises(ValueError, match="include_top=False"):
            spec.build(input_shape=(spec.input_shape[0] + 1, spec.input_shape[1], spec.input_shape[2]))


def test_classifier_activation_none_gives_the_logits_of_softmax(head):
    spec, model, x, logits = head
    probs_model = spec.build(input_shape=model.input_shape[1:], classes=6)
    probs_model.set_weights(model.get_weights())
    probs = _predict(probs_model, x)
    assert not np.allclose(logits.sum(axis=1), 1.0)  # really logits, not probabilities
    np.testing.assert_allclose(probs, keras.ops.convert_to_numpy(keras.ops.softmax(logits)), atol=1e-5)


def _from_config(config):
    """``keras.Model.from_config``. On JAX without initialising the weights: there each of
    Keras' random initialisers compiles once per kernel shape (GoogLeNet: over a minute),
    and the test sets every weight next anyway."""
    with deep_graph_recursion(), shapes_only() if keras.backend.backend() == "jax" else nullcontext():
        return keras.Model.from_config(config)


def test_config_round_trip_gives_equal_outputs(head):
    _, model, x, logits = head
    clone = _from_config(model.get_config())
    assert [layer.name for layer in clone.layers] == [layer.name for layer in model.layers]
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(_predict(clone, x), logits, atol=1e-6)


@needs_channels_first
def test_channels_first_matches_channels_last(head):
    spec, model, x, logits = head
    if keras.backend.backend() == "tensorflow" and channels_first_problem():
        pytest.skip(channels_first_problem())
    keras.config.set_image_data_format("channels_first")
    h, w, c = model.input_shape[1:]
    model_first = spec.build(input_shape=(c, h, w), classes=6, classifier_activation=None)
    assert model_first.input_shape == (None, c, h, w)
    model_first.set_weights(model.get_weights())
    got = _predict(model_first, x.transpose(0, 3, 1, 2))
    np.testing.assert_allclose(got, logits, atol=1e-4 * max(1.0, np.abs(logits).max()))


# ---------------------------------------------------------------------------- constructors


def _constructors():
    return [pytest.param(getattr(kc, s.constructor), id=s.constructor) for s in all_specs()]


@pytest.mark.parametrize("constructor", _constructors())
def test_constructor_has_the_applications_signature_and_documents_the_model(constructor):
    spec = constructor.spec
    parameters = inspect.signature(constructor).parameters
    assert list(parameters) == [
        "include_top", "weights", "input_tensor", "input_shape", "pooling", "classes",
        "classifier_activation", "name", "kwargs",
    ]
    assert parameters["classes"].default == spec.default_classes
    assert constructor.__name__ == spec.constructor
    assert constructor.__module__.startswith("keras_cnnclassics.models.")
    doc = inspect.getdoc(constructor)
    assert f"Parameters: {spec.params:,}" in doc
    assert " ".join(spec.paper.split()[:4]) in " ".join(doc.split())
    assert "Args:" in doc and "classifier_activation:" in doc


def test_list_models_is_in_natural_order():
    assert kc.list_models("resnet[0-9]*")[:5] == ["resnet18", "resnet20", "resnet32", "resnet34", "resnet44"]
    assert [n for n in kc.list_models() if n in TORCHVISION_RESNETS] == TORCHVISION_RESNETS
    assert kc.list_models("vgg*") == [
        "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
    ]
    assert kc.list_models("resnet1*")[-2:] == ["resnet152", "resnet1202"]
    assert [s.name for s in all_specs()] == kc.list_models()
