"""GoogLeNet / Inception v1 (Szegedy et al., 2014), torchvision's and the paper's.

Nine Inception modules (Table 1 of the paper): four parallel branches on the
same input, a 1x1 conv, a 1x1 reduction then 3x3, a 1x1 reduction then "5x5",
and 3x3 max pooling then a 1x1 projection, joined with ``Concatenate``. The 1x1
"bottleneck" reductions keep the cost low (in 3a the 5x5 branch costs
28*28*192*16 + 28*28*16*5*5*32 = 12.4 M multiply-adds instead of 120.4 M
without its reduction); global average pooling replaces the FC layers (a
7x7x1024 -> 1024 FC alone would hold 51,380,224 weights); two auxiliary
classifiers after 4a and 4d inject gradient mid-network during training (loss
weight 0.3 each) and are dropped for inference.

* ``googlenet`` is torchvision's ``googlenet``: every conv is ``BasicConv2d``
  (conv without bias, BatchNorm with eps 0.001, ReLU), ceil-mode max pooling,
  adaptive 4x4 pooling in the auxiliary heads, and the "5x5" branch really a
  3x3 conv (https://github.com/pytorch/vision/issues/906);
  ``branch3_kernel_size=5`` gives the paper's 5x5. 6,624,904 parameters
  (13,004,888 with ``aux_logits=True``, as torchvision's).
* ``googlenet_original`` is the paper's network (Table 1, Figure 3): no
  BatchNorm (convs with biases), local response normalisation after the stem's
  first pool and after conv3, 5x5 branches, 3x3/2 max pooling before 5a, 5x5/3
  average pooling in the auxiliary heads, dropout 0.4 before the classifier.

Layer names are torchvision's module paths with "." written as "_":
``conv1_conv``, ``conv1_bn``, ``inception3a_branch2_1_conv``, ``aux1_fc1``, ``fc``.
"""

from typing import NamedTuple

from keras import layers

from keras_cnnclassics.blocks import (
    adaptive_avg_pool,
    avg_pool2d,
    batch_norm,
    channel_affine,
    classifier_output,
    concat,
    conv2d,
    dense,
    global_pool,
    max_pool2d,
    relu,
    spatial_shape,
)
from keras_cnnclassics.layers import LocalResponseNormalization
from keras_cnnclassics.mapping import aux_head_mapping
from keras_cnnclassics.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from keras_cnnclassics.preprocessing import torch_preprocess_input as preprocess_input
from keras_cnnclassics.registry import register_model

__all__ = ["GoogLeNet", "GoogLeNetOriginal", "preprocess_input"]

GOOGLENET_PAPER = (
    "C. Szegedy, W. Liu, Y. Jia, P. Sermanet, S. Reed, D. Anguelov, D. Erhan, "
    "V. Vanhoucke, A. Rabinovich. Going Deeper with Convolutions. CVPR 2015 "
    "(arXiv:1409.4842, 2014)."
)

# torchvision's BasicConv2d (GoogLeNet and Inception v3) uses BatchNorm eps 0.001.
INCEPTION_BN_EPSILON = 1e-3

# Loss weights of [main, aux1, aux2] during training: 0.3 per auxiliary head (paper, sec. 5),
# e.g. ``model.compile(loss=[...] * 3, loss_weights=AUX_LOSS_WEIGHTS)``.
AUX_LOSS_WEIGHTS = (1.0, 0.3, 0.3)


class InceptionModule(NamedTuple):
    """One row of the paper's Table 1 (the arguments of torchvision's ``Inception``)."""

    ch1x1: int
    ch3x3red: int
    ch3x3: int
    ch5x5red: int
    ch5x5: int
    pool_proj: int


INCEPTION_MODULES = {
    "3a": InceptionModule(64, 96, 128, 16, 32, 32),
    "3b": InceptionModule(128, 128, 192, 32, 96, 64),
    "4a": InceptionModule(192, 96, 208, 16, 48, 64),
    "4b": InceptionModule(160, 112, 224, 24, 64, 64),
    "4c": InceptionModule(128, 128, 256, 24, 64, 64),
    "4d": InceptionModule(112, 144, 288, 32, 64, 64),
    "4e": InceptionModule(256, 160, 320, 32, 128, 128),
    "5a": InceptionModule(256, 160, 320, 32, 128, 128),
    "5b": InceptionModule(384, 192, 384, 48, 128, 128),
}


