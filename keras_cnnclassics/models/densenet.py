"""DenseNet (Huang, Liu, van der Maaten and Weinberger, 2017): ImageNet and CIFAR networks.

Every layer of a dense block receives the concatenation of the block input and
all earlier layers' outputs (``Concatenate`` on the channel axis) and adds
``growth_rate`` (k) new maps; a transition (BN-ReLU-1x1 conv-2x2 average pool)
between blocks keeps ``floor(compression * m)`` of its ``m`` input maps.

* ``densenet121/169/201/161`` are torchvision's DenseNet-BC models (bottleneck
  1x1 conv of ``bn_size * k`` = 4k maps, compression 0.5, 7x7/2 conv + 3x3/2 max
  pool stem), with torchvision's layer names written with "_" for ".":
  ``features_conv0``, ``features_denseblock1_denselayer1_norm1`` ... ``_conv2``,
  ``features_transition1_norm`` / ``_conv``, ``features_norm5``, ``classifier``.
  The output of each dense block is the layer ``features_denseblockN``.
* ``densenet264`` is the paper's DenseNet-264 (k=32, blocks 6/12/64/48, Table 1),
  built by the same code; torchvision has the architecture (its ``DenseNet``
  class) but no registered model, timm's ``densenet264d`` has k=48 and a deep stem.
* The CIFAR networks of Section 4 / Table 2: a 3x3 conv stem (16 maps, or 2k for
  DenseNet-BC), three dense blocks of equal size on 32x32, 16x16, 8x8 maps,
  global average pooling and a linear classifier. ``depth`` L fixes the number
  of layers per block: ``(L - 4) / 3`` (one 3x3 conv each), or ``(L - 4) / 6``
  with bottlenecks (two convs each). DenseNet-BC = bottleneck + compression 0.5.

Dropout (``dropout``, the paper uses 0.2 on CIFAR without augmentation) follows
every convolution except the first, as in the paper (torchvision applies it only
after each dense layer's 3x3 conv; inference is identical).

Memory: each dense layer concatenates the running feature map with its new k
maps (a chain of ``Concatenate`` layers), so a block's activations grow
quadratically with its length, as in the paper's reference implementation; the
memory-efficient (checkpointed) variant is not reproduced.
"""

from __future__ import annotations

import math
import numbers

from keras import layers

from keras_cnnclassics.blocks import (
    avg_pool2d,
    batch_norm,
    channels_of,
    classifier_output,
    concat,
    conv2d,
    dense,
    global_pool,
    max_pool2d,
    relu,
)
from keras_cnnclassics.initializers import host_he_normal
from keras_cnnclassics.mapping import TorchMapping
from keras_cnnclassics.preprocessing import torch_preprocess_input as preprocess_input
from keras_cnnclassics.registry import register_model

__all__ = [
    "DenseNet121", "DenseNet169", "DenseNet201", "DenseNet161", "DenseNet264",
    "DenseNet40_K12_CIFAR", "DenseNetBC100_K12_CIFAR", "DenseNetBC190_K40_CIFAR",
    "preprocess_input",
]

DENSENET_PAPER = (
    "G. Huang, Z. Liu, L. van der Maaten, K. Q. Weinberger. Densely Connected "
    "Convolutional Networks. CVPR 2017 (arXiv:1608.06993, 2016)."
)


# ----------------------------------------------------------------------------- validation


def _positive_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0


def _real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def validate_options(growth_rate, compression, dropout, bn_size, init_features):
    """The rules shared by every DenseNet (raised before any layer is built)."""
    if not _positive_int(growth_rate):
        raise ValueError(
            f"densenet: growth_rate (k) must be a positive integer; got {growth_rate!r}."
        )
    if not _real(compression) or not 0 < compression <= 1:
        raise ValueError(
            f"densenet: compression (theta) must be in (0, 1] (1 = no compression, "
            f"DenseNet-BC uses 0.5); got {compression!r}."
        )
    if not _real(dropout) or not 0 <= dropout < 1:
        raise ValueError(f"densenet: dropout must be in [0, 1); got {dropout!r}.")
    if bn_size is not None and not _positive_int(bn_size):
        raise ValueError(
            f"densenet: bn_size (bottleneck width = bn_size * k) must be a positive integer "
            f"or None for no bottleneck; got {bn_size!r}."
        )
    if init_features is not None and not _positive_int(init_features):
        raise ValueError(
            f"densenet: init_features must be a positive integer; got {init_features!r}."
        )


