"""Network in Network (Lin, Chen and Yan, 2013), the CIFAR-10 model.

Each *mlpconv* block is a spatial convolution followed by two 1x1 convolutions
(a small MLP shared over positions, Sec. 2.1), all with ReLU; the last block
produces one map per class and global average pooling replaces the fully
connected classifier (Sec. 3.2), so the network has no FC layer.

The configuration is the authors' CIFAR-10 model as published in the Caffe
Model Zoo (github.com/mavenlin's ``cifar10_nin`` gist) and widely reproduced
(e.g. jiecaoyu/pytorch-nin-cifar10 ``original.py``):

====== =================================  ================================
block  mlpconv (filters, kernel)           then
====== =================================  ================================
1      conv1 192@5x5, cccp1 160, cccp2 96  3x3/2 max pool (pad 1), dropout 0.5
2      conv2 192@5x5, cccp3 192, cccp4 192 3x3/2 avg pool (pad 1), dropout 0.5
3      conv3 192@3x3, cccp5 192, cccp6 10  global average pool -> softmax
====== =================================  ================================

966,986 parameters for 10 classes (all convolutions have biases). The pools use
the PyTorch reproduction's padding 1 (32 -> 16 -> 8, the sizes of Caffe's
ceil-mode pools). As in the Caffe model, cccp6 is followed by a ReLU before the
global average pooling. Layer names are the Caffe model's (``conv1``,
``cccp1`` ...), since torchvision/timm have no NiN.
"""

from __future__ import annotations

from keras import layers

from keras_cnnclassics.blocks import avg_pool2d, classifier_output, conv2d, global_pool, max_pool2d
from keras_cnnclassics.initializers import host_he_normal
from keras_cnnclassics.preprocessing import unit_preprocess_input as preprocess_input
from keras_cnnclassics.registry import register_model

__all__ = ["NiN", "preprocess_input"]

NIN_PAPER = "M. Lin, Q. Chen, S. Yan. Network In Network. ICLR 2014 (arXiv:1312.4400, 2013)."

# Each mlpconv: (spatial conv name, filters, kernel) and its 1x1 convs (name, filters).
# The last block's final 1x1 conv, cccp6 (one map per class), is the model's top.
MLPCONV_BLOCKS = (
    (("conv1", 192, 5), (("cccp1", 160), ("cccp2", 96))),
    (("conv2", 192, 5), (("cccp3", 192), ("cccp4", 192))),
    (("conv3", 192, 3), (("cccp5", 192),)),
)


def conv_relu(x, filters, kernel, name):
    """A stride-1 "same" conv with bias and ReLU, as every layer of the Caffe model."""
    return conv2d(
        x, filters, kernel, 1, kernel // 2, name=name, activation="relu",
        kernel_initializer=host_he_normal(),
    )


def mlpconv(x, spatial, pointwise):
    """One mlpconv block (Sec. 2.1): a kxk conv then 1x1 convs, each with ReLU."""
    name, filters, kernel = spatial
    x = conv_relu(x, filters, kernel, name)
    for name, filters in pointwise:
        x = conv_relu(x, filters, 1, name)
    return x


def _nin(img_input, *, include_top, classes, classifier_activation, pooling, dropout=0.5):
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"nin: dropout must be in [0, 1); got {dropout!r}.")
    block1, block2, block3 = MLPCONV_BLOCKS
    x = mlpconv(img_input, *block1)
    x = max_pool2d(x, 3, 2, 1, name="pool1")
    x = layers.Dropout(dropout, name="drop1")(x)
    x = mlpconv(x, *block2)
    x = avg_pool2d(x, 3, 2, 1, name="pool2")
    x = layers.Dropout(dropout, name="drop2")(x)
    x = mlpconv(x, *block3)
    if not include_top:
        return global_pool(x, pooling)
    # Class maps + global average pooling instead of fully connected layers (Sec. 3.2).
    x = conv_relu(x, classes, 1, "cccp6")
    x = layers.GlobalAveragePooling2D(name="pool3")(x)
    return classifier_output(x, classifier_activation)


@register_model(
    "nin", family="nin", builder=_nin, preprocess_input=preprocess_input, paper=NIN_PAPER, year=2013,
    params=966_986, input_shape=(32, 32, 3), min_size=1, default_classes=10,
    feature_layers=("cccp2", "cccp4", "cccp5"),
    notes=(
        "CIFAR-10 model of the Caffe Model Zoo (192-160-96 / 192-192-192 / 192-192-10, "
        "5x5/5x5/3x3); paper Table 1: 10.41 % test error with dropout (8.81 % with augmentation)."
    ),
)
def NiN(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
        classes=10, classifier_activation="softmax", name=None, **kwargs):
    """Network in Network, the CIFAR-10 model: three mlpconv blocks, no FC layer."""
    return NiN.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                          classifier_activation, name, **kwargs)
