"""SqueezeNet 1.0/1.1: exact counts and logits parity with torchvision, ceil-mode pooling, Fire modules."""

import numpy as np
import pytest

import keras
import keras_cnnclassics as kc
from keras_cnnclassics.convert import state_dict_to_keras

from support.parity_tolerance import assert_logits_close
from support.reference import torch_logits, torch_reference, torchvision_models


@pytest.mark.parametrize("name, params", [("squeezenet1_0", 1_248_424), ("squeezenet1_1", 1_235_496)])
def test_counts_equal_live_torchvision(name, params):
    reference = getattr(torchvision_models(), name)(weights=None)
    assert kc.count_params(kc.get_model(name)) == sum(p.numel() for p in reference.parameters()) == params


def _ceil_mode_pools_that_differ(model):
    """Max pools whose ceil-mode output is larger than floor mode would give."""
    differ, names = [], {layer.name for layer in model.layers}
    for layer in model.layers:
        if isinstance(layer, keras.layers.MaxPooling2D) and layer.name.endswith(tuple("0123456789")):
            pad = f"{layer.name}_pad"
            source = (model.get_layer(pad) if pad in names else layer).input.shape[1]
            floor_size = (source - 3) // 2 + 1
            if layer.output.shape[1] != floor_size:
                differ.append(layer.name)
    return differ


@pytest.mark.parametrize(
    "name, size",
    [("squeezenet1_0", 64), ("squeezenet1_0", 65), ("squeezenet1_1", 66), ("squeezenet1_1", 67)],
)
def test_logits_match_torchvision_with_ceil_mode(name, size):
    reference = torch_reference(f"torchvision:{name}")
    model = kc.get_model(name, input_shape=(size, size, 3), classifier_activation=None)
    assert _ceil_mode_pools_that_differ(model), "this size should exercise ceil mode"
    state_dict_to_keras(model, reference.state_dict())
    x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype("float32")
    got = np.asarray(model.predict(x, verbose=0))
    expected = torch_logits(reference, x)
    assert got.shape == expected.shape == (2, 1000)
    assert_logits_close(got, expected)


@pytest.mark.parametrize("name, min_size", [("squeezenet1_0", 21), ("squeezenet1_1", 17)])
def test_min_size_equals_torchvision(name, min_size):
    import torch

    reference = getattr(torchvision_models(), name)(weights=None).eval()
    with torch.no_grad():
        assert reference(torch.zeros(1, 3, min_size, min_size)).shape == (1, 1000)
        with pytest.raises(RuntimeError):
            reference(torch.zeros(1, 3, min_size - 1, min_size - 1))
    assert kc.model_info(name)["min_input_size"] == min_size


def test_fire_module_layout_and_names():
    model = kc.SqueezeNet1_0(input_shape=(224, 224, 3))
    assert model.get_layer("features_3_squeeze").kernel.shape == (1, 1, 96, 16)
    assert model.get_layer("features_3_expand1x1").kernel.shape == (1, 1, 16, 64)
    assert model.get_layer("features_3_expand3x3").kernel.shape == (3, 3, 16, 64)
    assert tuple(model.get_layer("features_3").output.shape[1:]) == (54, 54, 128)
    assert model.get_layer("classifier_1").kernel.shape == (1, 1, 512, 1000)
    # 50x fewer parameters than AlexNet (the paper's title; seeds 002): 61.1 M / 1.25 M.
    assert 61_100_840 / kc.count_params(model) > 48


def test_stage_outputs():
    extractor = kc.feature_extractor("squeezenet1_1", input_shape=(64, 64, 3))
    assert [tuple(o.shape[1:]) for o in extractor.outputs] == [(15, 15, 128), (7, 7, 256), (3, 3, 512)]
    info = kc.feature_info("squeezenet1_0", input_shape=(224, 224, 3))
    assert [i["channels"] for i in info] == [256, 512, 512]
    assert [i["layer"] for i in info] == ["features_5", "features_10", "features_12"]


@pytest.mark.parametrize("kwargs, message", [
    ({"dropout": 1.0}, "dropout must be a number in"),
    ({"version": "1_2"}, "version must be one of"),
])
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kc.SqueezeNet1_1(**kwargs)