def cifar_layers_per_block(depth, bottleneck):
    """Layers per dense block of the CIFAR DenseNet of depth L (paper, Sec. 4.1).

    L counts the stem conv, the convs of the three blocks, the two transition
    convs and the classifier: ``L = 3n + 4`` with one 3x3 conv per layer, or
    ``L = 6n + 4`` with bottleneck layers (1x1 + 3x3 convs).
    """
    per_layer = 2 if bottleneck else 1
    if not _positive_int(depth) or (depth - 4) % (3 * per_layer) or depth < 4 + 3 * per_layer:
        formula = "6n + 4 (bottleneck)" if bottleneck else "3n + 4"
        raise ValueError(
            f"densenet (CIFAR): depth must be {formula} with n >= 1 layers per block, "
            f"e.g. {'100, 190, 250' if bottleneck else '40, 100'}; got {depth!r}."
        )
    return (depth - 4) // (3 * per_layer)


# ----------------------------------------------------------------------------- blocks


def plain_conv(x, filters, kernel_size, strides=1, padding=0, *, name):
    """A bias-free conv (BN follows) with He initialisation drawn on the host.

    Nearly every DenseNet kernel has its own shape, so Keras' own random
    initialisers would compile once per conv on JAX (see initializers.py).
    """
    return conv2d(
        x, filters, kernel_size, strides, padding, name=name, use_bias=False,
        kernel_initializer=host_he_normal(),
    )


def bn_relu_conv(x, filters, kernel_size, padding=0, *, norm, conv, dropout=0.0):
    """Pre-activation unit BN-ReLU-Conv (no bias) [-dropout]: DenseNet's composite H_l."""
    x = batch_norm(x, name=norm)
    x = relu(x, f"{norm}_relu")
    x = plain_conv(x, filters, kernel_size, 1, padding, name=conv)
    if dropout:
        x = layers.Dropout(dropout, name=f"{conv}_dropout")(x)
    return x


def dense_layer(x, growth_rate, bn_size, dropout, *, name):
    """H_l of Sec. 3: [BN-ReLU-1x1 conv (bn_size * k)] - BN-ReLU-3x3 conv (k).

    With ``bn_size=None`` (plain DenseNet) the layer is the single 3x3 unit,
    named ``norm1``/``conv1``; with a bottleneck (DenseNet-B) the names are
    torchvision's ``norm1``/``conv1`` (1x1) and ``norm2``/``conv2`` (3x3).
    """
    index = 1
    if bn_size:
        x = bn_relu_conv(
            x, bn_size * growth_rate, 1, norm=f"{name}_norm1", conv=f"{name}_conv1", dropout=dropout
        )
        index = 2
    return bn_relu_conv(
        x, growth_rate, 3, 1, norm=f"{name}_norm{index}", conv=f"{name}_conv{index}", dropout=dropout
    )


def dense_block(x, num_layers, growth_rate, bn_size, dropout, *, name):
    """``num_layers`` dense layers, each fed the concatenation of all earlier maps.

    The block's output (block input and every layer's k maps) is the
    ``Concatenate`` layer named ``name`` (torchvision's ``features.denseblockN``).
    """
    for i in range(1, num_layers + 1):
        new = dense_layer(x, growth_rate, bn_size, dropout, name=f"{name}_denselayer{i}")
        concat_name = name if i == num_layers else f"{name}_denselayer{i}_concat"
        x = concat([x, new], concat_name)
    return x


def transition(x, compression, dropout, *, name):
    """BN-ReLU-1x1 conv to ``floor(compression * m)`` maps - 2x2 average pool (Sec. 3)."""
    filters = int(math.floor(compression * channels_of(x)))
    x = bn_relu_conv(x, filters, 1, norm=f"{name}_norm", conv=f"{name}_conv", dropout=dropout)
    return avg_pool2d(x, 2, 2, name=f"{name}_pool")


def densenet_head(x, include_top, classes, classifier_activation, pooling):
    """features_norm5 - ReLU - global average pool - Linear ``classifier`` (torchvision)."""
    x = batch_norm(x, name="features_norm5")
    x = relu(x, "features_relu5")
    if not include_top:
        return global_pool(x, pooling)
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    return classifier_output(dense(x, classes, name="classifier"), classifier_activation)


