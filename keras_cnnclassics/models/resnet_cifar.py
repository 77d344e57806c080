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
against the papers' tables in ``tests/test_resnet.py``.
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
    allow_deep_graph,
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


def _register(name, constructor, params, paper, year, doc, heavy=None, notes="", **options):
    return register_resnet(
        name, constructor, builder=_resnet_cifar, paper=paper, year=year, params=params,
        reference=None, doc=doc, stage_layers=_stage_layers, input_shape=CIFAR_INPUT,
        default_classes=10, min_size=1, heavy=heavy, notes=notes, **options,
    )


def _he2015(depth, params, heavy=None):
    return _register(
        f"resnet{depth}", f"ResNet{depth}", params, RESNET_PAPER, 2015,
        f"Instantiates the CIFAR ResNet-{depth} (6n+2, option A shortcuts).",
        heavy=heavy, depth=depth,
    )


ResNet20 = _he2015(20, 269_722)
ResNet32 = _he2015(32, 464_154)
ResNet44 = _he2015(44, 658_586)
ResNet56 = _he2015(56, 853_018)
ResNet110 = _he2015(110, 1_727_962)
ResNet1202 = _he2015(1202, 19_421_274, heavy=True)

ResNet110StochasticDepth = _register(
    "resnet110_stochastic_depth", "ResNet110StochasticDepth", 1_727_962,
    STOCHASTIC_DEPTH_PAPER, 2016,
    "Instantiates the CIFAR ResNet-110 with stochastic depth (linear decay, p_L = 0.5).",
    depth=110, drop_path_rate=0.5,
)


def _preact(depth, params, heavy=None):
    return _register(
        f"preact_resnet{depth}", f"PreActResNet{depth}", params, PREACT_PAPER, 2016,
        f"Instantiates the CIFAR pre-activation ResNet-{depth} (9n+2 bottlenecks).",
        heavy=heavy, depth=depth, block="bottleneck", style="preact", shortcut="B",
    )


PreActResNet164 = _preact(164, 1_703_258)
PreActResNet1001 = _preact(1001, 10_327_706, heavy=True)


def _wrn(depth, k, params):
    return _register(
        f"wrn{depth}_{k}", f"WRN{depth}_{k}", params, WRN_PAPER, 2016,
        f"Instantiates the CIFAR Wide ResNet WRN-{depth}-{k} (dropout=0.3 for the paper's "
        "dropout variant).",
        depth=depth, depth_rule="wide", widen_factor=k, style="preact", shortcut="B",
    )


WRN16_8 = _wrn(16, 8, 10_961_370)
WRN28_10 = _wrn(28, 10, 36_479_194)
WRN40_4 = _wrn(40, 4, 8_949_210)


def _resnext29(cardinality, params):
    return _register(
        f"resnext29_{cardinality}x64d", f"ResNeXt29_{cardinality}x64d", params, RESNEXT_PAPER, 2016,
        f"Instantiates the CIFAR ResNeXt-29 ({cardinality}x64d).",
        depth=29, block="bottleneck", shortcut="B", widths=(64, 128, 256),
        groups=cardinality, width_per_group=64,
    )


ResNeXt29_8x64d = _resnext29(8, 34_426_698)
ResNeXt29_16x64d = _resnext29(16, 68_155_210)


# Reloading a saved ResNet-1202 (``keras.saving.load_model``) maps its graph without
# calling a builder: the limit must fit the deepest registered network on import.
allow_deep_graph(sum(_cifar_config(ResNet1202.spec.options).layers))
