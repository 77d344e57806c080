"""The residual family: ResNet and its descendants, from one set of blocks.

* ResNet-18/34/50/101/152 -- K. He, X. Zhang, S. Ren, J. Sun. Deep Residual Learning
  for Image Recognition. CVPR 2016 (arXiv:1512.03385, 2015). Basic (two 3x3) and
  bottleneck (1x1-3x3-1x1) residual units, identity shortcuts, 1x1 projections
  where the shape changes (option B); torchvision puts the bottleneck's stride on
  the 3x3 ("v1.5", the default here), the paper on the first 1x1
  (``stride_in_1x1=True``).
* Pre-activation ResNet -- K. He, X. Zhang, S. Ren, J. Sun. Identity Mappings in
  Deep Residual Networks. ECCV 2016 (arXiv:1603.05027): BN-ReLU-conv units, a
  clean identity path, one BN-ReLU after the last unit (``style="preact"``,
  layer names of timm's ``ResNetV2``); the ImageNet models are registered in
  :mod:`keras_cnnclassics.models.resnet_v2`, which has their ``preprocess_input``.
* Wide ResNet -- S. Zagoruyko, N. Komodakis. Wide Residual Networks. BMVC 2016
  (arXiv:1605.07146): ``widen_factor`` widens the 3x3 convolutions.
* ResNeXt -- S. Xie, R. Girshick, P. Dollar, Z. Tu, K. He. Aggregated Residual
  Transformations for Deep Neural Networks. CVPR 2017 (arXiv:1611.05431): the
  bottleneck's 3x3 is a grouped convolution of ``groups`` paths (cardinality)
  ``width_per_group`` channels wide.
* SE-ResNet/SE-ResNeXt -- J. Hu, L. Shen, G. Sun. Squeeze-and-Excitation Networks.
  CVPR 2018 (arXiv:1709.01507): global pooling, a 1x1 bottleneck of ratio
  ``se_reduction`` and a sigmoid gate multiply the residual before the sum
  (``style="legacy_senet"``: timm's ``legacy_seresnet*`` names and quirks).
* Stochastic depth -- G. Huang, Y. Sun, Z. Liu, D. Sedra, K. Weinberger. Deep
  Networks with Stochastic Depth. ECCV 2016 (arXiv:1603.09382): ``drop_path_rate``
  drops whole residual branches per sample, linearly more with depth.

Every variant is a :class:`ResNetConfig` handed to :func:`resnet_backbone`; the
CIFAR networks (ResNet-20..1202, ResNet-164/1001, WRN-d-k, ResNeXt-29) are in
:mod:`keras_cnnclassics.models.resnet_cifar` and use the same blocks. Layer names
are the reference implementation's module paths with "." written as "_"
(torchvision ``layer3.2.conv2`` -> ``layer3_2_conv2``), so torchvision/timm
checkpoints convert with ``state_dict_to_keras``.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import NamedTuple

from keras import layers

from keras_cnnclassics.blocks import (
    add,
    batch_norm,
    channels_of,
    classifier_output,
    conv2d,
    dense,
    global_pool,
    max_pool2d,
    relu,
)
from keras_cnnclassics.initializers import host_he_normal
from keras_cnnclassics.layers import DropPath, ZeroPadChannels
from keras_cnnclassics.preprocessing import torch_preprocess_input as preprocess_input
from keras_cnnclassics.registry import register_model

__all__ = [
    "ResNet18", "ResNet34", "ResNet50", "ResNet101", "ResNet152",
    "WideResNet50_2", "WideResNet101_2",
    "ResNeXt50_32x4d", "ResNeXt101_32x8d", "ResNeXt101_64x4d",
    "SEResNet18", "SEResNet34", "SEResNet50", "SEResNet101", "SEResNet152",
    "SEResNeXt26_32x4d", "SEResNeXt50_32x4d", "SEResNeXt101_32x4d",
    "preprocess_input",
]

RESNET_PAPER = (
    "K. He, X. Zhang, S. Ren, J. Sun. Deep Residual Learning for Image Recognition. "
    "CVPR 2016 (arXiv:1512.03385, 2015)."
)
PREACT_PAPER = (
    "K. He, X. Zhang, S. Ren, J. Sun. Identity Mappings in Deep Residual Networks. "
    "ECCV 2016 (arXiv:1603.05027)."
)
WRN_PAPER = "S. Zagoruyko, N. Komodakis. Wide Residual Networks. BMVC 2016 (arXiv:1605.07146)."
RESNEXT_PAPER = (
    "S. Xie, R. Girshick, P. Dollar, Z. Tu, K. He. Aggregated Residual Transformations "
    "for Deep Neural Networks. CVPR 2017 (arXiv:1611.05431)."
)
SENET_PAPER = (
    "J. Hu, L. Shen, G. Sun. Squeeze-and-Excitation Networks. CVPR 2018 (arXiv:1709.01507)."
)
STOCHASTIC_DEPTH_PAPER = (
    "G. Huang, Y. Sun, Z. Liu, D. Sedra, K. Weinberger. Deep Networks with Stochastic "
    "Depth. ECCV 2016 (arXiv:1603.09382)."
)

BOTTLENECK_EXPANSION = 4


# ----------------------------------------------------------------------------------
# Styles: activation order, layer names and the quirks of each reference code
# ----------------------------------------------------------------------------------


class Style(NamedTuple):
    """Unit order and module names of one reference implementation.

    ``block`` is formatted with ``stage`` (1-based), ``stage0`` (0-based) and
    ``index``; ``norm`` with the conv number. ``legacy_quirks``: timm's legacy
    SENet pools the stem in ceil mode without padding and applies a ReLU before
    the SE gate of its basic blocks.
    """

    preact: bool
    stem_conv: str
    stem_norm: str
    stem_pool: str
    block: str
    norm: str
    projection: tuple  # (conv name, BN name or None) inside a block
    final_norm: str
    fc: str
    legacy_quirks: bool = False


STYLES = {
    "torchvision": Style(
        False, "conv1", "bn1", "maxpool", "layer{stage}_{index}", "bn{}",
        ("downsample_0", "downsample_1"), "", "fc",
    ),
    "legacy_senet": Style(
        False, "layer0_conv1", "layer0_bn1", "pool0", "layer{stage}_{index}", "bn{}",
        ("downsample_0", "downsample_1"), "", "last_linear", legacy_quirks=True,
    ),
    "preact": Style(
        True, "stem_conv", "", "stem_pool", "stages_{stage0}_blocks_{index}", "norm{}",
        ("downsample_conv", None), "norm", "head_fc",
    ),
}
SHORTCUTS = ("A", "B", "C")
BLOCKS = ("basic", "bottleneck")
STEMS = ("imagenet", "cifar")


# ----------------------------------------------------------------------------------
# Configuration and its rules
# ----------------------------------------------------------------------------------


class ConvSpec(NamedTuple):
    """One convolution of a residual branch."""

    filters: int
    kernel: int
    stride: int = 1
    groups: int = 1


def _is_int(value, minimum=1):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum


def _is_rate(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and 0.0 <= value < 1.0


@dataclasses.dataclass(frozen=True)
class ResNetConfig:
    """Everything that distinguishes one residual network from another.

    Attributes:
        block: ``"basic"`` (two 3x3) or ``"bottleneck"`` (1x1-3x3-1x1, x4 output).
        layers: residual blocks per stage; the first stage keeps the resolution,
            each later one halves it.
        widths: base width ("planes") of each stage.
        stem: ``"imagenet"`` (7x7/2 conv and 3x3/2 max pool) or ``"cifar"`` (3x3 conv).
        stem_width: filters of the stem convolution.
        style: ``"torchvision"``, ``"legacy_senet"`` or ``"preact"`` (see :data:`STYLES`).
        groups: cardinality C of the 3x3 convolutions (ResNeXt).
        width_per_group: channels per group d of a bottleneck's 3x3 at width 64;
            the 3x3 width is ``int(planes * widen_factor * d / 64) * C`` (torchvision).
        widen_factor: k of Wide ResNet: multiplies the 3x3 convolutions' width (and a
            basic block's output).
        se_reduction: None, or the squeeze-and-excitation reduction ratio r.
        shortcut: ``"A"`` zero-padding identity, ``"B"`` projection where the shape
            changes, ``"C"`` projection everywhere (He et al. 2015, sec. 4.1).
        stride_in_1x1: bottleneck stride on the first 1x1 (paper, "v1") instead of
            the 3x3 (torchvision, "v1.5").
        drop_path_rate: stochastic depth: block l of L drops its branch with
            probability ``l / L * drop_path_rate`` (Huang et al. 2016, eq. 4).
        dropout: dropout before each block's last convolution (Wide ResNet).
    """

    block: str
    layers: tuple
    widths: tuple = (64, 128, 256, 512)
    stem: str = "imagenet"
    stem_width: int = 64
    style: str = "torchvision"
    groups: int = 1
    width_per_group: int = 64
    widen_factor: int = 1
    se_reduction: int | None = None
    shortcut: str = "B"
    stride_in_1x1: bool = False
    drop_path_rate: float = 0.0
    dropout: float = 0.0

    def validate(self, model="resnet"):
        """Raise ValueError stating the broken rule (called before any layer is built)."""
        rules = [
            (self.block in BLOCKS, f"block must be one of {BLOCKS}; got {self.block!r}"),
            (self.style in STYLES, f"style must be one of {tuple(STYLES)}; got {self.style!r}"),
            (self.stem in STEMS, f"stem must be one of {STEMS}; got {self.stem!r}"),
            (self.shortcut in SHORTCUTS,
             f"shortcut must be 'A' (zero-padding), 'B' (projection where the shape changes) "
             f"or 'C' (projection everywhere); got {self.shortcut!r}"),
            (isinstance(self.layers, (tuple, list)) and len(self.layers) > 0
             and all(_is_int(n) for n in self.layers),
             f"layers must be positive block counts per stage; got {self.layers!r}"),
            (isinstance(self.widths, (tuple, list)) and all(_is_int(w) for w in self.widths)
             and len(self.widths) == len(self.layers),
             f"widths must be one positive integer per stage ({len(self.layers)}); "
             f"got {self.widths!r}"),
            (_is_int(self.stem_width), f"stem_width must be a positive integer; got {self.stem_width!r}"),
            (_is_int(self.groups), f"groups (cardinality) must be a positive integer; got {self.groups!r}"),
            (_is_int(self.width_per_group),
             f"width_per_group must be a positive integer; got {self.width_per_group!r}"),
            (_is_int(self.widen_factor),
             f"widen_factor must be a positive integer; got {self.widen_factor!r}"),
            (self.se_reduction is None or _is_int(self.se_reduction),
             f"se_reduction must be None or a positive integer; got {self.se_reduction!r}"),
            (_is_rate(self.drop_path_rate),
             f"drop_path_rate must be in [0, 1); got {self.drop_path_rate!r}"),
            (_is_rate(self.dropout), f"dropout must be in [0, 1); got {self.dropout!r}"),
            (isinstance(self.stride_in_1x1, bool),
             f"stride_in_1x1 must be True or False; got {self.stride_in_1x1!r}"),
        ]
        for ok, rule in rules:
            if not ok:
                raise ValueError(f"{model}: {rule}.")
        self._validate_widths(model)

    def _validate_widths(self, model):
        if self.block == "basic" and self.width_per_group != 64:
            raise ValueError(
                f"{model}: width_per_group is the bottleneck's per-group width (ResNeXt); "
                "basic blocks are widened with widen_factor instead."
            )
        in_channels = self.stem_width
        for stage in range(len(self.layers)):
            inner, out = self.inner_width(stage), self.out_channels(stage)
            if inner < 1:
                raise ValueError(
                    f"{model}: stage {stage + 1} would have a {inner}-channel 3x3 convolution "
                    "(int(width * widen_factor * width_per_group / 64) * groups must be >= 1)."
                )
            grouped = (inner,) if self.block == "bottleneck" else (in_channels, inner)
            for channels in grouped:
                if channels % self.groups:
                    raise ValueError(
                        f"{model}: groups={self.groups} must divide the channels of every "
                        f"grouped convolution; stage {stage + 1} has {channels}."
                    )
            if self.shortcut == "A" and out < in_channels:
                raise ValueError(
                    f"{model}: the zero-padding shortcut (A) cannot reduce {in_channels} to "
                    f"{out} channels; use shortcut='B'."
                )
            if self.se_reduction and out // self.se_reduction < 1:
                raise ValueError(
                    f"{model}: se_reduction={self.se_reduction} leaves no channels in the SE "
                    f"bottleneck of a {out}-channel stage (needs channels // r >= 1)."
                )
            in_channels = out

    def inner_width(self, stage):
        """Width of the stage's 3x3 convolution(s)."""
        planes = self.widths[stage] * self.widen_factor
        if self.block == "basic":
            return planes
        return int(planes * self.width_per_group / 64) * self.groups

    def out_channels(self, stage):
        """Channels at the output of every block of ``stage``."""
        if self.block == "basic":
            return self.widths[stage] * self.widen_factor
        return self.widths[stage] * BOTTLENECK_EXPANSION

    def branch(self, stage, stride):
        """The residual branch's convolutions for a block of ``stage``."""
        inner, out = self.inner_width(stage), self.out_channels(stage)
        if self.block == "basic":
            return [ConvSpec(inner, 3, stride, self.groups), ConvSpec(out, 3, 1, self.groups)]
        s1, s3 = (stride, 1) if self.stride_in_1x1 else (1, stride)
        return [ConvSpec(inner, 1, s1), ConvSpec(inner, 3, s3, self.groups), ConvSpec(out, 1)]

    def drop_path_rates(self):
        """Per-stage lists of drop rates: linear decay ``l / L * drop_path_rate``."""
        total, rates, seen = sum(self.layers), [], 0
        for count in self.layers:
            rates.append([self.drop_path_rate * (seen + i + 1) / total for i in range(count)])
            seen += count
        return rates

    def stage_output_names(self):
        """Layer names that end each stage (for ``feature_extractor``)."""
        style = STYLES[self.style]
        return tuple(
            block_prefix(style, stage, count - 1) + "_out" for stage, count in enumerate(self.layers)
        )


