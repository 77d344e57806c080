"""AlexNet (Krizhevsky, Sutskever and Hinton, 2012), two ways.

* ``alexnet`` is torchvision's single-tower AlexNet (64/192/384/256/256 filters,
  from Krizhevsky's "One weird trick" paper, 2014): 61,100,840 parameters, an
  adaptive 6x6 average pool before the classifier so any input >= 63x63 works
  (224 and 227 give the 6x6 map directly), layer names as torchvision's.
* ``alexnet_original`` is the 2012 paper's network: 227x227 input, 96/256/384/
  384/256 filters, the two-GPU towers as grouped convolutions (conv2, conv4,
  conv5 see only their own tower), local response normalisation after conv1 and
  conv2, overlapping 3x3/2 max pooling: 60,965,224 parameters.

The conv-stack helper here is shared with ZFNet, which is "AlexNet with a
smaller first filter and stride".
"""

from typing import NamedTuple

from keras_cnnclassics.blocks import (
    adaptive_avg_pool,
    conv2d,
    flatten_mlp_head,
    global_pool,
    max_pool2d,
)
from keras_cnnclassics.layers import LocalResponseNormalization
from keras_cnnclassics.preprocessing import torch_preprocess_input as preprocess_input
from keras_cnnclassics.registry import register_model

__all__ = ["AlexNet", "AlexNetOriginal", "preprocess_input"]

ALEXNET_PAPER = (
    "A. Krizhevsky, I. Sutskever, G. E. Hinton. ImageNet Classification with Deep "
    "Convolutional Neural Networks. NeurIPS 2012."
)
ONE_WEIRD_TRICK = (
    "A. Krizhevsky. One weird trick for parallelizing convolutional neural networks. "
    "arXiv:1404.5997, 2014 (the torchvision AlexNet)."
)


class ConvLayer(NamedTuple):
    """One conv of an AlexNet-style stack, with what follows it."""

    filters: int
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    lrn: bool = False  # local response normalisation after the ReLU
    pool: bool = False  # 3x3 stride-2 max pool after it
    ceil_pool: bool = False  # that pool in ceil mode (ZFNet)
    lrn_after_pool: bool = False  # ZFNet normalises after pooling


def conv_stack(x, stack, lrn_size=5):
    """Run an AlexNet-style list of :class:`ConvLayer`; torchvision ``features.N`` names."""
    index = 0
    for layer in stack:
        x = conv2d(
            x, layer.filters, layer.kernel, layer.stride, layer.padding,
            groups=layer.groups, name=f"features_{index}", activation="relu",
        )
        index += 2  # conv + ReLU in torchvision's Sequential
        if layer.lrn and not layer.lrn_after_pool:
            x = LocalResponseNormalization(lrn_size, name=f"features_{index}")(x)
            index += 1
        if layer.pool:
            x = max_pool2d(x, 3, 2, name=f"features_{index}", ceil_mode=layer.ceil_pool)
            index += 1
        if layer.lrn and layer.lrn_after_pool:
            x = LocalResponseNormalization(lrn_size, name=f"features_{index}")(x)
            index += 1
    return x


def alexnet_head(x, include_top, classes, classifier_activation, pooling, adaptive=True):
    """torchvision's AlexNet classifier: dropout-FC4096-dropout-FC4096-FC."""
    if not include_top:
        return global_pool(x, pooling)
    if adaptive:
        x = adaptive_avg_pool(x, 6, name="avgpool")
    return flatten_mlp_head(
        x, (4096, 4096), classes, classifier_activation,
        names=("classifier_1", "classifier_4", "classifier_6"), dropout_first=True,
    )


TORCHVISION_ALEXNET = (
    ConvLayer(64, 11, 4, 2, pool=True),
    ConvLayer(192, 5, 1, 2, pool=True),
    ConvLayer(384, 3, 1, 1),
    ConvLayer(256, 3, 1, 1),
    ConvLayer(256, 3, 1, 1, pool=True),
)


def original_alexnet_stack(towers):
    """The 2012 network; ``towers=2`` splits conv2/4/5 as the two GPUs did."""
    return (
        ConvLayer(96, 11, 4, 0, lrn=True, pool=True),
        ConvLayer(256, 5, 1, 2, groups=towers, lrn=True, pool=True),
        ConvLayer(384, 3, 1, 1),
        ConvLayer(384, 3, 1, 1, groups=towers),
        ConvLayer(256, 3, 1, 1, groups=towers, pool=True),
    )


def _alexnet(img_input, *, include_top, classes, classifier_activation, pooling):
    x = conv_stack(img_input, TORCHVISION_ALEXNET)
    return alexnet_head(x, include_top, classes, classifier_activation, pooling)


def _alexnet_original(img_input, *, include_top, classes, classifier_activation, pooling, towers=2):
    if towers not in (1, 2):
        raise ValueError(f"alexnet_original: towers must be 1 or 2; got {towers!r}.")
    x = conv_stack(img_input, original_alexnet_stack(towers))
    return alexnet_head(x, include_top, classes, classifier_activation, pooling, adaptive=False)


@register_model(
    "alexnet", family="alexnet", builder=_alexnet, preprocess_input=preprocess_input,
    paper=ONE_WEIRD_TRICK + " After " + ALEXNET_PAPER, year=2012, params=61_100_840, min_size=63,
    reference="torchvision:alexnet",
    feature_layers=("features_0", "features_2", "features_5", "features_12"),
    top1=56.522, top1_source="torchvision AlexNet_Weights.IMAGENET1K_V1",
)
def AlexNet(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
            classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """torchvision's single-tower AlexNet (accepts 224x224 and 227x227 input)."""
    return AlexNet.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                              classifier_activation, name, **kwargs)


@register_model(
    "alexnet_original", family="alexnet", builder=_alexnet_original, preprocess_input=preprocess_input,
    paper=ALEXNET_PAPER, year=2012, params=60_965_224, input_shape=(227, 227, 3), min_size=67,
    flexible_top=False, feature_layers=("features_2", "features_6", "features_12", "features_14"),
    top1=59.3, top1_source="Krizhevsky et al. 2012, Table 2 (1 CNN, val top-1 error 40.7 %)",
    notes="Two-tower grouped convolutions and LRN as in the paper; towers=1 merges them.",
)
def AlexNetOriginal(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                    classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """The original two-tower AlexNet of Krizhevsky et al. (2012)."""
    return AlexNetOriginal.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                      classifier_activation, name, **kwargs)
