"""LeNet-5 (LeCun, Bottou, Bengio and Haffner, 1998) and the CS231n lecture-9 variant.

``lenet5`` follows the paper: 32x32x1 input, C1 (6@5x5) - S2 - C3 (16@5x5 with
the paper's Table I connection table) - S4 - C5 (120@5x5) - F6 (84) - output.
Choices made where the paper's 1998 machinery has no modern layer:

* S2/S4 are the paper's *trainable* subsampling: each map's 2x2 average times a
  learned coefficient plus a learned bias (an ``AveragePooling2D`` followed by a
  1x1 ``DepthwiseConv2D``: 2 parameters per map, 12 for S2 and 32 for S4),
  followed by the squashing function.
* The squashing function is ``tanh`` (the paper's ``1.7159 tanh(2a/3)`` up to a
  scale that the next layer absorbs).
* C3 uses the paper's connection table (60 5x5 kernels, 1,516 parameters);
  ``connection_table=False`` gives a full 6->16 convolution (2,416).
* The output layer is a softmax Dense(10) instead of the paper's fixed Euclidean
  RBF units, so it trains with cross-entropy. C1..F6 hold exactly the paper's
  60,000 trainable parameters; the Dense output adds 850, 60,850 in total.

``lenet5_cs231n`` is the variant taught in CS231n lecture 9 (Stanford, "CNN
Architectures"): 1x28x28 input,
conv 20@5x5 (size kept) - ReLU - maxpool - conv 50@5x5 - ReLU - maxpool -
flatten 2,450 - FC 500 - ReLU - FC 10.
"""

import keras
from keras import layers

from keras_cnnclassics.blocks import avg_pool2d, classifier_output, conv2d, dense, global_pool, max_pool2d
from keras_cnnclassics.layers import ConnectionTableConv2D
from keras_cnnclassics.preprocessing import unit_preprocess_input as preprocess_input
from keras_cnnclassics.registry import register_model

__all__ = ["LeNet5", "LeNet5_CS231n", "preprocess_input"]

LENET_PAPER = (
    "Y. LeCun, L. Bottou, Y. Bengio, P. Haffner. Gradient-based learning applied to "
    "document recognition. Proc. IEEE 86(11), 1998."
)
CS231N = "CS231n (Stanford) lecture 9, 'CNN Architectures' (LeNet-5 as taught there)."

# LeCun et al. 1998, Table I: the S2 maps (columns) each C3 map (row) is connected to.
C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


def _subsample(x, activation, name):
    """The paper's trainable subsampling: 2x2 average * coefficient + bias, squashed."""
    x = avg_pool2d(x, 2, name=f"{name}_pool")
    return layers.DepthwiseConv2D(1, activation=activation, name=name)(x)


def _lenet5(img_input, *, include_top, classes, classifier_activation, pooling,
            connection_table=True, activation="tanh"):
    if not isinstance(connection_table, bool):
        raise ValueError(f"lenet5: connection_table must be True or False; got {connection_table!r}.")
    try:
        keras.activations.get(activation)
    except (ValueError, TypeError):
        raise ValueError(
            f"lenet5: unknown activation {activation!r}; use a Keras activation name such as "
            "'tanh' (the paper's) or 'relu', or a callable."
        ) from None
    x = conv2d(img_input, 6, 5, name="c1", activation=activation, kernel_initializer="glorot_uniform")
    x = _subsample(x, activation, "s2")
    if connection_table:
        x = ConnectionTableConv2D(C3_TABLE, 5, activation=activation, name="c3")(x)
    else:
        x = conv2d(x, 16, 5, name="c3", activation=activation, kernel_initializer="glorot_uniform")
    x = _subsample(x, activation, "s4")
    x = conv2d(x, 120, 5, name="c5", activation=activation, kernel_initializer="glorot_uniform")
    if not include_top:
        return global_pool(x, pooling)
    x = layers.Flatten(name="flatten")(x)
    x = dense(x, 84, name="f6", activation=activation)
    return classifier_output(dense(x, classes, name="output"), classifier_activation)


def _lenet5_cs231n(img_input, *, include_top, classes, classifier_activation, pooling):
    x = conv2d(img_input, 20, 5, padding=2, name="conv1", activation="relu")
    x = max_pool2d(x, 2, name="pool1")
    x = conv2d(x, 50, 5, padding=2, name="conv2", activation="relu")
    x = max_pool2d(x, 2, name="pool2")
    if not include_top:
        return global_pool(x, pooling)
    x = layers.Flatten(name="flatten")(x)
    x = dense(x, 500, name="fc1", activation="relu")
    return classifier_output(dense(x, classes, name="fc2"), classifier_activation)


@register_model(
    "lenet5", family="lenet", builder=_lenet5, preprocess_input=preprocess_input,
    paper=LENET_PAPER, year=1998, params=60_850, input_shape=(32, 32, 1), min_size=32,
    default_classes=10, flexible_top=False,
    notes="C1..F6 hold the paper's 60,000 parameters; the softmax output adds 850.",
)
def LeNet5(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
           classes=10, classifier_activation="softmax", name=None, **kwargs):
    """LeNet-5 as in LeCun et al. (1998): trainable subsampling, Table I's C3 connections."""
    return LeNet5.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                             classifier_activation, name, **kwargs)


@register_model(
    "lenet5_cs231n", family="lenet", builder=_lenet5_cs231n, preprocess_input=preprocess_input,
    paper=CS231N + " After " + LENET_PAPER, year=1998, params=1_256_080, input_shape=(28, 28, 1),
    min_size=4, default_classes=10, flexible_top=False,
    notes="conv20-pool-conv50-pool-FC500-FC10 with 'same' 5x5 convolutions (flatten 50x7x7=2450).",
)
def LeNet5_CS231n(include_top=True, weights=None, input_tensor=None, input_shape=None, pooling=None,
                  classes=10, classifier_activation="softmax", name=None, **kwargs):
    """The LeNet-5 variant of CS231n lecture 9 (1x28x28 input, ReLU, max pooling)."""
    return LeNet5_CS231n.spec.build(include_top, weights, input_tensor, input_shape, pooling, classes,
                                    classifier_activation, name, **kwargs)
