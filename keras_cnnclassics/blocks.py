"""Shared building blocks: convolutions, pooling and heads with PyTorch semantics.

The families build their graphs from these helpers so that padding, BatchNorm
constants and layer names match torchvision exactly (which is what makes weight
conversion a per-layer copy):

* PyTorch pads convolutions symmetrically. Keras ``padding="same"`` equals that
  only for stride 1 and odd kernels; otherwise an explicit ``ZeroPadding2D`` and
  a ``valid`` convolution are used.
* BatchNorm uses PyTorch's ``eps=1e-5`` and momentum 0.1 (Keras momentum 0.9).
* Max pooling reproduces ``padding`` and ``ceil_mode`` (border-replicating padding).
"""

from __future__ import annotations

import keras
from keras import layers

from keras_cnnclassics import fastpath
from keras_cnnclassics.initializers import host_he_normal
from keras_cnnclassics.layers import AdaptiveAveragePooling2D, GroupedConv2D, PoolPadding2D

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


def channel_axis() -> int:
    """Axis of the channels in the configured image data format."""
    return -1 if keras.config.image_data_format() == "channels_last" else 1


def channels_of(x) -> int:
    """Static channel count of a 4-D image tensor."""
    return int(x.shape[channel_axis()])


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def _same_is_symmetric(kernel, strides, padding):
    """Whether Keras ``"same"`` pads exactly PyTorch's symmetric ``padding``: stride 1,
    odd kernels, ``padding = (k - 1) / 2`` (undilated)."""
    return strides == (1, 1) and all(k % 2 == 1 and p == (k - 1) // 2 for k, p in zip(kernel, padding))


def conv2d(
    x,
    filters,
    kernel_size,
    strides=1,
    padding=0,
    *,
    name,
    groups=1,
    dilation=1,
    use_bias=True,
    activation=None,
    kernel_initializer=None,
):
    """``torch.nn.Conv2d(..., padding=padding)`` as Keras layers named ``name``."""
    kernel, strides, padding = _pair(kernel_size), _pair(strides), _pair(padding)
    mode = "valid"
    if any(padding):
        if dilation == 1 and _same_is_symmetric(kernel, strides, padding):
            mode = "same"
        else:
            x = layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
    return conv_class(groups)(
        filters,
        kernel,
        strides=strides,
        padding=mode,
        groups=groups,
        dilation_rate=dilation,
        use_bias=use_bias,
        activation=activation,
        kernel_initializer=kernel_initializer or host_he_normal(),
        name=name,
    )(x)


def grouped_conv_fallback() -> bool:
    """True where grouped convolutions use the split-conv-concat ``GroupedConv2D``:
    the TensorFlow backend (see :class:`keras_cnnclassics.layers.GroupedConv2D`)."""
    return keras.backend.backend() == "tensorflow"


def conv_class(groups):
    """``Conv2D`` (Keras' with a PyTorch inference fast path, :mod:`keras_cnnclassics.fastpath`),
    or ``GroupedConv2D`` for grouped convs where needed."""
    return GroupedConv2D if groups > 1 and grouped_conv_fallback() else fastpath.Conv2D


def batch_norm(x, *, name, epsilon=BN_EPSILON):
    """BatchNorm over the channel axis with PyTorch's constants (Keras' layer with a
    PyTorch inference fast path, :mod:`keras_cnnclassics.fastpath`)."""
    return fastpath.BatchNormalization(
        axis=channel_axis(), epsilon=epsilon, momentum=BN_MOMENTUM, name=name
    )(x)


def relu(x, name):
    return fastpath.ReLU(name=name)(x)


def concat(branches, name):
    """Join parallel branches along the channel axis (``torch.cat(outputs, 1)``)."""
    return fastpath.Concatenate(axis=channel_axis(), name=name)(branches)


def add(inputs, name):
    """Element-wise sum (a residual connection)."""
    return fastpath.Add(name=name)(inputs)


def conv_bn_relu(x, filters, kernel_size, strides=1, padding=0, *, conv_name, bn_name, act_name=None, groups=1):
    """conv (no bias) -> BN -> ReLU, the unit of VGG-BN, ResNet, DenseNet, Inception."""
    x = conv2d(x, filters, kernel_size, strides, padding, name=conv_name, groups=groups, use_bias=False)
    x = batch_norm(x, name=bn_name)
    return relu(x, act_name or f"{conv_name}_relu")


def max_pool2d(x, pool_size, strides=None, padding=0, *, name, ceil_mode=False):
    """``torch.nn.MaxPool2d(pool_size, strides, padding, ceil_mode=...)`` exactly.

    Stride-1 pools with symmetric padding are Keras ``"same"`` pools (the padding
    never wins the maximum in either library); otherwise the border is padded by
    :class:`PoolPadding2D`, by no more than the windows read, so a ceil-mode pool
    whose windows already tile the input gets no padding layer at all.
    """
    pool_size = _pair(pool_size)
    strides = _pair(strides if strides is not None else pool_size)
    padding = _pair(padding)
    if _same_is_symmetric(pool_size, strides, padding):
        return fastpath.MaxPooling2D(pool_size, strides, padding="same", name=name)(x)
    pads = tuple(
        (p, p + _ceil_mode_extra(size, k, s, p) if ceil_mode else p)
        for size, k, s, p in zip(spatial_shape(x), pool_size, strides, padding)
    )
    if any(a or b for a, b in pads):
        x = PoolPadding2D(pads, name=f"{name}_pad")(x)
    return fastpath.MaxPooling2D(pool_size, strides, padding="valid", name=name)(x)


def _ceil_mode_extra(size, kernel, stride, padding):
    """Cells PyTorch's ``ceil_mode=True`` adds after the end of one spatial axis.

    PyTorch rounds the window count up but drops a last window that would start
    in the padding; ``None`` (unknown) size: the most it can need, ``stride - 1``.
    """
    if size is None:
        return stride - 1
    span = size + 2 * padding - kernel
    windows = -(-span // stride) + 1
    if (windows - 1) * stride >= size + padding:
        windows -= 1
    return max(0, (windows - 1) * stride + kernel - (size + 2 * padding))


def avg_pool2d(x, pool_size, strides=None, padding=0, *, name):
    """``torch.nn.AvgPool2d`` with ``count_include_pad=True`` (its default)."""
    padding = _pair(padding)
    if any(padding):
        x = layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
    return fastpath.AveragePooling2D(_pair(pool_size), _pair(strides or pool_size), name=name)(x)


def spatial_shape(x):
    """Static (height, width) of a 4-D image tensor; ``None`` where unknown."""
    return tuple(x.shape[1:3] if channel_axis() == -1 else x.shape[2:4])


def adaptive_avg_pool(x, output_size, *, name):
    """``torch.nn.AdaptiveAvgPool2d``; omitted when the map already has that size."""
    output_size = _pair(output_size)
    if spatial_shape(x) == output_size:
        return x
    return AdaptiveAveragePooling2D(output_size, name=name)(x)


def global_pool(x, pooling, *, name="global_pool"):
    """keras.applications' ``pooling`` argument: None, "avg" or "max"."""
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name=name)(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name=name)(x)
    return x


def classifier_output(x, classifier_activation, *, name="predictions"):
    """The model's final activation, kept in float32 under mixed precision."""
    return layers.Activation(classifier_activation or "linear", dtype="float32", name=name)(x)


def dense(x, units, *, name, activation=None):
    return layers.Dense(units, activation=activation, name=name)(x)


def flatten_mlp_head(x, hidden, classes, classifier_activation, *, names, dropout=0.5, dropout_first=True):
    """The AlexNet/VGG classifier: [dropout] FC-ReLU [dropout] FC-ReLU FC.

    ``names`` holds the Dense layer names (torchvision's ``classifier.N``);
    dropout before each hidden FC as in torchvision's AlexNet, after it as in VGG.
    """
    x = layers.Flatten(name="flatten")(x)
    for i, (units, layer_name) in enumerate(zip(hidden, names)):
        if dropout and dropout_first:
            x = layers.Dropout(dropout, name=f"{layer_name}_dropout")(x)
        x = dense(x, units, name=layer_name, activation="relu")
        if dropout and not dropout_first:
            x = layers.Dropout(dropout, name=f"{layer_name}_dropout")(x)
    x = dense(x, classes, name=names[len(hidden)])
    return classifier_output(x, classifier_activation)
