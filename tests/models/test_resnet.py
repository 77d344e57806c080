"""The residual family: counts, parity with torchvision/timm, grouped convolutions,
shortcuts, stochastic depth, stride placement, CIFAR variants and bad options.

The generic tests (test_every_model, test_constructor_contract, test_features) already check every
registered model's count on every backend, forward/save/fit, min size and stage
outputs; this file checks what is specific to the residual family.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from support.capabilities import needs_channels_first

import keras
import keras_cnnclassics as kc
from keras_cnnclassics import blocks
from keras_cnnclassics.convert import state_dict_to_keras
from keras_cnnclassics.layers import DropPath, GroupedConv2D, ZeroPadChannels
from keras_cnnclassics.registry import all_specs, get_spec

from support.model_cases import heavy
from support.parity_tolerance import assert_logits_close, calibration_images, condition_batchnorm
from support.reference import require, torch_logits, torch_reference, torchvision_models

RESIDUAL = [s for s in all_specs() if s.family in ("resnet", "resnet_v2", "resnet_cifar")]

# The numbers stated in issue 4 (torchvision / timm counts, 1000 classes).
ISSUE_COUNTS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "wide_resnet50_2": 68_883_240,
    "wide_resnet101_2": 126_886_696,
    "resnext50_32x4d": 25_028_904,
    "resnext101_32x8d": 88_791_336,
    "seresnet50": 28_088_024,
}

# Models without a torchvision/timm counterpart: the paper's parameter count (millions,
# at the paper's precision), its source, and whether the paper counted BatchNorm's
# affine parameters. He et al. 2015 did (ResNet-1202: 19.42M with BN, 19.33M without);
# He et al. 2016 and Xie et al. 2017 did not (ResNet-1001: 10.18M without BN, 10.33M
# with; ResNeXt-29 16x64d: 68.05M without, 68.16M with). Every count below also
# reproduces the paper's figure exactly at its stated precision.
PAPER_COUNTS = {
    "resnet20": (0.27, "He et al. 2015, Table 6 (CIFAR-10)", True),
    "resnet32": (0.46, "He et al. 2015, Table 6", True),
    "resnet44": (0.66, "He et al. 2015, Table 6", True),
    "resnet56": (0.85, "He et al. 2015, Table 6", True),
    "resnet110": (1.7, "He et al. 2015, Table 6", True),
    "resnet1202": (19.4, "He et al. 2015, Table 6", True),
    "resnet110_stochastic_depth": (1.7, "Huang et al. 2016: ResNet-110 of He et al. 2015, Table 6", True),
    "preact_resnet164": (1.7, "He et al. 2016 (Identity Mappings), Table 4", False),
    "preact_resnet1001": (10.2, "He et al. 2016 (Identity Mappings), Table 4", False),
    "wrn16_8": (11.0, "Zagoruyko & Komodakis 2016, Table 5", True),
    "wrn28_10": (36.5, "Zagoruyko & Komodakis 2016, Table 5", True),
    "wrn40_4": (8.9, "Zagoruyko & Komodakis 2016, Table 5", True),
    "resnext29_8x64d": (34.4, "Xie et al. 2017, Table 7", False),
    "resnext29_16x64d": (68.1, "Xie et al. 2017, Table 7", False),
}


def _images(size, batch=2, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, size, size, 3)).astype("float32")


def _weights_without_bn(model):
    return sum(
        math.prod(v.shape)
        for layer in model.layers
        if not isinstance(layer, keras.layers.BatchNormalization)
        for v in layer.weights
    )


# ----------------------------------------------------------------------------------
# Parameter counts
# ----------------------------------------------------------------------------------


def test_issue_counts_are_the_registered_counts():
    for name, params in ISSUE_COUNTS.items():
        assert get_spec(name).params == params, name


def test_every_residual_model_has_a_reference_or_a_paper_count():
    with_reference = {s.name for s in RESIDUAL if s.reference}
    without = {s.name for s in RESIDUAL if not s.reference}
    assert without == set(PAPER_COUNTS)
    assert len(with_reference) == 23


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(s, id=s.name, marks=heavy(f"reference-count-{s.name}", s.name))
        for s in RESIDUAL
        if s.reference
    ],
)
def test_registered_count_equals_the_live_reference_model(spec):
    """Sampled: the torch reference does not depend on the Keras backend."""
    torch = require("torch")
    library, name = spec.reference.split(":")
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        if library == "torchvision":
            reference = getattr(torchvision_models(), name)(weights=None)
        else:
            torchvision_models()  # timm imports torchvision
            reference = require("timm").create_model(name, pretrained=False)
    assert sum(p.numel() for p in reference.parameters()) == spec.params


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=heavy(f"paper-count-{n}", n)) for n in PAPER_COUNTS]
)
def test_cifar_counts_reproduce_the_papers(name):
    """Sampled: backend-independent arithmetic (test_every_model checks the count on every backend)."""
    paper_millions, source, counts_bn = PAPER_COUNTS[name]
    model = kc.get_model(name)
    total = kc.count_params(model)
    assert total == get_spec(name).params
    counted = total if counts_bn else _weights_without_bn(model)
    decimals = len(str(paper_millions).split(".")[1])
    assert round(counted / 1e6, decimals) == paper_millions, (name, counted, source)
    assert model.output_shape == (None, 10)


def test_cifar_resnet_count_is_the_closed_form():
    """He et al. 2015 CIFAR ResNet with option A: 3x3 convs, BN (2 per channel), FC."""
    for n, name in ((3, "resnet20"), (18, "resnet110")):
        convs = 3 * 3 * 3 * 16 + sum(
            9 * c_in * c + 9 * c * c + (2 * n - 2) * 9 * c * c
            for c_in, c in ((16, 16), (16, 32), (32, 64))
        )
        bn = 2 * 16 + sum(2 * n * 2 * c for c in (16, 32, 64))
        assert get_spec(name).params == convs + bn + 64 * 10 + 10


# ----------------------------------------------------------------------------------
# Numerical parity with torchvision / timm (weights copied layer by layer)
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "resnet18",
        "seresnet18",
        "preact_resnet18",
        pytest.param("resnet50", marks=pytest.mark.heavy("parity-resnet50")),
        pytest.param("resnext50_32x4d", marks=pytest.mark.heavy("parity-resnext50_32x4d")),
        pytest.param("seresnet50", marks=pytest.mark.heavy("parity-seresnet50")),
        pytest.param("wide_resnet50_2", marks=pytest.mark.heavy("parity-wide_resnet50_2")),
    ],
)
def test_logits_match_reference(name):
    """Random weights, BN statistics estimated on other images, batch 2 at 64x64, per-logit tolerance."""
    spec = get_spec(name)
    reference = condition_batchnorm(torch_reference(spec.reference), calibration_images(64))
    model = kc.get_model(name, input_shape=(64, 64, 3), classifier_activation=None)
    state_dict_to_keras(model, reference.state_dict())
    x = _images(64)
    got = np.asarray(model.predict(x, verbose=0))
    expected = torch_logits(reference, x)
    assert_logits_close(got, expected)


def test_seresnext_parity_with_timm_legacy():
    """A grouped + SE network end to end (split-conv-concat on TensorFlow), at 32x32."""
    reference = condition_batchnorm(torch_reference("timm:legacy_seresnext26_32x4d"), calibration_images(32))
    model = kc.SEResNeXt26_32x4d(input_shape=(32, 32, 3), classifier_activation=None)
    state_dict_to_keras(model, reference.state_dict())
    x = _images(32)
    expected = torch_logits(reference, x)
    got = np.asarray(model.predict(x, verbose=0))
    assert_logits_close(got, expected)


# ----------------------------------------------------------------------------------
# Grouped convolution fallback
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data_format", ["channels_last", pytest.param("channels_first", marks=needs_channels_first)])
@pytest.mark.parametrize("strides, groups, use_bias", [(1, 4, True), (2, 8, False), (2, 2, True)])
def test_grouped_conv_fallback_equals_native_grouped_conv(data_format, strides, groups, use_bias):
    keras.config.set_image_data_format(data_format)
    shape = (9, 9, 16) if data_format == "channels_last" else (16, 9, 9)
    inputs = keras.Input(shape)
    kwargs = dict(strides=strides, padding="same", groups=groups, use_bias=use_bias,
                  bias_initializer="random_normal")
    native = keras.layers.Conv2D(24, 3, name="native", **kwargs)
    split = GroupedConv2D(24, 3, name="split", **kwargs)
    model = keras.Model(inputs, [native(inputs), split(inputs)])
    assert [tuple(v.shape) for v in split.weights] == [tuple(v.shape) for v in native.weights]
    assert tuple(split.kernel.shape) == (3, 3, 16 // groups, 24)
    split.set_weights(native.get_weights())
    x = np.random.default_rng(1).normal(size=(2, *shape)).astype("float32")
    a, b = (np.asarray(o) for o in model.predict(x, verbose=0))
    np.testing.assert_allclose(b, a, atol=1e-5)

    # Same layout as torch.nn.Conv2d(groups=g): group i sees only its input slice.
    torch = require("torch")
    conv = torch.nn.Conv2d(16, 24, 3, strides, 1, groups=groups, bias=use_bias)
    with torch.no_grad():
        kernel = keras.ops.convert_to_numpy(split.kernel)
        conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))))
        if use_bias:
            conv.bias.copy_(torch.from_numpy(keras.ops.convert_to_numpy(split.bias)))
        x_nchw = x if data_format == "channels_first" else x.transpose(0, 3, 1, 2)
        expected = conv(torch.from_numpy(np.ascontiguousarray(x_nchw))).numpy()
    got = b if data_format == "channels_first" else b.transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_grouped_conv_fallback_trains_and_round_trips(tmp_path):
    inputs = keras.Input((8, 8, 8))
    x = GroupedConv2D(8, 3, padding="same", groups=4, activation="relu", name="g")(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    before = keras.ops.convert_to_numpy(model.get_layer("g").kernel).copy()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    data = np.random.default_rng(2).normal(size=(4, 8, 8, 8)).astype("float32")
    model.fit(data, np.ones((4, 2), "float32"), epochs=1, verbose=0)
    assert not np.allclose(keras.ops.convert_to_numpy(model.get_layer("g").kernel), before)
    path = tmp_path / "g.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert isinstance(reloaded.get_layer("g"), GroupedConv2D)
    np.testing.assert_allclose(reloaded.predict(data, verbose=0), model.predict(data, verbose=0), atol=1e-6)


def test_grouped_layers_are_chosen_per_backend():
    model = kc.ResNeXt50_32x4d(include_top=False, input_shape=(32, 32, 3))
    grouped = [l for l in model.layers if isinstance(l, keras.layers.Conv2D) and l.groups > 1]
    assert len(grouped) == 16 and all(l.groups == 32 for l in grouped)
    fallback = keras.backend.backend() == "tensorflow"
    assert blocks.grouped_conv_fallback() is fallback
    assert all(isinstance(l, GroupedConv2D) is fallback for l in grouped)
    plain = [l for l in model.layers if isinstance(l, keras.layers.Conv2D) and l.groups == 1]
    assert plain and not any(isinstance(l, GroupedConv2D) for l in plain)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf2onnx converts TensorFlow graphs")
def test_grouped_conv_exports_to_onnx_on_tensorflow():
    """Keras' native grouped Conv2D runs under XLA on TensorFlow and tf2onnx emits an
    invalid graph for it; the split-conv-concat fallback converts and matches."""
    tf = require("tensorflow")
    tf2onnx = require("tf2onnx")
    ort = require("onnxruntime")
    inputs = keras.Input((8, 8, 8))
    x = blocks.conv2d(inputs, 16, 3, 2, 1, groups=4, name="grouped")
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    assert isinstance(model.get_layer("grouped"), GroupedConv2D)
    spec = (tf.TensorSpec((None, 8, 8, 8), tf.float32, name="x"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=17)
    assert "Conv" in {node.op_type for node in proto.graph.node}
    session = ort.InferenceSession(proto.SerializeToString())
    data = np.random.default_rng(3).normal(size=(2, 8, 8, 8)).astype("float32")
    got = session.run(None, {session.get_inputs()[0].name: data})[0]
    np.testing.assert_allclose(got, model.predict(data, verbose=0), atol=1e-5)


# ----------------------------------------------------------------------------------
# Structure: strides, shortcuts, SE, feature maps
# ----------------------------------------------------------------------------------


def _strides(model, name):
    return tuple(model.get_layer(name).strides)


def test_v1_strides_the_first_1x1_and_v15_the_3x3():
    v15 = kc.ResNet50(include_top=False, input_shape=(64, 64, 3))
    v1 = kc.ResNet50(include_top=False, input_shape=(64, 64, 3), stride_in_1x1=True)
    assert (_strides(v15, "layer2_0_conv1"), _strides(v15, "layer2_0_conv2")) == ((1, 1), (2, 2))
    assert (_strides(v1, "layer2_0_conv1"), _strides(v1, "layer2_0_conv2")) == ((2, 2), (1, 1))
    assert kc.count_params(v1) == kc.count_params(v15)
    assert v1.output_shape == v15.output_shape == (None, 2, 2, 2048)
    # timm's legacy SE-ResNet (Caffe) strides the 1x1, its SE-ResNeXt the 3x3.
    se = kc.SEResNet50(include_top=False, input_shape=(64, 64, 3))
    sx = kc.SEResNeXt50_32x4d(include_top=False, input_shape=(64, 64, 3))
    assert _strides(se, "layer3_0_conv1") == (2, 2) and _strides(sx, "layer3_0_conv2") == (2, 2)


def test_option_a_shortcut_subsamples_and_pads_zero_channels():
    model = kc.ResNet20(include_top=False, input_shape=(16, 16, 3))
    block_input = model.get_layer("layer1_2_out").output
    shortcut = model.get_layer("layer2_0_shortcut")
    assert isinstance(shortcut, ZeroPadChannels) and not shortcut.weights
    probe = keras.Model(model.inputs, [block_input, shortcut.output])
    x_in, x_short = (np.asarray(o) for o in probe.predict(_images(16), verbose=0))
    assert x_short.shape == (2, 8, 8, 32)
    np.testing.assert_array_equal(x_short[..., :16], x_in[:, ::2, ::2, :])
    np.testing.assert_array_equal(x_short[..., 16:], 0.0)
    # Option B on the same network adds two 1x1 projections + BN: 16*32+2*32 + 32*64+2*64.
    option_b = kc.ResNet20(shortcut="B")
    assert kc.count_params(option_b) - kc.count_params(kc.ResNet20()) == 512 + 64 + 2048 + 128
    assert option_b.get_layer("layer2_0_downsample_0").kernel.shape == (1, 1, 16, 32)


def test_squeeze_excitation_gates_every_block():
    model = kc.SEResNet18(include_top=False, input_shape=(32, 32, 3))
    gates = [l for l in model.layers if isinstance(l, keras.layers.Multiply)]
    assert len(gates) == 8
    assert tuple(model.get_layer("layer1_0_se_module_fc1").kernel.shape) == (1, 1, 64, 4)
    assert tuple(model.get_layer("layer4_1_se_module_fc2").kernel.shape) == (1, 1, 32, 512)
    r8 = kc.SEResNet18(include_top=False, input_shape=(32, 32, 3), se_reduction=8)
    assert tuple(r8.get_layer("layer1_0_se_module_fc1").kernel.shape) == (1, 1, 64, 8)


def test_imagenet_stage_outputs_have_strides_4_to_32():
    info = kc.feature_info("resnet50", input_shape=(64, 64, 3))
    assert [i["layer"] for i in info] == [f"layer{s}_{n}_out" for s, n in ((1, 2), (2, 3), (3, 5), (4, 2))]
    assert [i["reduction"] for i in info] == [4, 8, 16, 32]
    assert [i["channels"] for i in info] == [256, 512, 1024, 2048]
    extractor = kc.feature_extractor("preact_resnet18", input_shape=(64, 64, 3), out_indices=(1, 3))
    assert [tuple(o.shape[1:]) for o in extractor.outputs] == [(8, 8, 128), (2, 2, 512)]


def test_cifar_shapes_and_stage_outputs():
    model = kc.ResNet56(classes=100)
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 100)
    extractor = kc.feature_extractor("wrn16_8")
    assert [tuple(o.shape[1:]) for o in extractor.outputs] == [(32, 32, 128), (16, 16, 256), (8, 8, 512)]
    assert [tuple(o.shape[1:]) for o in kc.feature_extractor("resnet20").outputs] == [
        (32, 32, 16), (16, 16, 32), (8, 8, 64)
    ]
    out = kc.ResNet20(classes=10).predict(_images(32), verbose=0)
    assert out.shape == (2, 10)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)


def test_preact_ends_in_bn_relu_and_wrn_dropout_sits_between_the_convs():
    model = kc.PreActResNet18(include_top=False, input_shape=(32, 32, 3))
    assert model.layers[-1].name == "norm_act" and model.output_shape == (None, 1, 1, 512)
    wrn = kc.WRN16_8(dropout=0.3, include_top=False)
    dropout = wrn.get_layer("stages_0_blocks_0_dropout")
    assert dropout.rate == 0.3
    assert dropout.input is wrn.get_layer("stages_0_blocks_0_norm2_act").output
    assert wrn.get_layer("stages_0_blocks_0_conv2").input is dropout.output
    assert kc.count_params(wrn) == kc.count_params(kc.WRN16_8(include_top=False))


@needs_channels_first
def test_channels_first_matches_channels_last():
    """Grouped convs, SE, option A, pre-activation and DropPath in NCHW, same weights."""
    options = dict(style="preact", groups=2, se_reduction=4, drop_path_rate=0.2, classifier_activation=None)
    last = kc.ResNet20(input_shape=(16, 16, 3), **options)
    x = _images(16)
    expected = last.predict(x, verbose=0)
    keras.config.set_image_data_format("channels_first")
    first = kc.ResNet20(input_shape=(3, 16, 16), **options)
    first.set_weights(last.get_weights())
    np.testing.assert_allclose(first.predict(x.transpose(0, 3, 1, 2), verbose=0), expected, atol=1e-4)


# ----------------------------------------------------------------------------------
# Stochastic depth
# ----------------------------------------------------------------------------------


def test_drop_path_is_identity_at_inference_and_unbiased_in_training():
    layer = DropPath(0.25, seed=7)
    x = np.ones((4000, 2, 2, 3), "float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), x)
    y = keras.ops.convert_to_numpy(layer(x, training=True))
    per_sample = y.reshape(len(y), -1)
    # Whole samples are dropped or kept; survivors are scaled by 1 / (1 - rate).
    assert np.all(per_sample.min(axis=1) == per_sample.max(axis=1))
    values = per_sample[:, 0]
    assert np.all((values == 0.0) | np.isclose(values, 1 / 0.75, rtol=1e-6))
    kept = (per_sample[:, 0] > 0).mean()
    assert abs(kept - 0.75) < 4 * math.sqrt(0.75 * 0.25 / len(y))  # 4 sigma
    assert abs(y.mean() - 1.0) < 4 * math.sqrt(0.25 / 0.75 / len(y))
    restored = DropPath.from_config(layer.get_config())
    assert (restored.rate, restored.seed) == (0.25, 7)


def test_drop_path_rates_decay_linearly_to_p_l():
    model = kc.ResNet110StochasticDepth(include_top=False)
    rates = [l.rate for l in model.layers if isinstance(l, DropPath)]
    assert len(rates) == 54
    np.testing.assert_allclose(rates, [0.5 * l / 54 for l in range(1, 55)])
    assert kc.count_params(model) == kc.count_params(kc.ResNet110(include_top=False))


def test_drop_path_model_predicts_like_the_plain_model(tmp_path):
    plain = kc.ResNet20(classifier_activation=None)
    dropped = kc.ResNet20(drop_path_rate=0.4, classifier_activation=None)
    dropped.set_weights(plain.get_weights())
    x = _images(32)
    expected = plain.predict(x, verbose=0)
    np.testing.assert_allclose(dropped.predict(x, verbose=0), expected, atol=1e-5)
    path = tmp_path / "sd.keras"
    dropped.save(path)
    reloaded = keras.saving.load_model(path)
    assert [l.rate for l in reloaded.layers if isinstance(l, DropPath)][-1] == pytest.approx(0.4)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), expected, atol=1e-5)


def test_drop_path_changes_training_outputs():
    """Same weights, both in training mode (batch statistics): only DropPath differs.
    With p_L = 0.9 the chance that no branch of either sample is dropped is ~1e-7."""
    plain = kc.ResNet20(classifier_activation=None)
    dropped = kc.ResNet20(drop_path_rate=0.9, classifier_activation=None)
    dropped.set_weights(plain.get_weights())
    x = _images(32)
    a = keras.ops.convert_to_numpy(plain(x, training=True))
    b = keras.ops.convert_to_numpy(dropped(x, training=True))
    assert np.all(np.isfinite(b)) and not np.allclose(a, b, atol=1e-4)


# ----------------------------------------------------------------------------------
# Bad options
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "constructor, kwargs, message",
    [
        (kc.ResNet20, {"depth": 21}, r"6n\+2"),
        (kc.ResNet20, {"depth": 2}, r"6n\+2"),
        (kc.PreActResNet164, {"depth": 165}, r"9n\+2"),
        (kc.WRN28_10, {"depth": 27}, r"\(depth - 4\) / 6"),
        (kc.ResNet50, {"depth": 42}, "depth must be one of"),
        (kc.ResNet18, {"groups": 3}, "groups=3 must divide"),
        (kc.ResNeXt50_32x4d, {"groups": 0}, "cardinality"),
        (kc.ResNet18, {"width_per_group": 32}, "widen_factor"),
        (kc.ResNet50, {"widen_factor": -2}, "widen_factor must be a positive integer"),
        (kc.ResNet20, {"widths": (16, -32, 64)}, "widths must be"),
        (kc.ResNet20, {"widths": (64, 32, 16)}, "zero-padding shortcut"),
        (kc.ResNet50, {"drop_path_rate": 1.0}, r"drop_path_rate must be in \[0, 1\)"),
        (kc.ResNet50, {"drop_path_rate": -0.1}, r"drop_path_rate must be in \[0, 1\)"),
        (kc.WRN16_8, {"dropout": 1.5}, r"dropout must be in \[0, 1\)"),
        (kc.ResNet18, {"shortcut": "D"}, "shortcut must be"),
        (kc.SEResNet18, {"se_reduction": 0}, "se_reduction"),
        (kc.SEResNet18, {"se_reduction": 128}, "channels // r"),
        (kc.ResNet18, {"style": "caffe"}, "style must be"),
    ],
)
def test_bad_options_state_the_rule_before_building(constructor, kwargs, message, monkeypatch):
    from keras_cnnclassics.models import resnet

    def no_layers(*args, **kwargs):
        raise AssertionError("a layer was built before the options were checked")

    monkeypatch.setattr(resnet, "conv2d", no_layers)
    with pytest.raises(ValueError, match=message):
        constructor(**kwargs)


def test_the_deepest_graph_builds_and_leaves_the_recursion_limit_alone():
    """Keras maps a functional graph recursively, one frame per chained layer, and
    ResNet-1202 chains 4,213 layers: building raises Python's recursion limit only
    while Keras maps the graph, then restores it (no global side effect)."""
    import sys

    from keras_cnnclassics.profiler import shapes_only

    before = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)  # Python's default, far below the graph's depth
    try:
        with shapes_only():
            model = get_spec("resnet1202").build()
        assert len(model.layers) > 4000
        assert sys.getrecursionlimit() == 1000
    finally:
        sys.setrecursionlimit(before)
