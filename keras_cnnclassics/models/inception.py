"""Inception v3 (Szegedy et al., 2015), as torchvision's ``inception_v3``.

"Rethinking the Inception Architecture": the 5x5 convolutions of GoogLeNet
factorised into two 3x3 (module A), n x n into 1 x n then n x 1 (module C,
n = 7, and the expanded 1x3 / 3x1 pairs of module E), grid reduction by
parallel stride-2 conv and pooling branches (modules B and D), BatchNorm
everywhere (``BasicConv2d``, eps 0.001) and one auxiliary classifier on the
17x17 grid, which the paper uses as a regulariser.

299x299 input; 23,834,568 parameters without the auxiliary head (the default
here: inference models drop it) and 27,161,264 with ``aux_logits=True``
(torchvision's default). The auxiliary head's 5x5/3 average pool and 5x5 conv
need the 17x17 grid of a 299x299 input, so ``aux_logits=True`` needs inputs of
at least 299x299; without it any input from 75x75 works. ``transform_input``
as torchvision's (for the ported Google weights). Layer names are torchvision's
module paths with "." written as "_" (``Mixed_5b_branch5x5_1_conv``,
``AuxLogits_conv1_bn``, ``fc``).
"""

from keras import layers

from keras_cnnclassics.blocks import (
    avg_pool2d,
    classifier_output,
    concat,
    dense,
    global_pool,
    max_pool2d,
    spatial_shape,
)
from keras_cnnclassics.models.googlenet import (
    basic_conv2d,
    pooled_dropout_fc_head,
    transform_input_layer,
)
from keras_cnnclassics.mapping import aux_head_mapping
from keras_cnnclassics.preprocessing import torch_preprocess_input as preprocess_input
from keras_cnnclassics.registry import register_model

__all__ = ["InceptionV3", "preprocess_input"]

INCEPTION_V3_PAPER = (
    "C. Szegedy, V. Vanhoucke, S. Ioffe, J. Shlens, Z. Wojna. Rethinking the "
    "Inception Architecture for Computer Vision. CVPR 2016 (arXiv:1512.00567, 2015)."
)

# Smallest input with aux_logits=True: the head needs a 17x17 grid (5x5/3 pool -> 5x5 conv).
AUX_MIN_SIZE = 299


def conv_chain(x, prefix, *units):
    """``BasicConv2d`` units in sequence; each unit is ``(suffix, filters, kernel[, stride[, padding]])``."""
    for suffix, filters, kernel, *rest in units:
        strides, padding = (rest + [1, 0][len(rest):])[:2]
        x = basic_conv2d(x, filters, kernel, strides, padding, name=f"{prefix}_{suffix}")
    return x


def pool_branch(x, filters, name):
    """3x3/1 average pool (padding counted, as ``F.avg_pool2d``) then a 1x1 ``branch_pool`` conv."""
    x = avg_pool2d(x, 3, 1, 1, name=f"{name}_avgpool")
    return conv_chain(x, name, ("branch_pool", filters, 1))


def inception_a(x, pool_features, *, name):
    """35x35 module: 1x1; 5x5; two 3x3 (the factorised 5x5); pool (paper, Figure 5)."""
    return concat([
        conv_chain(x, name, ("branch1x1", 64, 1)),
        conv_chain(x, name, ("branch5x5_1", 48, 1), ("branch5x5_2", 64, 5, 1, 2)),
        conv_chain(
            x, name, ("branch3x3dbl_1", 64, 1), ("branch3x3dbl_2", 96, 3, 1, 1),
            ("branch3x3dbl_3", 96, 3, 1, 1),
        ),
        pool_branch(x, pool_features, name),
    ], name)


def inception_b(x, *, name):
    """35 -> 17 grid reduction: stride-2 3x3, stride-2 double 3x3, stride-2 max pool."""
    return concat([
        conv_chain(x, name, ("branch3x3", 384, 3, 2)),
        conv_chain(
            x, name, ("branch3x3dbl_1", 64, 1), ("branch3x3dbl_2", 96, 3, 1, 1),
            ("branch3x3dbl_3", 96, 3, 2),
        ),
        max_pool2d(x, 3, 2, name=f"{name}_maxpool"),
    ], name)


def inception_c(x, channels_7x7, *, name):
    """17x17 module with 7x7 convolutions factorised into 1x7 and 7x1 (paper, Figure 6)."""
    c7 = channels_7x7
    row, col = ((1, 7), 1, (0, 3)), ((7, 1), 1, (3, 0))
    return concat([
        conv_chain(x, name, ("branch1x1", 192, 1)),
        conv_chain(
            x, name, ("branch7x7_1", c7, 1), ("branch7x7_2", c7, *row), ("branch7x7_3", 192, *col),
        ),
        conv_chain(
            x, name, ("branch7x7dbl_1", c7, 1), ("branch7x7dbl_2", c7, *col),
            ("branch7x7dbl_3", c7, *row), ("branch7x7dbl_4", c7, *col),
            ("branch7x7dbl_5", 192, *row),
        ),
        pool_branch(x, 192, name),
    ], name)


def inception_d(x, *, name):
    """17 -> 8 grid reduction (paper, Figure 10)."""
    return concat([
        conv_chain(x, name, ("branch3x3_1", 192, 1), ("branch3x3_2", 320, 3, 2)),
        conv_chain(
            x, name, ("branch7x7x3_1", 192, 1), ("branch7x7x3_2", 192, (1, 7), 1, (0, 3)),
            ("branch7x7x3_3", 192, (7, 1), 1, (3, 0)), ("branch7x7x3_4", 192, 3, 2),
        ),
        max_pool2d(x, 3, 2, name=f"{name}_maxpool"),
    ], name)