def dense_stages(x, block_config, growth_rate, bn_size, compression, dropout):
    """Dense blocks ``features_denseblockN`` with ``features_transitionN`` between them."""
    for i, num_layers in enumerate(block_config, start=1):
        x = dense_block(x, num_layers, growth_rate, bn_size, dropout, name=f"features_denseblock{i}")
        if i < len(block_config):
            x = transition(x, compression, dropout, name=f"features_transition{i}")
    return x


def stage_layer_names(num_blocks):
    """Stage ends: each dense block's output before its transition; after norm5+ReLU for the last."""
    return tuple(f"features_denseblock{i}" for i in range(1, num_blocks)) + ("features_relu5",)


# ----------------------------------------------------------------------------- builders


def _densenet(
    img_input, *, include_top, classes, classifier_activation, pooling,
    growth_rate=32, block_config=(6, 12, 24, 16), init_features=64, bn_size=4,
    compression=0.5, dropout=0.0,
):
    """ImageNet DenseNet (torchvision's ``DenseNet``): 7x7/2 conv stem, 3x3/2 max pool."""
    validate_options(growth_rate, compression, dropout, bn_size, init_features or 0)  # None: invalid here
    if (
        not isinstance(block_config, (list, tuple)) or not block_config
        or not all(_positive_int(n) for n in block_config)
    ):
        raise ValueError(
            f"densenet: block_config must be a non-empty sequence of positive layer counts; "
            f"got {block_config!r}."
        )
    x = plain_conv(img_input, init_features, 7, 2, 3, name="features_conv0")
    x = batch_norm(x, name="features_norm0")
    x = relu(x, "features_relu0")
    x = max_pool2d(x, 3, 2, 1, name="features_pool0")
    x = dense_stages(x, tuple(block_config), growth_rate, bn_size, compression, dropout)
    return densenet_head(x, include_top, classes, classifier_activation, pooling)


def _densenet_cifar(
    img_input, *, include_top, classes, classifier_activation, pooling,
    depth=40, growth_rate=12, bottleneck=False, compression=1.0, dropout=0.0, bn_size=4,
    init_features=None,
):
    """CIFAR DenseNet(-B/-C/-BC) of Sec. 4.1: 3x3 conv stem, three equal dense blocks.

    The stem has ``init_features`` maps: by default 16, or 2k for DenseNet-BC
    (bottleneck and compression < 1), as the paper states.
    """
    validate_options(growth_rate, compression, dropout, bn_size, init_features)
    if not isinstance(bottleneck, bool):
        raise ValueError(f"densenet (CIFAR): bottleneck must be True or False; got {bottleneck!r}.")
    n = cifar_layers_per_block(depth, bottleneck)
    if init_features is None:
        init_features = 2 * growth_rate if bottleneck and compression < 1 else 16
    x = plain_conv(img_input, init_features, 3, 1, 1, name="features_conv0")
    x = dense_stages(x, (n, n, n), growth_rate, bn_size if bottleneck else None, compression, dropout)
    return densenet_head(x, include_top, classes, classifier_activation, pooling)


# ----------------------------------------------------------------------------- registry

# Weight conversion: torchvision's published DenseNet files use the legacy names
# "denselayer1.norm.1.weight"; torchvision renames them on loading, so do we.
LEGACY_NAMES = TorchMapping(rename=((r"(denselayer\d+\.(?:norm|relu|conv))\.([12])\.", r"\1\2."),))


def _imagenet_entry(name, growth_rate, block_config, init_features, params, top1):
    """``register_model`` for an ImageNet DenseNet-BC; all but DenseNet-264 are torchvision's."""
    depth = name[len("densenet"):]
    torchvision = name != "densenet264"
    return register_model(
        name, family="densenet", builder=_densenet, preprocess_input=preprocess_input,
        options={"growth_rate": growth_rate, "block_config": block_config, "init_features": init_features},
        paper=DENSENET_PAPER, year=2016, params=params, min_size=29,
        reference=f"torchvision:{name}" if torchvision else None, torch_mapping=LEGACY_NAMES,
        # Only DenseNet-121 runs the generic forward/save/fit checks on every backend:
        # the deeper ones are 500-900-layer graphs whose tracing dominates test time.
        heavy=name != "densenet121",
        feature_layers=stage_layer_names(len(block_config)),
        top1=top1,
        top1_source=(
            f"torchvision DenseNet{depth}_Weights.IMAGENET1K_V1" if torchvision
            else "Huang et al. 2017, Table 3 (single-crop top-1 error 22.15 %)"
        ),
        notes=(
            "" if torchvision else
            "k=32, blocks 6/12/64/48 (paper Table 1); same module names as torchvision's "
            "DenseNet(32, (6, 12, 64, 48), 64), whose parameter count it equals."
        ),
    )


