"""The residual family on CIFAR (32x32 inputs, 10 classes by default).

Same blocks as :mod:`keras_cnnclassics.models.resnet`, with a 3x3 stem and three
stages (32x32, 16x16, 8x8 maps):

* ResNet-20/32/44/56/110/1202 -- He et al. 2015, sec. 4.2: 6n+2 layers of basic
  blocks, widths 16/32/64, parameter-free zero-padding shortcuts (option A).
* ResNet-110 with stochastic depth -- Huang et al. 2016: the same network with
  linearly decaying survival, p_L = 0.5 (``drop_path_rate=0.5``).
* Pre-activation ResNet-164/1001 -- He et al. 2016: 9n+2 layers of
  pre-activation bottlenecks (outputs 64/128/256), projection shortcuts.
* Wide ResNet WRN-d-k -- Zagoruyko and Komodakis 2016: pre-activation basic
  blocks of widths 16k/32k/64k, (d - 4) / 6 blocks per stage, 1x1 projections,
  optional dropout between the two convolutions.
* ResNeXt-29 (8x64d, 16x64d) -- Xie et al. 2017, sec. 5.3: a 64-filter 3x3
  stem, 3 bottlenecks per stage with grouped 3x3s (cardinality x 64 channels,
  doubling per stage), outputs 256/512/1024.

None of these has a torchvision/timm counterpart; parameter counts are checked
against the papers' tables in ``tests/models/test_resnet.py``.
"""

from __future__ import annotations

import numbers

from keras_cnnclassics.models.resnet import (
    PREACT_PAPER,
    RESNET_PAPER,
    RESNEXT_PAPER,
    STOCHASTIC_DEPTH_PAPER,
    WRN_PAPER,
    ResNetConfig,
    build_resnet,
    register_resnet,
)
from keras_cnnclassics.preprocessing import normalize

__all__ = [
    "ResNet20", "ResNet32", "ResNet44", "ResNet56", "ResNet110", "ResNet1202",
    "ResNet110StochasticDepth", "PreActResNet164", "PreActResNet1001",
    "WRN16_8", "WRN28_10", "WRN40_4", "ResNeXt29_8x64d", "ResNeXt29_16x64d",
    "preprocess_input",
]

# Per-channel statistics of the CIFAR-10 training set (in [0, 1]).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

CIFAR_INPUT = (32, 32, 3)
CIFAR_WIDTHS = (16, 32, 64)
# layers per block and the constant layers (stem conv + FC, + 2 projections in WRN's count).
DEPTH_RULES = {
    "basic": (6, 2, "6n+2", "20, 32, 44, 56, 110, 1202"),
    "bottleneck": (9, 2, "9n+2", "29, 164, 1001"),
    "wide": (6, 4, "6n+4, i.e. (depth - 4) / 6 blocks per stage", "16, 28, 40"),
}


def preprocess_input(x, data_format=None):
    """CIFAR-10 normalisation: ``(x / 255 - mean) / std`` per channel (RGB)."""
    del data_format
    return normalize(x, CIFAR10_MEAN, CIFAR10_STD)


def blocks_per_stage(depth, rule, model):
    """n of a ``rule`` depth (see :data:`DEPTH_RULES`); ValueError stating the rule."""
    per_layer, constant, formula, examples = DEPTH_RULES[rule]
    ok = (
        isinstance(depth, numbers.Integral) and not isinstance(depth, bool)
        and depth > constant and (depth - constant) % per_layer == 0
    )
    if not ok:
        raise ValueError(
            f"{model}: depth must be {formula} with n >= 1 blocks per stage "
            f"(e.g. {examples}); got {depth!r}."
        )
    return (depth - constant) // per_layer


def _stage_layers(options):
    return _cifar_config(options).stage_output_names()


