"""DenseNet: counts against live torchvision, logits parity, the CIFAR models of Table 2, bad options.

The generic tests (test_every_model.py) check on every backend that each registered
model's Keras count equals its registry ``params``; here the registry numbers
are tied to torchvision's models (ImageNet) and to the paper (CIFAR).
"""

import math

import numpy as np
import pytest
from support.capabilities import needs_channels_first

import keras
import keras_cnnclassics as kc
from keras_cnnclassics.convert import state_dict_to_keras
from keras_cnnclassics.registry import get_spec

from support.parity_tolerance import assert_logits_close, calibration_images, condition_batchnorm
from support.reference import torch_logits, torch_reference, torchvision_models


def _torch_count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "name, count",
    [("densenet121", 7_978_856), ("densenet169", 14_149_480), ("densenet201", 20_013_928),
     ("densenet161", 28_681_000)],
)
def test_registry_counts_equal_live_torchvision(name, count):
    model = getattr(torchvision_models(), name)(weights=None)
    assert _torch_count(model) == get_spec(name).params == count


def test_densenet264_count_equals_torchvision_densenet_class():
    # Paper Table 1: k=32, blocks 6/12/64/48; torchvision's DenseNet class builds it.
    model = torchvision_models().DenseNet(32, (6, 12, 64, 48), 64)
    assert _torch_count(model) == get_spec("densenet264").params == 33_337_704


def _assert_logits_match(name, size):
    spec = get_spec(name)
    reference = condition_batchnorm(torch_reference(spec.reference), calibration_images(size))
    model = kc.get_model(name, input_shape=(size, size, 3), classifier_activation=None)
    assert kc.count_params(model) == _torch_count(reference) == spec.params
    state_dict_to_keras(model, reference.state_dict())  # strict: every name must match
    x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype("float32")
    got = np.asarray(model.predict(x, verbose=0))
    expected = torch_logits(reference, x)
    assert_logits_close(got, expected)


def test_densenet121_logits_match_torchvision():
    _assert_logits_match("densenet121", 64)


@pytest.mark.heavy("parity-densenet161")
def test_densenet161_logits_match_torchvision():
    _assert_logits_match("densenet161", 64)


def test_stage_outputs_are_dense_block_ends():
    info = kc.feature_info("densenet121", input_shape=(64, 64, 3))
    assert [i["layer"] for i in info] == [
        "features_denseblock1", "features_denseblock2", "features_denseblock3", "features_relu5"
    ]
    assert [i["reduction"] for i in info] == [4, 8, 16, 32]
    # block ends: 64 + 6*32, 128 + 12*32, 256 + 24*32, 512 + 16*32 (after norm5 + ReLU)
    assert [i["channels"] for i in info] == [256, 512, 1024, 1024]


# --------------------------------------------------------------------------- CIFAR (Table 2)


def cifar_params(depth, k, bc, classes=10, theta=None):
    """Closed-form count of the CIFAR DenseNet of Sec. 4.1 (convs without bias)."""
    theta = theta if theta is not None else (0.5 if bc else 1.0)
    n = (depth - 4) // (6 if bc else 3)
    c = 2 * k if bc else 16
    total = 3 * 9 * c  # 3x3 stem conv
    for block in range(3):
        for _ in range(n):
            if bc:  # BN(c) 1x1 conv c->4k, BN(4k) 3x3 conv 4k->k
                total += 2 * c + c * 4 * k + 2 * 4 * k + 9 * 4 * k * k
            else:  # BN(c) 3x3 conv c->k
                total += 2 * c + 9 * c * k
            c += k
        if block < 2:  # transition: BN(c), 1x1 conv c -> floor(theta c)
            out = math.floor(theta * c)
            total += 2 * c + c * out
            c = out
    return total + 2 * c + c * classes + classes  # norm5, classifier


# Huang et al. 2017, Table 2 ("Params" column, CIFAR-10): (depth L, growth k, BC, millions).
TABLE2 = [
    (40, 12, False, 1.0),
    (100, 12, False, 7.0),
    (100, 24, False, 27.2),
    (100, 12, True, 0.8),
    (250, 24, True, 15.3),
    (190, 40, True, 25.6),
]


@pytest.mark.parametrize("depth, k, bc, millions", TABLE2)
def test_cifar_counts_reproduce_table2_exactly_at_its_precision(depth, k, bc, millions):
    # Table 2 gives one decimal in millions; every row is reproduced exactly at that
    # precision (the exact counts are pinned in the registry and below).
    assert round(cifar_params(depth, k, bc) / 1e6, 1) == millions