class Style(NamedTuple):
    """What differs between torchvision's GoogLeNet and the paper's."""

    batch_norm: bool  # BasicConv2d (conv + BN + ReLU) or conv with bias + ReLU
    lrn: bool  # LRN after maxpool1 and after conv3 (paper, Figure 3)
    branch3_kernel: int  # the "5x5" branch: 3 in torchvision, 5 in the paper
    pool4_size: int  # max pool before 5a: 2x2/2 (torchvision) or 3x3/2 (Table 1)
    aux_pool: str  # "adaptive" 4x4 (torchvision) or "paper" 5x5/3 average pool
    dropout: float  # before the last FC: 0.2 (torchvision) or 0.4 (paper)


TORCHVISION_STYLE = Style(True, False, 3, 2, "adaptive", 0.2)
PAPER_STYLE = Style(False, True, 5, 3, "paper", 0.4)


def basic_conv2d(x, filters, kernel_size, strides=1, padding=0, *, name, batch_normalization=True):
    """torchvision's ``BasicConv2d`` named ``name``: ``{name}_conv``, ``{name}_bn``, ReLU ``name``.

    Without batch normalisation (the 2014 papers) the conv has a bias instead.
    """
    x = conv2d(
        x, filters, kernel_size, strides, padding,
        name=f"{name}_conv", use_bias=not batch_normalization,
    )
    if batch_normalization:
        x = batch_norm(x, name=f"{name}_bn", epsilon=INCEPTION_BN_EPSILON)
    return relu(x, name)


def transform_input_layer(x):
    """torchvision's ``transform_input``: ImageNet-normalised input -> ``(x - 0.5) / 0.5``.

    The ported Google weights expect [-1, 1] inputs; this maps torchvision's
    normalisation ``(x - mean) / std`` to that, channel by channel.
    """
    scale = [s / 0.5 for s in IMAGENET_STD]
    offset = [(m - 0.5) / 0.5 for m in IMAGENET_MEAN]
    return channel_affine(x, scale, offset, name="transform_input")


