"""GoogLeNet: torchvision parity (with and without the auxiliary heads), the paper's variant, the seeds' numbers."""

import math

import numpy as np
import pytest
from support.capabilities import needs_channels_first

import keras
import keras_cnnclassics as kc
from keras_cnnclassics.convert import state_dict_to_keras
from keras_cnnclassics.models.googlenet import INCEPTION_MODULES, stride16_size

from support.parity_tolerance import assert_logits_close, calibration_images, condition_batchnorm
from support.reference import torch_logits, torch_reference, torchvision_models


def _torch_params(**kwargs):
    model = torchvision_models().googlenet(weights=None, init_weights=False, **kwargs)
    return sum(p.numel() for p in model.parameters())


def test_counts_equal_live_torchvision_and_inference_drops_aux():
    model = kc.GoogLeNet()
    assert kc.count_params(model) == _torch_params(aux_logits=False) == 6_624_904
    assert not [layer.name for layer in model.layers if layer.name.startswith("aux")]
    assert model.output_shape == (None, 1000)
    # torchvision's "5x5" branch is a 3x3 conv (pytorch/vision#906).
    assert model.get_layer("inception3a_branch3_1_conv").kernel.shape == (3, 3, 16, 32)
    assert kc.count_params(kc.GoogLeNet(aux_logits=True)) == _torch_params(aux_logits=True) == 13_004_888


def test_paper_5x5_branch_adds_exactly_the_larger_kernels():
    extra = sum((25 - 9) * m.ch5x5red * m.ch5x5 for m in INCEPTION_MODULES.values())
    model = kc.GoogLeNet(branch3_kernel_size=5)
    assert kc.count_params(model) == 6_624_904 + extra == 7_005_832
    assert model.get_layer("inception3a_branch3_1_conv").kernel.shape == (5, 5, 16, 32)


def _aux_reference_outputs(reference, x):
    """torchvision's eval forward ignores aux1/aux2; run them on the 4a/4d maps directly."""
    import torch

    taps = {}
    hooks = [
        getattr(reference, name).register_forward_hook(
            lambda module, args, out, name=name: taps.__setitem__(name, out)
        )
        for name in ("inception4a", "inception4d")
    ]
    main = torch_logits(reference, x)
    for hook in hooks:
        hook.remove()
    with torch.no_grad():
        aux1 = reference.aux1(taps["inception4a"]).numpy()
        aux2 = reference.aux2(taps["inception4d"]).numpy()
    return [main, aux1, aux2]


@pytest.mark.parametrize("aux_logits, transform_input", [(False, False), (True, True)])
def test_logits_match_torchvision(aux_logits, transform_input):
    size = 96
    reference = torch_reference(
        "torchvision:googlenet", aux_logits=aux_logits, transform_input=transform_input,
        init_weights=False,
    )
    condition_batchnorm(reference, calibration_images(size))
    model = kc.GoogLeNet(
        input_shape=(size, size, 3), classifier_activation=None,
        aux_logits=aux_logits, transform_input=transform_input,
    )
    state_dict_to_keras(model, reference.state_dict())
    x = np.random.default_rng(0).normal(size=(2, size, size, 3)).astype("float32")
    got = model.predict(x, verbose=0)
    if aux_logits:
        expected = _aux_reference_outputs(reference, x)
        assert len(got) == 3
    else:
        got, expected = [got], [torch_logits(reference, x)]
    for g, e in zip(got, expected):
        g = np.asarray(g)
        assert g.shape == e.shape == (2, 1000)
        assert_logits_close(g, e)


def test_aux_training_with_paper_loss_weights_and_round_trip(tmp_path):
    model = kc.GoogLeNet(input_shape=(64, 64, 3), classes=5, aux_logits=True)
    assert model.output_names == ["predictions", "aux1_predictions", "aux2_predictions"]
    assert [tuple(o.shape) for o in model.outputs] == [(None, 5)] * 3
    model.compile(
        optimizer=keras.optimizers.SGD(1e-3),
        loss=["sparse_categorical_crossentropy"] * 3,
        loss_weights=[1.0, 0.3, 0.3],
    )
    x = np.random.default_rng(1).uniform(size=(2, 64, 64, 3)).astype("float32")
    y = np.array([1, 3])
    history = model.fit(x, [y, y, y], epochs=1, batch_size=2, verbose=0).history
    output_losses = [k for k in history if k.endswith("_loss")]
    assert len(output_losses) == 3, history.keys()
    total = history["loss"][0]
    parts = [history[k][0] for k in output_losses]
    assert all(np.isfinite(parts)) and np.isfinite(total)
    path = tmp_path / "googlenet_aux.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    for a, b in zip(model.predict(x, verbose=0), reloaded.predict(x, verbose=0)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


@needs_channels_first
def test_channels_first_matches_channels_last_with_aux():
    x = np.random.default_rng(2).normal(size=(1, 48, 48, 3)).astype("float32")
    last = kc.GoogLeNet(input_shape=(48, 48, 3), classes=4, aux_logits=True)
    expected = last.predict(x, verbose=0)
    keras.config.set_image_data_format("channels_first")
    first = kc.GoogLeNet(input_shape=(3, 48, 48), classes=4, aux_logits=True)
    first.set_weights(last.get_weights())
    got = first.predict(x.transpose(0, 3, 1, 2), verbose=0)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(np.asarray(g), np.asarray(e), atol=1e-5)