@pytest.mark.parametrize(
    "name, depth, k, bc",
    [("densenet40_k12_cifar", 40, 12, False), ("densenet_bc100_k12_cifar", 100, 12, True),
     ("densenet_bc190_k40_cifar", 190, 40, True)],
)
def test_registered_cifar_models_equal_the_closed_form(name, depth, k, bc):
    assert get_spec(name).params == cifar_params(depth, k, bc)


def test_cifar_builder_equals_closed_form_for_an_unregistered_row():
    # DenseNet (L=100, k=12): 7.0M in Table 2; built through the options.
    model = kc.DenseNet40_K12_CIFAR(depth=100)
    assert kc.count_params(model) == cifar_params(100, 12, False) == 6_979_642


@pytest.mark.heavy("densenet-bc250-count")
def test_densenet_bc250_k24_through_the_options():
    # DenseNet-BC (L=250, k=24): 15.3M in Table 2 (not registered: an 876-layer graph).
    model = kc.DenseNetBC100_K12_CIFAR(depth=250, growth_rate=24)
    assert kc.count_params(model) == cifar_params(250, 24, True) == 15_324_406


def test_cifar_structure_and_stage_outputs():
    model = kc.DenseNetBC100_K12_CIFAR()
    assert model.output_shape == (None, 10)
    info = kc.feature_info(model)
    # 2k = 24 stem maps; 16 layers per block; theta = 0.5 in the transitions.
    assert [(i["reduction"], i["channels"]) for i in info] == [(1, 216), (2, 300), (4, 342)]
    assert model.get_layer("features_denseblock1_denselayer1_conv1").kernel.shape == (1, 1, 24, 48)
    assert model.get_layer("features_transition1_conv").kernel.shape == (1, 1, 216, 108)


def test_dropout_follows_each_conv_except_the_first():
    model = kc.DenseNetBC100_K12_CIFAR(dropout=0.2, depth=10)
    drops = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    # 3 blocks x 1 layer x 2 convs + 2 transitions; none after the stem conv.
    assert len(drops) == 8 and "features_conv0_dropout" not in drops


@needs_channels_first
def test_channels_first_matches_channels_last():
    model_last = kc.DenseNetBC100_K12_CIFAR(depth=16, input_shape=(16, 16, 3))
    x = np.random.default_rng(3).normal(size=(2, 16, 16, 3)).astype("float32")
    expected = np.asarray(model_last.predict(x, verbose=0))
    keras.config.set_image_data_format("channels_first")
    model_first = kc.DenseNetBC100_K12_CIFAR(depth=16, input_shape=(3, 16, 16))
    model_first.set_weights(model_last.get_weights())
    got = np.asarray(model_first.predict(x.transpose(0, 3, 1, 2), verbose=0))
    np.testing.assert_allclose(got, expected, atol=1e-5)


# --------------------------------------------------------------------------- bad options


@pytest.mark.parametrize(
    "name, options, rule",
    [
        ("densenet121", {"growth_rate": 0}, r"growth_rate \(k\) must be a positive integer"),
        ("densenet121", {"growth_rate": 12.5}, r"growth_rate \(k\) must be a positive integer"),
        ("densenet121", {"compression": 0}, r"compression \(theta\) must be in \(0, 1\]"),
        ("densenet121", {"compression": 1.5}, r"compression \(theta\) must be in \(0, 1\]"),
        ("densenet121", {"block_config": ()}, "block_config must be a non-empty"),
        ("densenet121", {"block_config": (6, 0)}, "block_config must be a non-empty"),
        ("densenet121", {"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ("densenet40_k12_cifar", {"depth": 41}, r"depth must be 3n \+ 4"),
        ("densenet_bc100_k12_cifar", {"depth": 101}, r"depth must be 6n \+ 4 \(bottleneck\)"),
        ("densenet_bc100_k12_cifar", {"depth": 4}, r"depth must be 6n \+ 4"),
        ("densenet_bc100_k12_cifar", {"growth_rate": -12}, "growth_rate"),
        ("densenet_bc100_k12_cifar", {"bn_size": 0}, "bn_size"),
    ],
)
def test_bad_options_state_the_rule_before_building(name, options, rule):
    spec = get_spec(name)
    # img_input=None: any layer built before the check would fail with another error.
    with pytest.raises(ValueError, match=rule):
        spec.builder(
            None, include_top=True, classes=10, classifier_activation=None, pooling=None,
            **{**spec.options, **options},
        )
    with pytest.raises(ValueError, match=rule):
        kc.get_model(name, **options)