def _cifar_config(options):
    """The :class:`ResNetConfig` of CIFAR registry options (depth rule applied)."""
    options = dict(options)
    depth, block = options.pop("depth"), options.pop("block", "basic")
    rule = options.pop("depth_rule", block)
    n = blocks_per_stage(depth, rule, "resnet_cifar")
    options.setdefault("widths", CIFAR_WIDTHS)
    options.setdefault("stem_width", options["widths"][0])
    return ResNetConfig(block=block, layers=(n,) * len(options["widths"]), stem="cifar", **options)


def _resnet_cifar(
    img_input, *, include_top, classes, classifier_activation, pooling, depth,
    block="basic", style="torchvision", shortcut="A", widths=CIFAR_WIDTHS, stem_width=None,
    groups=1, width_per_group=64, widen_factor=1, se_reduction=None, drop_path_rate=0.0,
    dropout=0.0, depth_rule=None,
):
    if depth_rule not in (None, *DEPTH_RULES):
        raise ValueError(f"resnet_cifar: depth_rule must be one of {tuple(DEPTH_RULES)}; got {depth_rule!r}.")
    options = dict(
        block=block, style=style, shortcut=shortcut, widths=tuple(widths), groups=groups,
        width_per_group=width_per_group, widen_factor=widen_factor, se_reduction=se_reduction,
        drop_path_rate=drop_path_rate, dropout=dropout, depth=depth,
    )
    if depth_rule is not None:
        options["depth_rule"] = depth_rule
    if stem_width is not None:
        options["stem_width"] = stem_width
    if block not in DEPTH_RULES or block == "wide":
        raise ValueError(f"resnet_cifar: block must be 'basic' or 'bottleneck'; got {block!r}.")
    cfg = _cifar_config(options)
    return build_resnet(img_input, cfg, include_top, classes, classifier_activation, pooling, "resnet_cifar")


def _register(name, params, paper, year, heavy=None, notes="", **options):
    """``register_resnet`` for a CIFAR network (32x32, 10 classes, no torch reference)."""
    return register_resnet(
        name, builder=_resnet_cifar, family="resnet_cifar", preprocess=preprocess_input, paper=paper,
        year=year, params=params, reference=None, stage_layers=_stage_layers, input_shape=CIFAR_INPUT,
        default_classes=10, min_size=1, heavy=heavy, notes=notes, **options,
    )


def _he2015(depth, params, heavy=None):
    """He et al. 2015, sec. 4.2: 6n+2 layers, option A shortcuts."""
    return _register(f"resnet{depth}", params, RESNET_PAPER, 2015, heavy=heavy, depth=depth)


@_he2015(20, 269_722)
def ResNet20(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=10, classifier_activation="softmax", name=None, **kwargs):
    """The CIFAR ResNet-20 (6n+2 layers, n = 3; option A shortcuts)."""
    return ResNet20.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                               classifier_activation, name, **kwargs)


@_he2015(32, 464_154)
def ResNet32(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=10, classifier_activation="softmax", name=None, **kwargs):
    """The CIFAR ResNet-32 (6n+2 layers, n = 5; option A shortcuts)."""
    return ResNet32.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                               classifier_activation, name, **kwargs)


@_he2015(44, 658_586)
def ResNet44(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=10, classifier_activation="softmax", name=None, **kwargs):
    """The CIFAR ResNet-44 (6n+2 layers, n = 7; option A shortcuts)."""
    return ResNet44.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                               classifier_activation, name, **kwargs)


@_he2015(56, 853_018)
def ResNet56(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=10, classifier_activation="softmax", name=None, **kwargs):
    """The CIFAR ResNet-56 (6n+2 layers, n = 9; option A shortcuts)."""
    return ResNet56.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                               classifier_activation, name, **kwargs)


@_he2015(110, 1_727_962)
def ResNet110(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
              classes=10, classifier_activation="softmax", name=None, **kwargs):
    """The CIFAR ResNet-110 (6n+2 layers, n = 18; option A shortcuts)."""
    return ResNet110.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                classifier_activation, name, **kwargs)


