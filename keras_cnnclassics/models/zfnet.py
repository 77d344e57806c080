"""ZFNet (Zeiler and Fergus, 2013): AlexNet with a 7x7 stride-2 first convolution.

Figure 3 of the paper: 224x224 input, conv1 96@7x7/2 -> 110x110, 3x3/2 max pool
-> 55x55 (ceil mode) and contrast normalisation, conv2 256@5x5/2 -> 26x26, pool
-> 13x13 and normalisation, conv3-5 384/384/256@3x3, pool -> 6x6, FC 4096-4096.
``zfnet_wide`` uses 512/1024/512 filters in conv3-5, the variant of the paper's
Table 1 that CS231n lecture 9 presents as ZFNet.
"""

from keras_cnnclassics.models.alexnet import ConvLayer, alexnet_head, conv_stack
from keras_cnnclassics.preprocessing import torch_preprocess_input as preprocess_input
from keras_cnnclassics.registry import register_model

__all__ = ["ZFNet", "ZFNetWide", "preprocess_input"]

ZFNET_PAPER = (
    "M. D. Zeiler, R. Fergus. Visualizing and Understanding Convolutional Networks. "
    "ECCV 2014 (arXiv:1311.2901, 2013)."
)


def zfnet_stack(conv345):
    a, b, c = conv345
    return (
        ConvLayer(96, 7, 2, 1, lrn=True, pool=True, ceil_pool=True, lrn_after_pool=True),
        ConvLayer(256, 5, 2, 0, lrn=True, pool=True, ceil_pool=True, lrn_after_pool=True),
        ConvLayer(a, 3, 1, 1),
        ConvLayer(b, 3, 1, 1),
        ConvLayer(c, 3, 1, 1, pool=True),
    )


def _zfnet(img_input, *, include_top, classes, classifier_activation, pooling, conv345=(384, 384, 256)):
    if len(conv345) != 3 or any(not isinstance(f, int) or f <= 0 for f in conv345):
        raise ValueError(f"zfnet: conv345 must be three positive integers; got {conv345!r}.")
    x = conv_stack(img_input, zfnet_stack(tuple(conv345)))
    return alexnet_head(x, include_top, classes, classifier_activation, pooling, adaptive=False)


def _zfnet_entry(name, params, top1, top1_source, **metadata):
    """``register_model`` with what both ZFNets share."""
    return register_model(
        name, family="zfnet", builder=_zfnet, preprocess_input=preprocess_input, paper=ZFNET_PAPER,
        year=2013, params=params, min_size=63, flexible_top=False,
        feature_layers=("features_3", "features_4", "features_12", "features_14"),
        top1=top1, top1_source=top1_source, **metadata,
    )


@_zfnet_entry(
    "zfnet", 62_357_608, 61.6, "Zeiler & Fergus 2013, Table 2 (1 convnet, val top-1 error 38.4 %)",
)
def ZFNet(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
          classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """ZFNet as in Figure 3 of Zeiler & Fergus (2013)."""
    return ZFNet.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                            classifier_activation, name, **kwargs)


@_zfnet_entry(
    "zfnet_wide", 107_627_624, 62.5,
    "Zeiler & Fergus 2013, Table 2 (1 convnet, layers 3-5 with 512/1024/512 maps, val top-1 error 37.5 %)",
    options={"conv345": (512, 1024, 512)},
    notes="conv3-5 with 512/1024/512 filters (paper Table 1; the CS231n ZFNet).",
)
def ZFNetWide(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
              classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """ZFNet with 512/1024/512 filters in conv3-5 (Zeiler & Fergus 2013, Table 1)."""
    return ZFNetWide.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                classifier_activation, name, **kwargs)