@_imagenet_entry("densenet121", 32, (6, 12, 24, 16), 64, 7_978_856, 74.434)
def DenseNet121(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """DenseNet-121 (DenseNet-BC, k=32, dense blocks 6/12/24/16)."""
    return DenseNet121.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                  classifier_activation, name, **kwargs)


@_imagenet_entry("densenet169", 32, (6, 12, 32, 32), 64, 14_149_480, 75.600)
def DenseNet169(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """DenseNet-169 (DenseNet-BC, k=32, dense blocks 6/12/32/32)."""
    return DenseNet169.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                  classifier_activation, name, **kwargs)


@_imagenet_entry("densenet201", 32, (6, 12, 48, 32), 64, 20_013_928, 76.896)
def DenseNet201(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """DenseNet-201 (DenseNet-BC, k=32, dense blocks 6/12/48/32)."""
    return DenseNet201.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                  classifier_activation, name, **kwargs)


@_imagenet_entry("densenet161", 48, (6, 12, 36, 24), 96, 28_681_000, 77.138)
def DenseNet161(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """DenseNet-161 (DenseNet-BC, k=48, dense blocks 6/12/36/24)."""
    return DenseNet161.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                  classifier_activation, name, **kwargs)


@_imagenet_entry("densenet264", 32, (6, 12, 64, 48), 64, 33_337_704, 77.85)
def DenseNet264(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """DenseNet-264 (DenseNet-BC, k=32, dense blocks 6/12/64/48)."""
    return DenseNet264.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                  classifier_activation, name, **kwargs)


def _cifar_stage_layers(options):
    return stage_layer_names(3)


def _cifar_entry(name, options, params, table2, heavy=False):
    """``register_model`` for a CIFAR DenseNet of Table 2 (``table2``: its params and C10+ error)."""
    kind = "DenseNet-BC" if options.get("bottleneck") else "DenseNet"
    label = f"{kind} (L={options['depth']}, k={options['growth_rate']})"
    return register_model(
        name, family="densenet", builder=_densenet_cifar, preprocess_input=preprocess_input,
        options=options, paper=DENSENET_PAPER, year=2016, params=params, input_shape=(32, 32, 3),
        min_size=4, default_classes=10, heavy=heavy, torch_mapping=LEGACY_NAMES,
        feature_layers=_cifar_stage_layers,
        notes=f"CIFAR-10 {label}: Table 2 lists {table2[0]} parameters and {table2[1]} % C10+ test error.",
    )


# Table 2's other rows are options of these constructors, e.g. DenseNet-BC (L=250, k=24),
# 15,324,406 parameters: DenseNetBC100_K12_CIFAR(depth=250, growth_rate=24). It is not
# registered: its 876-layer graph took 13 min of JAX compilation in the generic fit test.

@_cifar_entry("densenet40_k12_cifar", {"depth": 40, "growth_rate": 12}, 1_019_722, ("1.0M", 5.24))
def DenseNet40_K12_CIFAR(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                         classes=10, classifier_activation="softmax", name=None, **kwargs):
    """The CIFAR DenseNet (L=40, k=12) of Huang et al. (Table 2)."""
    return DenseNet40_K12_CIFAR.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                           classifier_activation, name, **kwargs)


@_cifar_entry(
    "densenet_bc100_k12_cifar", {"depth": 100, "growth_rate": 12, "bottleneck": True, "compression": 0.5},
    769_162, ("0.8M", 4.51),
)
def DenseNetBC100_K12_CIFAR(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                            classes=10, classifier_activation="softmax", name=None, **kwargs):
    """The CIFAR DenseNet-BC (L=100, k=12) of Huang et al. (Table 2)."""
    return DenseNetBC100_K12_CIFAR.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                              classifier_activation, name, **kwargs)


@_cifar_entry(
    "densenet_bc190_k40_cifar", {"depth": 190, "growth_rate": 40, "bottleneck": True, "compression": 0.5},
    25_624_430, ("25.6M", 3.46), heavy=True,
)
def DenseNetBC190_K40_CIFAR(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                            classes=10, classifier_activation="softmax", name=None, **kwargs):
    """The CIFAR DenseNet-BC (L=190, k=40) of Huang et al. (Table 2)."""
    return DenseNetBC190_K40_CIFAR.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                              classifier_activation, name, **kwargs)
