"""Pre-activation ResNet (ResNet v2) for ImageNet.

K. He, X. Zhang, S. Ren, J. Sun. Identity Mappings in Deep Residual Networks.
ECCV 2016 (arXiv:1603.05027). The networks are the residual family's builder with
``style="preact"`` (see :mod:`keras_cnnclassics.models.resnet`); as in
keras.applications (``resnet_v2``) they have a module of their own because their
reference weights (timm ``resnetv2_*``) expect other inputs: this module's
``preprocess_input`` scales [0, 255] to [-1, 1] (mean = std = 0.5), where ResNet's
uses ImageNet's mean/std. Their registry family is ``resnet_v2``.
"""

from __future__ import annotations

from keras_cnnclassics.models.resnet import PREACT_PAPER, register_resnet
from keras_cnnclassics.preprocessing import inception_preprocess_input as preprocess_input

__all__ = [
    "PreActResNet18", "PreActResNet34", "PreActResNet50", "PreActResNet101", "PreActResNet152",
    "preprocess_input",
]


def _preact(depth, params):
    """timm's ``resnetv2_<depth>``."""
    return register_resnet(
        f"preact_resnet{depth}", family="resnet_v2", preprocess=preprocess_input, paper=PREACT_PAPER,
        year=2016, params=params, reference=f"timm:resnetv2_{depth}", depth=depth, style="preact",
    )


@_preact(18, 11_687_720)
def PreActResNet18(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                   classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """Pre-activation ResNet-18 (timm ``resnetv2_18``)."""
    return PreActResNet18.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                     classifier_activation, name, **kwargs)


@_preact(34, 21_795_880)
def PreActResNet34(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                   classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """Pre-activation ResNet-34 (timm ``resnetv2_34``)."""
    return PreActResNet34.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                     classifier_activation, name, **kwargs)


@_preact(50, 25_549_352)
def PreActResNet50(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                   classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """Pre-activation ResNet-50 (timm ``resnetv2_50``)."""
    return PreActResNet50.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                     classifier_activation, name, **kwargs)


@_preact(101, 44_541_480)
def PreActResNet101(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                    classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """Pre-activation ResNet-101 (timm ``resnetv2_101``)."""
    return PreActResNet101.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                      classifier_activation, name, **kwargs)


@_preact(152, 60_185_128)
def PreActResNet152(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                    classes=1000, classifier_activation="softmax", name=None, **kwargs):
    """Pre-activation ResNet-152 (timm ``resnetv2_152``)."""
    return PreActResNet152.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                      classifier_activation, name, **kwargs)