# Szegedy et al. 2014, Table 1, "params" column: weights only (no biases), K = 1024.
PAPER_TABLE_K = {
    "conv1": 2.7, "conv2": 112, "inception3a": 159, "inception3b": 380, "inception4a": 364,
    "inception4b": 437, "inception4c": 463, "inception4d": 580, "inception4e": 840,
    "inception5a": 1072, "inception5b": 1388, "fc": 1000,
}


def _kernel_weights_by_block(model):
    totals = {}
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        block = layer.name.split("_")[0].replace("conv3", "conv2")  # Table 1 merges conv2/conv3
        totals[block] = totals.get(block, 0) + math.prod(kernel.shape)
    return totals


def test_original_matches_paper_table_1():
    model = kc.GoogLeNetOriginal()
    assert kc.count_params(model) == 6_998_552
    assert not [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert {"norm1", "norm2"} <= {l.name for l in model.layers}
    assert model.get_layer("inception3a_branch3_1_conv").kernel.shape == (5, 5, 16, 32)
    blocks = _kernel_weights_by_block(model)
    # Rows the table states exactly (K = 1024): conv2 112K, 3a 159K (163,328), fc 1000K.
    assert blocks["conv2"] == 112 * 1024 and blocks["fc"] == 1000 * 1024
    assert round(blocks["inception3a"] / 1024) == 160 and int(blocks["inception3a"] / 1024) == 159
    # The table's total, 6,797.7K weights, is within 1 % of ours (6,990,272 = 6,826.4K);
    # per-row slips in the table (conv1 2.7K for 7*7*3*64 = 9.2K, 4c, 5a) make the rest.
    total_k = sum(blocks.values()) / 1024
    assert sum(blocks.values()) == 6_990_272
    assert abs(total_k - sum(PAPER_TABLE_K.values())) / sum(PAPER_TABLE_K.values()) < 0.01


def _weighted_depth(model, counted):
    """Longest input -> main output path, counting only layers of the ``counted`` types."""
    memo = {}

    def depth(tensor):
        layer = tensor._keras_history.operation
        if layer.name not in memo:
            inputs = layer._inbound_nodes[0].input_tensors
            memo[layer.name] = max((depth(t) for t in inputs), default=0) + isinstance(layer, counted)
        return memo[layer.name]

    return depth(model.outputs[0])


def test_seed_numbers_depth_bottleneck_and_global_pooling():
    """002/003 seeds: 22 layers with weights (27 with pooling), the 3a 5x5 cost, GAP vs FC."""
    model = kc.GoogLeNetOriginal()
    weighted = (keras.layers.Conv2D, keras.layers.Dense)
    pools = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D, keras.layers.GlobalAveragePooling2D)
    assert _weighted_depth(model, weighted) == 22
    assert _weighted_depth(model, weighted + pools) == 27

    def macs(name):
        layer = model.get_layer(name)
        h, w = layer.output.shape[1:3]
        return h * w * math.prod(layer.kernel.shape)

    assert tuple(model.get_layer("maxpool2").output.shape[1:]) == (28, 28, 192)
    reduce, conv5 = macs("inception3a_branch3_0_conv"), macs("inception3a_branch3_1_conv")
    assert (reduce, conv5, reduce + conv5) == (2_408_448, 10_035_200, 12_443_648)
    assert 28 * 28 * 192 * 5 * 5 * 32 == 120_422_400  # the same 5x5 conv without the reduction
    h, w, c = model.get_layer("inception5b").output.shape[1:]
    assert (h, w, c) == (7, 7, 1024)
    assert h * w * c * 1024 == 51_380_224  # an FC-1024 on it; GAP has no weights
    assert model.get_layer("fc").kernel.shape == (1024, 1000)


def test_feature_extractor_stages():
    extractor = kc.feature_extractor("googlenet", input_shape=(64, 64, 3))
    assert [tuple(o.shape[1:]) for o in extractor.outputs] == [
        (16, 16, 192), (8, 8, 480), (4, 4, 832), (2, 2, 1024)
    ]
    info = kc.feature_info("googlenet_original", input_shape=(64, 64, 3))
    assert [i["reduction"] for i in info] == [4, 8, 16, 32]


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("googlenet", {"aux_logits": True, "include_top": False}, "needs include_top=True"),
        ("googlenet", {"aux_logits": True, "input_shape": (None, None, 3)}, "fixed input height"),
        ("googlenet", {"aux_logits": "yes"}, "aux_logits must be True or False"),
        ("googlenet", {"transform_input": 1}, "transform_input must be True or False"),
        ("googlenet", {"branch3_kernel_size": 4}, "branch3_kernel_size must be 3"),
        ("googlenet_original", {"aux_logits": True, "input_shape": (64, 64, 3)}, "at least 79x79"),
    ],
)
def test_bad_options_raise_before_building(name, kwargs, message):
    keras.utils.clear_session()
    with pytest.raises(ValueError, match=message):
        kc.get_model(name, **kwargs)


def test_paper_aux_minimum_is_exact():
    assert stride16_size(79) == 5 and stride16_size(78) == 4
    model = kc.GoogLeNetOriginal(input_shape=(79, 79, 3), aux_logits=True, classes=3)
    assert [tuple(o.shape) for o in model.outputs] == [(None, 3)] * 3
