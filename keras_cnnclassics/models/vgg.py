"""VGG-11/13/16/19 with and without batch normalisation (Simonyan and Zisserman, 2014).

Configurations A, B, D, E of the paper's Table 1: stacks of 3x3 convolutions
(two 3x3 convs see a 5x5 field, three see 7x7, with fewer parameters and more
non-linearities), 2x2 max pooling, FC-4096-FC-4096-FC. As torchvision: an
adaptive 7x7 average pool before the classifier (any input >= 32x32), dropout
after each hidden FC, layer names ``features.N``/``classifier.N``.
"""

from keras_cnnclassics.blocks import (
    adaptive_avg_pool,
    batch_norm,
    conv2d,
    flatten_mlp_head,
    global_pool,
    max_pool2d,
    relu,
)
from keras_cnnclassics.preprocessing import torch_preprocess_input as preprocess_input
from keras_cnnclassics.registry import register_model

__all__ = [
    "VGG11", "VGG11_BN", "VGG13", "VGG13_BN", "VGG16", "VGG16_BN", "VGG19", "VGG19_BN",
    "preprocess_input",
]

VGG_PAPER = (
    "K. Simonyan, A. Zisserman. Very Deep Convolutional Networks for Large-Scale "
    "Image Recognition. ICLR 2015 (arXiv:1409.1556, 2014)."
)

# Table 1 of the paper: filters per conv, "M" for a 2x2 max pool.
CONFIGS = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"),
}


def vgg_features(x, config, batch_normalization):
    """torchvision's ``make_layers``: conv[-BN]-ReLU units and max pools, ``features.N``."""
    index = 0
    for item in config:
        if item == "M":
            x = max_pool2d(x, 2, 2, name=f"features_{index}")
            index += 1
            continue
        x = conv2d(x, item, 3, 1, 1, name=f"features_{index}")
        index += 1
        if batch_normalization:
            x = batch_norm(x, name=f"features_{index}")
            index += 1
        x = relu(x, f"features_{index}")
        index += 1
    return x


def feature_layer_names(config, batch_normalization):
    """Names of the max pools at strides 4, 8, 16, 32 (the stage ends)."""
    index, pools = 0, []
    for item in config:
        if item == "M":
            pools.append(f"features_{index}")
            index += 1
        else:
            index += 3 if batch_normalization else 2
    return tuple(pools[1:])


def _stage_layers(options):
    return feature_layer_names(CONFIGS[options["depth"]], options.get("batch_norm", False))


def _vgg(img_input, *, include_top, classes, classifier_activation, pooling, depth, batch_norm=False):
    if depth not in CONFIGS:
        raise ValueError(f"vgg: depth must be one of {sorted(CONFIGS)}; got {depth!r}.")
    if not isinstance(batch_norm, bool):
        raise ValueError(f"vgg: batch_norm must be True or False; got {batch_norm!r}.")
    x = vgg_features(img_input, CONFIGS[depth], batch_norm)
    if not include_top:
        return global_pool(x, pooling)
    x = adaptive_avg_pool(x, 7, name="avgpool")
    return flatten_mlp_head(
        x, (4096, 4096), classes, classifier_activation,
        names=("classifier_0", "classifier_3", "classifier_6"), dropout_first=False,
    )


def _vgg_entry(name, depth, batch_norm, params, top1):
    """``register_model`` for torchvision's ``name``, with its IMAGENET1K_V1 top-1."""
    enum = f"VGG{depth}" + ("_BN" if batch_norm else "")
    return register_model(
        name, family="vgg", builder=_vgg, preprocess_input=preprocess_input,
        options={"depth": depth, "batch_norm": batch_norm}, paper=VGG_PAPER, year=2014, params=params,
        min_size=32, feature_layers=_stage_layers, reference=f"torchvision:{name}", top1=top1,
        top1_source=f"torchvision {enum}_Weights.IMAGENET1K_V1",
    )


@_vgg_entry("vgg11", 11, False, 132_863_336, 69.020)
def VGG11(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
          classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """VGG-11 (configuration A of Table 1)."""
    return VGG11.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                            classifier_activation, name, **kwargs)


@_vgg_entry("vgg11_bn", 11, True, 132_868_840, 70.370)
def VGG11_BN(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """VGG-11 (configuration A of Table 1) with batch normalisation after each convolution."""
    return VGG11_BN.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                               classifier_activation, name, **kwargs)


@_vgg_entry("vgg13", 13, False, 133_047_848, 69.928)
def VGG13(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
          classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """VGG-13 (configuration B of Table 1)."""
    return VGG13.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                            classifier_activation, name, **kwargs)


@_vgg_entry("vgg13_bn", 13, True, 133_053_736, 71.586)
def VGG13_BN(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """VGG-13 (configuration B of Table 1) with batch normalisation after each convolution."""
    return VGG13_BN.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                               classifier_activation, name, **kwargs)


@_vgg_entry("vgg16", 16, False, 138_357_544, 71.592)
def VGG16(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
          classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """VGG-16 (configuration D of Table 1)."""
    return VGG16.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                            classifier_activation, name, **kwargs)


@_vgg_entry("vgg16_bn", 16, True, 138_365_992, 73.360)
def VGG16_BN(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """VGG-16 (configuration D of Table 1) with batch normalisation after each convolution."""
    return VGG16_BN.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                               classifier_activation, name, **kwargs)


@_vgg_entry("vgg19", 19, False, 143_667_240, 72.376)
def VGG19(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
          classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """VGG-19 (configuration E of Table 1)."""
    return VGG19.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                            classifier_activation, name, **kwargs)


@_vgg_entry("vgg19_bn", 19, True, 143_678_248, 74.218)
def VGG19_BN(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """VGG-19 (configuration E of Table 1) with batch normalisation after each convolution."""
    return VGG19_BN.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                               classifier_activation, name, **kwargs)