def expanded_pair(x, prefix, a, b):
    """Module E's parallel 1x3 and 3x1 convs on the same input, concatenated."""
    return concat([
        conv_chain(x, prefix, (a, 384, (1, 3), 1, (0, 1))),
        conv_chain(x, prefix, (b, 384, (3, 1), 1, (1, 0))),
    ], f"{prefix}_{a}_{b}")


def inception_e(x, *, name):
    """8x8 module with expanded filter banks (paper, Figure 7)."""
    branch3x3 = conv_chain(x, name, ("branch3x3_1", 384, 1))
    branch3x3dbl = conv_chain(x, name, ("branch3x3dbl_1", 448, 1), ("branch3x3dbl_2", 384, 3, 1, 1))
    return concat([
        conv_chain(x, name, ("branch1x1", 320, 1)),
        expanded_pair(branch3x3, name, "branch3x3_2a", "branch3x3_2b"),
        expanded_pair(branch3x3dbl, name, "branch3x3dbl_3a", "branch3x3dbl_3b"),
        pool_branch(x, 192, name),
    ], name)


def stem(x):
    """Conv2d_1a .. Conv2d_4a with two 3x3/2 max pools: 299 -> 35."""
    x = conv_chain(
        x, "Conv2d", ("1a_3x3", 32, 3, 2), ("2a_3x3", 32, 3), ("2b_3x3", 64, 3, 1, 1),
    )
    x = max_pool2d(x, 3, 2, name="maxpool1")
    x = conv_chain(x, "Conv2d", ("3b_1x1", 80, 1), ("4a_3x3", 192, 3))
    return max_pool2d(x, 3, 2, name="maxpool2")


def aux_logits_head(x, classes, classifier_activation):
    """torchvision's ``InceptionAux``: 5x5/3 avg pool, 1x1 conv 128, 5x5 conv 768, pool, fc."""
    x = avg_pool2d(x, 5, 3, name="AuxLogits_avgpool")
    x = conv_chain(x, "AuxLogits", ("conv0", 128, 1), ("conv1", 768, 5))
    x = layers.GlobalAveragePooling2D(name="AuxLogits_pool")(x)
    x = dense(x, classes, name="AuxLogits_fc")
    return classifier_output(x, classifier_activation, name="AuxLogits_predictions")


def inception_v3_graph(x, aux_head=None):
    """The stem and the eleven mixed modules; ``aux_head(x)`` taps Mixed_6e."""
    x = stem(x)
    for name, pool_features in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
        x = inception_a(x, pool_features, name=name)
    x = inception_b(x, name="Mixed_6a")
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        x = inception_c(x, c7, name=name)
    if aux_head is not None:
        aux_head(x)
    x = inception_d(x, name="Mixed_7a")
    x = inception_e(x, name="Mixed_7b")
    return inception_e(x, name="Mixed_7c")


def _validate(img_input, include_top, aux_logits, transform_input):
    for option, value in (("aux_logits", aux_logits), ("transform_input", transform_input)):
        if not isinstance(value, bool):
            raise ValueError(f"inception_v3: {option} must be True or False; got {value!r}.")
    if not aux_logits:
        return
    if not include_top:
        raise ValueError("inception_v3: aux_logits=True adds a classifier head, so it needs include_top=True.")
    spatial = spatial_shape(img_input)
    if any(s is None or s < AUX_MIN_SIZE for s in spatial):
        raise ValueError(
            f"inception_v3: aux_logits=True needs a fixed input of at least {AUX_MIN_SIZE}x"
            f"{AUX_MIN_SIZE} (its 5x5/3 pool and 5x5 conv need the 17x17 grid); got "
            f"{tuple(spatial)}."
        )


def _inception_v3(img_input, *, include_top, classes, classifier_activation, pooling,
                  aux_logits=False, transform_input=False):
    _validate(img_input, include_top, aux_logits, transform_input)
    x = transform_input_layer(img_input) if transform_input else img_input
    aux_outputs = []

    def aux_head(features):
        aux_outputs.append(aux_logits_head(features, classes, classifier_activation))

    x = inception_v3_graph(x, aux_head if aux_logits else None)
    if not include_top:
        return global_pool(x, pooling)
    main = pooled_dropout_fc_head(x, classes, classifier_activation, 0.5)
    return [main, *aux_outputs] if aux_logits else main


@register_model(
    "inception_v3", family="inception", builder=_inception_v3, preprocess_input=preprocess_input,
    paper=INCEPTION_V3_PAPER, year=2015, params=23_834_568, input_shape=(299, 299, 3), min_size=75,
    reference="torchvision:inception_v3",
    # Weight conversion: torchvision's published file holds the auxiliary head AuxLogits.
    torch_mapping=aux_head_mapping(r"^AuxLogits\."),
    feature_layers=("Conv2d_4a_3x3", "Mixed_5d", "Mixed_6e", "Mixed_7c"),
    top1=77.294, top1_source="torchvision Inception_V3_Weights.IMAGENET1K_V1",
    notes=(
        "Without the auxiliary head (torchvision's inference forward ignores it); "
        "aux_logits=True gives outputs [main, aux] and 27,161,264 params (inputs >= 299)."
    ),
)
def InceptionV3(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """torchvision's Inception v3 (Szegedy et al. 2015), without the auxiliary head by default."""
    return InceptionV3.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                  classifier_activation, name, **kwargs)