def inception_module(x, module, *, name, style):
    """The Inception module with dimension reductions (paper, Figure 2b)."""
    unit = {"batch_normalization": style.batch_norm}
    branch1 = basic_conv2d(x, module.ch1x1, 1, name=f"{name}_branch1", **unit)
    branch2 = basic_conv2d(x, module.ch3x3red, 1, name=f"{name}_branch2_0", **unit)
    branch2 = basic_conv2d(branch2, module.ch3x3, 3, 1, 1, name=f"{name}_branch2_1", **unit)
    k = style.branch3_kernel
    branch3 = basic_conv2d(x, module.ch5x5red, 1, name=f"{name}_branch3_0", **unit)
    branch3 = basic_conv2d(branch3, module.ch5x5, k, 1, k // 2, name=f"{name}_branch3_1", **unit)
    branch4 = max_pool2d(x, 3, 1, 1, name=f"{name}_branch4_0", ceil_mode=True)
    branch4 = basic_conv2d(branch4, module.pool_proj, 1, name=f"{name}_branch4_1", **unit)
    return concat([branch1, branch2, branch3, branch4], name)


def aux_classifier(x, classes, classifier_activation, *, name, style):
    """Auxiliary classifier (paper, sec. 5): avg pool, 1x1 conv 128, FC 1024, dropout 0.7, FC.

    torchvision pools adaptively to 4x4, the paper with a 5x5/3 window (both give
    4x4 on the 14x14 map of a 224 input, with different windows).
    """
    if style.aux_pool == "adaptive":
        x = adaptive_avg_pool(x, 4, name=f"{name}_avgpool")
    else:
        x = avg_pool2d(x, 5, 3, name=f"{name}_avgpool")
    x = basic_conv2d(x, 128, 1, name=f"{name}_conv", batch_normalization=style.batch_norm)
    x = layers.Flatten(name=f"{name}_flatten")(x)
    x = dense(x, 1024, name=f"{name}_fc1", activation="relu")
    x = layers.Dropout(0.7, name=f"{name}_dropout")(x)
    x = dense(x, classes, name=f"{name}_fc2")
    return classifier_output(x, classifier_activation, name=f"{name}_predictions")


def pooled_dropout_fc_head(x, classes, classifier_activation, dropout):
    """Global average pooling, dropout, ``fc`` (GoogLeNet and Inception v3 heads)."""
    x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    x = dense(x, classes, name="fc")
    return classifier_output(x, classifier_activation)


def stem(x, style):
    """conv 7x7/2, max pool, [LRN], conv 1x1, conv 3x3, [LRN], max pool: 224 -> 28."""
    bn = {"batch_normalization": style.batch_norm}
    x = basic_conv2d(x, 64, 7, 2, 3, name="conv1", **bn)
    x = max_pool2d(x, 3, 2, name="maxpool1", ceil_mode=True)
    if style.lrn:
        x = LocalResponseNormalization(5, alpha=1e-4, beta=0.75, k=1.0, name="norm1")(x)
    x = basic_conv2d(x, 64, 1, name="conv2", **bn)
    x = basic_conv2d(x, 192, 3, 1, 1, name="conv3", **bn)
    if style.lrn:
        x = LocalResponseNormalization(5, alpha=1e-4, beta=0.75, k=1.0, name="norm2")(x)
    return max_pool2d(x, 3, 2, name="maxpool2", ceil_mode=True)


def googlenet_graph(x, style, aux_heads=None):
    """Stem and the nine Inception modules; ``aux_heads(name, x)`` taps 4a and 4d."""
    x = stem(x, style)
    for key, module in INCEPTION_MODULES.items():
        if key == "4a":
            x = max_pool2d(x, 3, 2, name="maxpool3", ceil_mode=True)
        elif key == "5a":
            x = max_pool2d(x, style.pool4_size, 2, name="maxpool4", ceil_mode=True)
        x = inception_module(x, module, name=f"inception{key}", style=style)
        if aux_heads is not None and key in ("4a", "4d"):
            aux_heads("aux1" if key == "4a" else "aux2", x)
    return x


def _pool_out(size, kernel, stride, padding=0, ceil_mode=False):
    """Output size of a PyTorch pooling/conv window along one axis."""
    span = size + 2 * padding - kernel + (stride - 1 if ceil_mode else 0)
    return span // stride + 1


def stride16_size(size):
    """Side of the 4a/4d maps for an input of side ``size`` (the auxiliary heads' input)."""
    size = _pool_out(size, 7, 2, 3)
    for _ in range(3):  # maxpool1, maxpool2, maxpool3 (3x3/2, ceil mode)
        size = _pool_out(size, 3, 2, ceil_mode=True)
    return size


def _validate(name, img_input, include_top, style, aux_logits, transform_input, branch3_kernel_size):
    """Reject bad options before any layer is built; returns the effective style."""
    for option, value in (("aux_logits", aux_logits), ("transform_input", transform_input)):
        if not isinstance(value, bool):
            raise ValueError(f"{name}: {option} must be True or False; got {value!r}.")
    if branch3_kernel_size is not None:
        if branch3_kernel_size not in (3, 5) or isinstance(branch3_kernel_size, bool):
            raise ValueError(
                f"{name}: branch3_kernel_size must be 3 (torchvision) or 5 (the paper's "
                f"5x5 branch); got {branch3_kernel_size!r}."
            )
        style = style._replace(branch3_kernel=branch3_kernel_size)
    if aux_logits:
        _validate_aux_input(name, img_input, include_top, style)
    return style


def _validate_aux_input(name, img_input, include_top, style):
    if not include_top:
        raise ValueError(
            f"{name}: aux_logits=True adds classifier heads, so it needs include_top=True."
        )
    spatial = spatial_shape(img_input)
    if any(s is None for s in spatial):
        raise ValueError(
            f"{name}: aux_logits=True needs a fixed input height and width (the "
            "auxiliary heads flatten a 4x4 map); pass input_shape with integers."
        )
    if style.aux_pool == "paper" and min(stride16_size(s) for s in spatial) < 5:
        smallest = next(s for s in range(1, 1000) if stride16_size(s) >= 5)
        raise ValueError(
            f"{name}: aux_logits=True needs inputs of at least {smallest}x{smallest} "
            "(the auxiliary heads' 5x5 average pool needs a 5x5 map after 4a); "
            f"got {tuple(spatial)}."
        )


def _googlenet_model(img_input, include_top, classes, classifier_activation, pooling, style,
                     aux_logits, transform_input):
    x = transform_input_layer(img_input) if transform_input else img_input
    aux_outputs = []

    def aux_heads(head_name, features):
        aux_outputs.append(
            aux_classifier(features, classes, classifier_activation, name=head_name, style=style)
        )

    x = googlenet_graph(x, style, aux_heads if aux_logits else None)
    if not include_top:
        return global_pool(x, pooling)
    main = pooled_dropout_fc_head(x, classes, classifier_activation, style.dropout)
    return [main, *aux_outputs] if aux_logits else main


def _builder(name, style):
    """The family builder of one variant: validate the options, then build."""

    def build(img_input, *, include_top, classes, classifier_activation, pooling,
              aux_logits=False, transform_input=False, branch3_kernel_size=None):
        effective = _validate(
            name, img_input, include_top, style, aux_logits, transform_input, branch3_kernel_size
        )
        return _googlenet_model(
            img_input, include_top, classes, classifier_activation, pooling, effective,
            aux_logits, transform_input,
        )

    build.__name__ = build.__qualname__ = f"_{name}"
    return build


# Stage ends at strides 4, 8, 16, 32: the stem's conv3, then after 3b, 4e and 5b.
STAGE_LAYERS = ("conv3", "inception3b", "inception4e", "inception5b")

_AUX_DOC = (
    "aux_logits=True adds the two auxiliary classifiers (outputs [main, aux1, aux2] "
    "for model.compile(loss=[...] * 3, loss_weights=[1.0, 0.3, 0.3]))"
)

# Weight conversion: torchvision's published file holds the auxiliary heads aux1/aux2.
AUX_MAPPING = aux_head_mapping(r"^aux[12]\.")


@register_model(
    "googlenet", family="googlenet", builder=_builder("googlenet", TORCHVISION_STYLE),
    preprocess_input=preprocess_input, paper=GOOGLENET_PAPER, year=2014, params=6_624_904, min_size=15,
    reference="torchvision:googlenet", torch_mapping=AUX_MAPPING, feature_layers=STAGE_LAYERS,
    top1=69.778, top1_source="torchvision GoogLeNet_Weights.IMAGENET1K_V1",
    notes=(
        "BasicConv2d (BN eps 0.001); the '5x5' branch is 3x3 as in torchvision "
        "(branch3_kernel_size=5 for the paper's); " + _AUX_DOC + ", 13,004,888 params; "
        "transform_input=True for torchvision's ImageNet weights."
    ),
)
def GoogLeNet(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
              classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """torchvision's GoogLeNet (Inception v1): BatchNorm after every convolution."""
    return GoogLeNet.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                classifier_activation, name, **kwargs)


@register_model(
    "googlenet_original", family="googlenet", builder=_builder("googlenet_original", PAPER_STYLE),
    preprocess_input=preprocess_input, paper=GOOGLENET_PAPER, year=2014, params=6_998_552, min_size=31,
    torch_mapping=AUX_MAPPING, feature_layers=STAGE_LAYERS, top1=None,
    top1_source="the paper reports top-5 only (single model, 1 crop: 10.07 % error)",
    notes=(
        "Paper's Table 1: no BatchNorm, LRN in the stem, 5x5 branches; " + _AUX_DOC
        + ". Table 1 lists ~6.8 M weights in K=1024 units without biases."
    ),
)
def GoogLeNetOriginal(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                      classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """The original GoogLeNet of Szegedy et al. (2014, Table 1)."""
    return GoogLeNetOriginal.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                        classifier_activation, name, **kwargs)
