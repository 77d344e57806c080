"""SqueezeNet 1.0 and 1.1 (Iandola et al., 2016), as torchvision's.

AlexNet-level accuracy with 50x fewer parameters: Fire modules (a 1x1
"squeeze" conv feeding parallel 1x1 and 3x3 "expand" convs, joined with
``Concatenate``), late downsampling, no FC layers: the classifier is dropout,
a 1x1 conv to ``classes`` maps, ReLU and global average pooling. torchvision's
``MaxPool2d(3, 2, ceil_mode=True)`` is reproduced exactly (-inf padding at the
bottom/right, :func:`keras_cnnclassics.blocks.max_pool2d`). Version 1.1 (from
the SqueezeNet repository) starts with a 3x3/2 conv of 64 filters and pools
earlier: 2.4x less computation, same accuracy.

Layer names are torchvision's: ``features_0``, ``features_3_squeeze``,
``features_3_expand1x1``, ``features_3_expand3x3``, ``classifier_1``.
"""

from keras import layers

from keras_cnnclassics.blocks import classifier_output, concat, conv2d, global_pool, max_pool2d, relu
from keras_cnnclassics.preprocessing import torch_preprocess_input as preprocess_input
from keras_cnnclassics.registry import register_model

__all__ = ["SqueezeNet1_0", "SqueezeNet1_1", "preprocess_input"]

SQUEEZENET_PAPER = (
    "F. N. Iandola, S. Han, M. W. Moskewicz, K. Ashraf, W. J. Dally, K. Keutzer. "
    "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model "
    "size. arXiv:1602.07360, 2016."
)

# torchvision's ``features`` Sequential: ("conv", filters, kernel, stride),
# "M" for a 3x3/2 ceil-mode max pool, (squeeze, expand1x1, expand3x3) for a Fire.
CONFIGS = {
    "1_0": (
        ("conv", 96, 7, 2), "M", (16, 64, 64), (16, 64, 64), (32, 128, 128), "M",
        (32, 128, 128), (48, 192, 192), (48, 192, 192), (64, 256, 256), "M", (64, 256, 256),
    ),
    "1_1": (
        ("conv", 64, 3, 2), "M", (16, 64, 64), (16, 64, 64), "M", (32, 128, 128),
        (32, 128, 128), "M", (48, 192, 192), (48, 192, 192), (64, 256, 256), (64, 256, 256),
    ),
}


def fire(x, squeeze, expand1x1, expand3x3, *, name):
    """Fire module (paper, sec. 3.2): squeeze 1x1, then expand 1x1 and 3x3 in parallel."""
    x = conv2d(x, squeeze, 1, name=f"{name}_squeeze", activation="relu")
    return concat([
        conv2d(x, expand1x1, 1, name=f"{name}_expand1x1", activation="relu"),
        conv2d(x, expand3x3, 3, 1, 1, name=f"{name}_expand3x3", activation="relu"),
    ], name)


def layer_names(config):
    """``(first, output)`` torchvision ``features_N`` names of each config item.

    A conv and its ReLU are two Sequential entries; pools and Fires are one.
    """
    index, names = 0, []
    for item in config:
        width = 2 if item != "M" and item[0] == "conv" else 1
        names.append((f"features_{index}", f"features_{index + width - 1}"))
        index += width
    return names


def squeezenet_features(x, config):
    """torchvision's ``features``: the conv stem, ceil-mode pools and Fire modules."""
    for item, (name, output_name) in zip(config, layer_names(config)):
        if item == "M":
            x = max_pool2d(x, 3, 2, name=name, ceil_mode=True)
        elif item[0] == "conv":
            _, filters, kernel, stride = item
            x = relu(conv2d(x, filters, kernel, stride, name=name), output_name)
        else:
            x = fire(x, *item, name=name)
    return x


def stage_layers(config):
    """The output before each downsampling pool after the stem, and the last (strides 4, 8, 16)."""
    outputs = [output for _, output in layer_names(config)]
    ends = [outputs[i - 1] for i, item in enumerate(config) if item == "M" and i > 1]
    return tuple(ends + [outputs[-1]])


def _squeezenet(img_input, *, include_top, classes, classifier_activation, pooling, version, dropout=0.5):
    if version not in CONFIGS:
        raise ValueError(f"squeezenet: version must be one of {sorted(CONFIGS)}; got {version!r}.")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"squeezenet: dropout must be a number in [0, 1); got {dropout!r}.")
    x = squeezenet_features(img_input, CONFIGS[version])
    if not include_top:
        return global_pool(x, pooling)
    x = layers.Dropout(dropout, name="classifier_0")(x)
    x = conv2d(x, classes, 1, name="classifier_1", activation="relu")
    x = layers.GlobalAveragePooling2D(name="classifier_3")(x)
    return classifier_output(x, classifier_activation)


def _squeezenet_entry(version, params, min_size, top1):
    """``register_model`` for torchvision's ``squeezenet<version>``."""
    return register_model(
        f"squeezenet{version}", family="squeezenet", builder=_squeezenet, preprocess_input=preprocess_input,
        options={"version": version}, paper=SQUEEZENET_PAPER, year=2016, params=params, min_size=min_size,
        reference=f"torchvision:squeezenet{version}", feature_layers=stage_layers(CONFIGS[version]),
        top1=top1, top1_source=f"torchvision SqueezeNet{version}_Weights.IMAGENET1K_V1",
        notes="Strides 4, 8 and 16 only: the last Fire module works at 1/16 resolution.",
    )


@_squeezenet_entry("1_0", 1_248_424, 21, 58.092)
def SqueezeNet1_0(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                  classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """torchvision's SqueezeNet 1.0 (Iandola et al. 2016)."""
    return SqueezeNet1_0.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                    classifier_activation, name, **kwargs)


@_squeezenet_entry("1_1", 1_235_496, 17, 58.178)
def SqueezeNet1_1(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                  classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """torchvision's SqueezeNet 1.1: a 3x3/2 stem of 64 filters and earlier pooling, 2.4x less computation than 1.0."""
    return SqueezeNet1_1.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                    classifier_activation, name, **kwargs)