def block_prefix(style, stage, index):
    return style.block.format(stage=stage + 1, stage0=stage, index=index)


# ----------------------------------------------------------------------------------
# Blocks
# ----------------------------------------------------------------------------------


def conv(x, *args, **kwargs):
    """:func:`blocks.conv2d` with He-normal kernels drawn on the host: on JAX each
    distinct kernel shape would otherwise compile an initialiser (building
    ResNet-50 + ResNeXt-50 + WRN-16-8 + ResNet-20 took 29 s of CPU, 4.8 s this way)."""
    return conv2d(x, *args, kernel_initializer=host_he_normal(), **kwargs)


def bn_relu(x, name):
    """BatchNorm + ReLU (timm's ``BatchNormAct2d`` when ``name`` is a ``normN``)."""
    return relu(batch_norm(x, name=name), f"{name}_act")


def squeeze_excite(x, reduction, *, name):
    """SE gate (Hu et al. 2018, Fig. 3): GAP -> 1x1 C/r -> ReLU -> 1x1 C -> sigmoid -> scale.

    The two FCs are 1x1 convolutions with bias, as timm's ``SEModule`` (``fc1``, ``fc2``).
    """
    channels = channels_of(x)
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    s = conv(s, channels // reduction, 1, name=f"{name}_fc1", activation="relu")
    s = conv(s, channels, 1, name=f"{name}_fc2", activation="sigmoid")
    return layers.Multiply(name=f"{name}_gate")([x, s])


def _shortcut_kind(cfg, in_channels, out_channels, stride):
    if cfg.shortcut == "C":
        return "projection"
    if stride == 1 and in_channels == out_channels:
        return "identity"
    return "zero_pad" if cfg.shortcut == "A" else "projection"


def zero_pad_shortcut(x, out_channels, stride, *, name):
    """Option A (He et al. 2015): subsample by ``stride``, append zero channels; no weights."""
    if stride > 1:
        x = max_pool2d(x, 1, stride, name=f"{name}_subsample")
    extra = out_channels - channels_of(x)
    return ZeroPadChannels((0, extra), name=name)(x) if extra else x


def shortcut(x, x_preact, cfg, style, out_channels, stride, prefix):
    """The block's shortcut: identity, zero-padding (A) or 1x1 projection (B/C).

    Pre-activation projections read the block's BN-ReLU output, as timm's
    ``PreActBottleneck`` and He et al. 2016 ("projection shortcuts are also with
    pre-activation"); identity and zero-padding shortcuts read the raw input.
    """
    kind = _shortcut_kind(cfg, channels_of(x), out_channels, stride)
    if kind == "identity":
        return x
    if kind == "zero_pad":
        return zero_pad_shortcut(x, out_channels, stride, name=f"{prefix}_shortcut")
    conv_name, bn_name = style.projection
    y = conv(x_preact, out_channels, 1, stride, use_bias=False, name=f"{prefix}_{conv_name}")
    return batch_norm(y, name=f"{prefix}_{bn_name}") if bn_name else y


def residual_branch(x, convs, cfg, style, prefix):
    """The convolutions of a block: conv-BN-ReLU units (post-activation) or
    BN-ReLU-conv units (pre-activation; ``x`` is already activated)."""
    count = len(convs)
    for i, spec in enumerate(convs, start=1):
        last = i == count
        if style.preact and i > 1:
            x = bn_relu(x, f"{prefix}_{style.norm.format(i)}")
        if last and cfg.dropout:
            x = layers.Dropout(cfg.dropout, name=f"{prefix}_dropout")(x)
        x = conv(
            x, spec.filters, spec.kernel, spec.stride, spec.kernel // 2,
            groups=spec.groups, use_bias=False, name=f"{prefix}_conv{i}",
        )
        if not style.preact:
            x = batch_norm(x, name=f"{prefix}_{style.norm.format(i)}")
            if not last or (style.legacy_quirks and cfg.se_reduction and cfg.block == "basic"):
                x = relu(x, f"{prefix}_{style.norm.format(i)}_relu")
    return x


def residual_block(x, cfg, stage, index, stride, drop_rate):
    """One residual unit: ``out = [ReLU](shortcut(x) + DropPath(SE(branch(x))))``."""
    style = STYLES[cfg.style]
    prefix = block_prefix(style, stage, index)
    convs = cfg.branch(stage, stride)
    x_preact = bn_relu(x, f"{prefix}_{style.norm.format(1)}") if style.preact else x
    branch = residual_branch(x_preact, convs, cfg, style, prefix)
    if cfg.se_reduction:
        branch = squeeze_excite(branch, cfg.se_reduction, name=f"{prefix}_se_module")
    if drop_rate > 0:
        branch = DropPath(drop_rate, name=f"{prefix}_drop_path")(branch)
    short = shortcut(x, x_preact, cfg, style, convs[-1].filters, stride, prefix)
    if style.preact:
        return add([branch, short], f"{prefix}_out")
    out = add([branch, short], f"{prefix}_add")
    return relu(out, f"{prefix}_out")


def resnet_stage(x, cfg, stage, stride, drop_rates):
    """``len(drop_rates)`` residual blocks; the first one changes stride/width."""
    for index, rate in enumerate(drop_rates):
        x = residual_block(x, cfg, stage, index, stride if index == 0 else 1, rate)
    return x


def resnet_stem(x, cfg):
    """ImageNet: 7x7/2 conv, BN-ReLU (post-activation only), 3x3/2 max pool.
    CIFAR: 3x3 conv, BN-ReLU (post-activation only)."""
    style = STYLES[cfg.style]
    kernel, stride = (7, 2) if cfg.stem == "imagenet" else (3, 1)
    x = conv(x, cfg.stem_width, kernel, stride, kernel // 2, use_bias=False, name=style.stem_conv)
    if not style.preact:
        x = batch_norm(x, name=style.stem_norm)
        x = relu(x, f"{style.stem_norm}_relu")
    if cfg.stem == "imagenet":
        if style.legacy_quirks:  # Caffe's ceil-mode pooling without padding
            x = max_pool2d(x, 3, 2, 0, name=style.stem_pool, ceil_mode=True)
        else:
            x = max_pool2d(x, 3, 2, 1, name=style.stem_pool)
    return x


def resnet_backbone(img_input, cfg):
    """Stem, stages (stride 1 then 2 each), final BN-ReLU for pre-activation nets."""
    x = resnet_stem(img_input, cfg)
    for stage, rates in enumerate(cfg.drop_path_rates()):
        x = resnet_stage(x, cfg, stage, 1 if stage == 0 else 2, rates)
    style = STYLES[cfg.style]
    if style.preact:
        x = bn_relu(x, style.final_norm)
    return x


def resnet_head(x, cfg, include_top, classes, classifier_activation, pooling):
    """Global average pooling and the FC classifier, or keras.applications' ``pooling``."""
    if not include_top:
        return global_pool(x, pooling)
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    x = dense(x, classes, name=STYLES[cfg.style].fc)
    return classifier_output(x, classifier_activation)


def build_resnet(img_input, cfg, include_top, classes, classifier_activation, pooling, model):
    """Validate ``cfg`` (before any layer exists), then build backbone and head."""
    cfg.validate(model)
    x = resnet_backbone(img_input, cfg)
    return resnet_head(x, cfg, include_top, classes, classifier_activation, pooling)


# ----------------------------------------------------------------------------------
# ImageNet builder and variants
# ----------------------------------------------------------------------------------

# depth -> (block, blocks per stage): He et al. 2015, Table 1 (+ ResNet-200, He et al. 2016).
IMAGENET_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    26: ("bottleneck", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}


def imagenet_config(depth, **options):
    """The :class:`ResNetConfig` of an ImageNet ResNet of ``depth`` layers."""
    if depth not in IMAGENET_DEPTHS:
        raise ValueError(
            f"resnet: depth must be one of {sorted(IMAGENET_DEPTHS)} for ImageNet "
            f"networks; got {depth!r}."
        )
    block, blocks = IMAGENET_DEPTHS[depth]
    return ResNetConfig(block=block, layers=blocks, **options)


def build_imagenet_resnet(
    img_input, *, include_top, classes, classifier_activation, pooling, depth,
    style="torchvision", groups=1, width_per_group=64, widen_factor=1, se_reduction=None,
    shortcut="B", stride_in_1x1=False, drop_path_rate=0.0, dropout=0.0,
):
    """The builder of every ImageNet residual network (options: see :class:`ResNetConfig`)."""
    cfg = imagenet_config(
        depth, style=style, groups=groups, width_per_group=width_per_group,
        widen_factor=widen_factor, se_reduction=se_reduction, shortcut=shortcut,
        stride_in_1x1=stride_in_1x1, drop_path_rate=drop_path_rate, dropout=dropout,
    )
    return build_resnet(img_input, cfg, include_top, classes, classifier_activation, pooling, "resnet")


def _imagenet_stage_layers(options):
    return imagenet_config(options["depth"], style=options.get("style", "torchvision")).stage_output_names()


def _min_size(style):
    # 7x7/2 conv then a 3x3/2 pool: padded pooling takes any size >= 1; the legacy
    # ceil-mode pool without padding needs a 2x2 map after the conv, i.e. input >= 3.
    return 3 if STYLES[style].legacy_quirks else 1


def register_resnet(name, *, paper, year, params, reference, builder=build_imagenet_resnet, family="resnet",
                    preprocess=preprocess_input, stage_layers=_imagenet_stage_layers, min_size=None,
                    top1=None, top1_source=None, input_shape=(224, 224, 3), default_classes=1000,
                    heavy=None, notes="", **options):
    """``register_model`` with the residual family's defaults; ``options`` are the builder's."""
    return register_model(
        name, family=family, builder=builder, preprocess_input=preprocess, options=options, paper=paper,
        year=year, params=params, input_shape=input_shape, default_classes=default_classes,
        min_size=_min_size(options.get("style", "torchvision")) if min_size is None else min_size,
        reference=reference, top1=top1, top1_source=top1_source, feature_layers=stage_layers,
        heavy=heavy, notes=notes,
    )


def _torchvision(name, params, top1, weights, paper=RESNET_PAPER, year=2015, **options):
    """A torchvision model with its ``<weights>_Weights.IMAGENET1K_V1`` top-1."""
    return register_resnet(
        name, paper=paper, year=year, params=params, reference=f"torchvision:{name}", top1=top1,
        top1_source=f"torchvision {weights}_Weights.IMAGENET1K_V1", **options,
    )


@_torchvision("resnet18", 11_689_512, 69.758, "ResNet18", depth=18)
def ResNet18(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """ResNet-18: basic blocks 2-2-2-2 (He et al. 2015, Table 1)."""
    return ResNet18.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                               classifier_activation, name, **kwargs)


@_torchvision("resnet34", 21_797_672, 73.314, "ResNet34", depth=34)
def ResNet34(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """ResNet-34: basic blocks 3-4-6-3 (He et al. 2015, Table 1)."""
    return ResNet34.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                               classifier_activation, name, **kwargs)


@_torchvision("resnet50", 25_557_032, 76.130, "ResNet50", depth=50)
def ResNet50(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """ResNet-50: bottlenecks 3-4-6-3 (He et al. 2015, Table 1), torchvision's v1.5 with
    the stride on the 3x3 (``stride_in_1x1=True`` for the paper's v1)."""
    return ResNet50.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                               classifier_activation, name, **kwargs)


@_torchvision("resnet101", 44_549_160, 77.374, "ResNet101", depth=101)
def ResNet101(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
              classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """ResNet-101: bottlenecks 3-4-23-3 (He et al. 2015, Table 1)."""
    return ResNet101.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                classifier_activation, name, **kwargs)


@_torchvision("resnet152", 60_192_808, 78.312, "ResNet152", depth=152)
def ResNet152(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
              classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """ResNet-152: bottlenecks 3-8-36-3 (He et al. 2015, Table 1)."""
    return ResNet152.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                classifier_activation, name, **kwargs)


@_torchvision("wide_resnet50_2", 68_883_240, 78.468, "Wide_ResNet50_2", paper=WRN_PAPER, year=2016,
              depth=50, widen_factor=2)
def WideResNet50_2(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                   classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """Wide ResNet-50-2: ResNet-50 with bottleneck 3x3 convolutions twice as wide."""
    return WideResNet50_2.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                     classifier_activation, name, **kwargs)


@_torchvision("wide_resnet101_2", 126_886_696, 78.848, "Wide_ResNet101_2", paper=WRN_PAPER, year=2016,
              depth=101, widen_factor=2)
def WideResNet101_2(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                    classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """Wide ResNet-101-2: ResNet-101 with bottleneck 3x3 convolutions twice as wide."""
    return WideResNet101_2.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                      classifier_activation, name, **kwargs)


@_torchvision("resnext50_32x4d", 25_028_904, 77.618, "ResNeXt50_32X4D", paper=RESNEXT_PAPER, year=2016,
              depth=50, groups=32, width_per_group=4)
def ResNeXt50_32x4d(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                    classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """ResNeXt-50 (32x4d): 32 groups of 4 channels in the first stage's 3x3 (Xie et al. 2017)."""
    return ResNeXt50_32x4d.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                      classifier_activation, name, **kwargs)


@_torchvision("resnext101_32x8d", 88_791_336, 79.312, "ResNeXt101_32X8D", paper=RESNEXT_PAPER, year=2016,
              depth=101, groups=32, width_per_group=8)
def ResNeXt101_32x8d(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                     classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """ResNeXt-101 (32x8d): 32 groups of 8 channels in the first stage's 3x3 (Xie et al. 2017)."""
    return ResNeXt101_32x8d.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                       classifier_activation, name, **kwargs)


@_torchvision("resnext101_64x4d", 83_455_272, 83.246, "ResNeXt101_64X4D", paper=RESNEXT_PAPER, year=2016,
              depth=101, groups=64, width_per_group=4)
def ResNeXt101_64x4d(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                     classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """ResNeXt-101 (64x4d); torchvision's only weights use its 2021 training recipe."""
    return ResNeXt101_64x4d.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                       classifier_activation, name, **kwargs)


def _legacy_se(name, depth, params, groups=1, width_per_group=64, top1_error=None):
    """timm's ``legacy_<name>``: its SE-ResNet bottleneck strides the first 1x1 (Caffe),
    SE-ResNeXt the 3x3. Published single-crop (224) top-1 errors: Hu et al. 2018, Table 2."""
    top1 = None if top1_error is None else round(100 - top1_error, 2)
    source = None if top1_error is None else f"Hu et al. 2018, Table 2 (224 crop, top-1 error {top1_error} %)"
    return register_resnet(
        name, paper=SENET_PAPER, year=2017, params=params, top1=top1, top1_source=source,
        reference=f"timm:legacy_{name}", depth=depth, style="legacy_senet",
        se_reduction=16, groups=groups, width_per_group=width_per_group,
        stride_in_1x1=groups == 1 and IMAGENET_DEPTHS[depth][0] == "bottleneck",
        notes="timm legacy_senet layout: ceil-mode stem pool, ReLU before the SE gate in basic blocks.",
    )


@_legacy_se("seresnet18", 18, 11_778_592)
def SEResNet18(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
               classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """SE-ResNet-18: ResNet-18 with squeeze-and-excitation gates (Hu et al. 2018)."""
    return SEResNet18.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                 classifier_activation, name, **kwargs)


@_legacy_se("seresnet34", 34, 21_958_868)
def SEResNet34(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
               classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """SE-ResNet-34: ResNet-34 with squeeze-and-excitation gates (Hu et al. 2018)."""
    return SEResNet34.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                 classifier_activation, name, **kwargs)


@_legacy_se("seresnet50", 50, 28_088_024, top1_error=23.29)
def SEResNet50(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
               classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """SE-ResNet-50: ResNet-50 with squeeze-and-excitation gates (Hu et al. 2018)."""
    return SEResNet50.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                 classifier_activation, name, **kwargs)


@_legacy_se("seresnet101", 101, 49_326_872, top1_error=22.38)
def SEResNet101(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """SE-ResNet-101: ResNet-101 with squeeze-and-excitation gates (Hu et al. 2018)."""
    return SEResNet101.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                  classifier_activation, name, **kwargs)


@_legacy_se("seresnet152", 152, 66_821_848, top1_error=21.57)
def SEResNet152(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """SE-ResNet-152: ResNet-152 with squeeze-and-excitation gates (Hu et al. 2018)."""
    return SEResNet152.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                  classifier_activation, name, **kwargs)


@_legacy_se("seresnext26_32x4d", 26, 16_790_280, groups=32, width_per_group=4)
def SEResNeXt26_32x4d(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                      classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """SE-ResNeXt-26 (32x4d): bottlenecks 2-2-2-2 with grouped 3x3s and SE gates."""
    return SEResNeXt26_32x4d.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                        classifier_activation, name, **kwargs)


@_legacy_se("seresnext50_32x4d", 50, 27_559_896, groups=32, width_per_group=4, top1_error=21.10)
def SEResNeXt50_32x4d(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                      classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """SE-ResNeXt-50 (32x4d): ResNeXt-50 with squeeze-and-excitation gates (Hu et al. 2018)."""
    return SEResNeXt50_32x4d.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                        classifier_activation, name, **kwargs)


@_legacy_se("seresnext101_32x4d", 101, 48_955_416, groups=32, width_per_group=4, top1_error=20.70)
def SEResNeXt101_32x4d(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                       classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """SE-ResNeXt-101 (32x4d): ResNeXt-101 (32x4d) with squeeze-and-excitation gates (Hu et al. 2018)."""
    return SEResNeXt101_32x4d.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                         classifier_activation, name, **kwargs)
