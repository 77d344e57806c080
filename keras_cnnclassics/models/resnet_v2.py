"""Pre-activation ResNet (ResNet v2) for ImageNet.

K. He, X. Zhang, S. Ren, J. Sun. Identity Mappings in Deep Residual Networks.
ECCV 2016 (arXiv:1603.05027). The networks are the residual family's blocks with
``style="preact"`` (see :mod:`keras_cnnclassics.models.resnet`); they have a module
of their own, as in keras.applications (``resnet_v2``), because their reference
weights (timm ``resnetv2_*``) expect other inputs: ``preprocess_input`` scales
[0, 255] to [-1, 1] (mean = std = 0.5), where ResNet's uses ImageNet's mean/std.
"""

from __future__ import annotations

from keras_cnnclassics.models import resnet
from keras_cnnclassics.preprocessing import normalize

__all__ = [
    "PreActResNet18", "PreActResNet34", "PreActResNet50", "PreActResNet101", "PreActResNet152",
    "preprocess_input",
]


def preprocess_input(x, data_format=None):
    """timm's ``resnetv2`` normalisation: ``(x / 255 - 0.5) / 0.5`` (RGB, to [-1, 1])."""
    del data_format  # the configured image_data_format decides the channel axis
    return normalize(x, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def _resnet_v2(img_input, **options):
    """ResNet's ImageNet builder; a function of this module so the family is ``resnet_v2``."""
    return resnet.build_imagenet_resnet(img_input, **options)


def _preact(depth, params):
    return resnet.register_resnet(
        f"preact_resnet{depth}", f"PreActResNet{depth}", builder=_resnet_v2,
        paper=resnet.PREACT_PAPER, year=2016, params=params, reference=f"timm:resnetv2_{depth}",
        depth=depth, style="preact", doc=f"Instantiates the pre-activation ResNet-{depth} (timm resnetv2_{depth}).",
    )


PreActResNet18 = _preact(18, 11_687_720)
PreActResNet34 = _preact(34, 21_795_880)
PreActResNet50 = _preact(50, 25_549_352)
PreActResNet101 = _preact(101, 44_541_480)
PreActResNet152 = _preact(152, 60_185_128)