@_he2015(1202, 19_421_274, heavy=True)
def ResNet1202(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
               classes=10, classifier_activation="softmax", name=None, **kwargs):
    """The CIFAR ResNet-1202 (6n+2 layers, n = 200; option A shortcuts)."""
    return ResNet1202.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                 classifier_activation, name, **kwargs)


@_register("resnet110_stochastic_depth", 1_727_962, STOCHASTIC_DEPTH_PAPER, 2016, depth=110,
           drop_path_rate=0.5)
def ResNet110StochasticDepth(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                             classes=10, classifier_activation="softmax", name=None, **kwargs):
    """The CIFAR ResNet-110 with stochastic depth (linear decay, p_L = 0.5)."""
    return ResNet110StochasticDepth.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                               classifier_activation, name, **kwargs)


def _preact(depth, params, heavy=None):
    """He et al. 2016: 9n+2 layers of pre-activation bottlenecks."""
    return _register(
        f"preact_resnet{depth}", params, PREACT_PAPER, 2016, heavy=heavy, depth=depth, block="bottleneck",
        style="preact", shortcut="B",
    )


@_preact(164, 1_703_258)
def PreActResNet164(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                    classes=10, classifier_activation="softmax", name=None, **kwargs):
    """The CIFAR pre-activation ResNet-164 (9n+2 bottleneck layers, n = 18)."""
    return PreActResNet164.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                      classifier_activation, name, **kwargs)


@_preact(1001, 10_327_706, heavy=True)
def PreActResNet1001(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                     classes=10, classifier_activation="softmax", name=None, **kwargs):
    """The CIFAR pre-activation ResNet-1001 (9n+2 bottleneck layers, n = 111)."""
    return PreActResNet1001.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                       classifier_activation, name, **kwargs)


def _wrn(depth, k, params):
    """Zagoruyko and Komodakis 2016: WRN-d-k, pre-activation basic blocks 16k/32k/64k wide."""
    return _register(
        f"wrn{depth}_{k}", params, WRN_PAPER, 2016, depth=depth, depth_rule="wide", widen_factor=k,
        style="preact", shortcut="B",
    )


@_wrn(16, 8, 10_961_370)
def WRN16_8(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
            classes=10, classifier_activation="softmax", name=None, **kwargs):
    """The CIFAR Wide ResNet WRN-16-8 (``dropout=0.3`` for the paper's dropout variant)."""
    return WRN16_8.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                              classifier_activation, name, **kwargs)


@_wrn(28, 10, 36_479_194)
def WRN28_10(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=10, classifier_activation="softmax", name=None, **kwargs):
    """The CIFAR Wide ResNet WRN-28-10 (``dropout=0.3`` for the paper's dropout variant)."""
    return WRN28_10.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                               classifier_activation, name, **kwargs)


@_wrn(40, 4, 8_949_210)
def WRN40_4(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
            classes=10, classifier_activation="softmax", name=None, **kwargs):
    """The CIFAR Wide ResNet WRN-40-4 (``dropout=0.3`` for the paper's dropout variant)."""
    return WRN40_4.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                              classifier_activation, name, **kwargs)


def _resnext29(cardinality, params):
    """Xie et al. 2017, sec. 5.3: ResNeXt-29 of ``cardinality`` x 64d."""
    return _register(
        f"resnext29_{cardinality}x64d", params, RESNEXT_PAPER, 2016, depth=29, block="bottleneck",
        shortcut="B", widths=(64, 128, 256), groups=cardinality, width_per_group=64,
    )


@_resnext29(8, 34_426_698)
def ResNeXt29_8x64d(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                    classes=10, classifier_activation="softmax", name=None, **kwargs):
    """The CIFAR ResNeXt-29 (8x64d)."""
    return ResNeXt29_8x64d.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                      classifier_activation, name, **kwargs)


@_resnext29(16, 68_155_210)
def ResNeXt29_16x64d(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                     classes=10, classifier_activation="softmax", name=None, **kwargs):
    """The CIFAR ResNeXt-29 (16x64d)."""
    return ResNeXt29_16x64d.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                       classifier_activation, name, **kwargs)
