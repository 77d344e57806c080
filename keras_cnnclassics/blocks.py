"""Shared building blocks: convolutions, pooling and heads with PyTorch semantics.

The families build their graphs from these helpers so that padding, BatchNorm
constants and layer names match torchvision exactly (which is what makes weight
conversion a per-layer copy), out of Keras' own layers wherever they can express
the computation (a saved ``.keras`` file then loads with Keras alone):

* PyTorch pads convolutions symmetrically. Keras ``padding="same"`` equals that
  only for stride 1 and odd kernels; otherwise an explicit ``ZeroPadding2D`` and
  a ``valid`` convolution are used.
* BatchNorm uses PyTorch's ``eps=1e-5`` and momentum 0.1 (Keras momentum 0.9).
* Max pooling reproduces ``padding`` and ``ceil_mode`` (see :func:`max_pool2d`);
  adaptive average pooling becomes a global, a fixed or Keras' adaptive pool, or
  an upsampling (see :func:`adaptive_avg_pool`).
* On the PyTorch backend the layers come from :mod:`keras_cnnclassics._fastpath`
  (Keras' layers with an inference fast path, saved as Keras' own).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from keras_cnnclassics import _fastpath
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
    """Keras' ``Conv2D`` (with the PyTorch fast path where active), or ``GroupedConv2D``
    for grouped convs where needed."""
    if groups > 1 and grouped_conv_fallback():
        return GroupedConv2D
    return _fastpath.layer_class(layers.Conv2D)


def batch_norm(x, *, name, epsilon=BN_EPSILON):
    """BatchNorm over the channel axis with PyTorch's constants."""
    return _fastpath.layer_class(layers.BatchNormalization)(
        axis=channel_axis(), epsilon=epsilon, momentum=BN_MOMENTUM, name=name
    )(x)


def relu(x, name):
    return _fastpath.layer_class(layers.ReLU)(name=name)(x)


def concat(branches, name):
    """Join parallel branches along the channel axis (``torch.cat(outputs, 1)``)."""
    return _fastpath.layer_class(layers.Concatenate)(axis=channel_axis(), name=name)(branches)


def add(inputs, name):
    """Element-wise sum (a residual connection)."""
    return _fastpath.layer_class(layers.Add)(name=name)(inputs)


def channel_affine(x, scale, offset, *, name):
    """Fixed per-channel ``x * scale[c] + offset[c]`` (Keras' ``Rescaling``), e.g.
    torchvision's GoogLeNet/Inception ``transform_input``."""
    shape = (-1,) if channel_axis() == -1 else (-1, 1, 1)  # broadcast over the channel axis
    scale, offset = (np.reshape(np.asarray(v, "float64"), shape).tolist() for v in (scale, offset))
    return layers.Rescaling(scale, offset, name=name)(x)


def conv_bn_relu(x, filters, kernel_size, strides=1, padding=0, *, conv_name, bn_name, act_name=None, groups=1):
    """conv (no bias) -> BN -> ReLU, the unit of VGG-BN, ResNet, DenseNet, Inception."""
    x = conv2d(x, filters, kernel_size, strides, padding, name=conv_name, groups=groups, use_bias=False)
    x = batch_norm(x, name=bn_name)
    return relu(x, act_name or f"{conv_name}_relu")


def max_pool2d(x, pool_size, strides=None, padding=0, *, name, ceil_mode=False):
    """``torch.nn.MaxPool2d(pool_size, strides, padding, ceil_mode=...)`` exactly.

    PyTorch's padding never wins a maximum. In order of preference:

    * no padding needed (a ceil-mode pool whose windows tile the input): a ``valid`` pool;
    * the windows are those of Keras' ``"same"`` pool (stride 1 with symmetric
      padding, and most ceil-mode pools on even sizes): a ``"same"`` pool;
    * the input is a ReLU's output (never negative): ``ZeroPadding2D``, then a
      ``valid`` pool -- a zero never exceeds the maximum of the cells beside it;
    * otherwise :class:`PoolPadding2D` repeats the border (this package's layer).

    The padding covers no more than the windows read.
    """
    pool_size = _pair(pool_size)
    strides = _pair(strides if strides is not None else pool_size)
    padding = _pair(padding)
    pool = _fastpath.layer_class(layers.MaxPooling2D)
    if _same_is_symmetric(pool_size, strides, padding):
        return pool(pool_size, strides, padding="same", name=name)(x)
    sizes = spatial_shape(x)
    pads = tuple(
        (p, p + _ceil_mode_extra(size, k, s, p) if ceil_mode else p)
        for size, k, s, p in zip(sizes, pool_size, strides, padding)
    )
    if not any(a or b for a, b in pads):
        return pool(pool_size, strides, padding="valid", name=name)(x)
    if all(_keras_same_windows(*axis) for axis in zip(sizes, pool_size, strides, pads)):
        return pool(pool_size, strides, padding="same", name=name)(x)
    border = layers.ZeroPadding2D if _never_negative(x) else PoolPadding2D
    x = border(pads, name=f"{name}_pad")(x)
    return pool(pool_size, strides, padding="valid", name=name)(x)


def _keras_same_windows(size, kernel, stride, pads):
    """Whether a pool padded by ``pads = (before, after)`` reads the windows of Keras'
    ``"same"`` pool on an axis of ``size`` cells (unknown size: no)."""
    if size is None:
        return False
    before, after = pads
    return (
        before == _fastpath.same_padding(size, kernel, stride)[0]
        and (size + before + after - kernel) // stride + 1 == -(-size // stride)
    )


def _never_negative(x) -> bool:
    """Whether the symbolic tensor ``x`` is a ReLU's output (a ``ReLU`` layer without
    negative slope, or a layer with the ``relu`` activation)."""
    history = getattr(x, "_keras_history", None)
    producer = history[0] if history else None
    if isinstance(producer, layers.ReLU):
        return not producer.negative_slope and producer.threshold >= 0
    return getattr(producer, "activation", None) is keras.activations.relu


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
    return _fastpath.layer_class(layers.AveragePooling2D)(
        _pair(pool_size), _pair(strides or pool_size), name=name
    )(x)


def spatial_shape(x):
    """Static (height, width) of a 4-D image tensor; ``None`` where unknown."""
    return tuple(x.shape[1:3] if channel_axis() == -1 else x.shape[2:4])


def adaptive_avg_pool(x, output_size, *, name):
    """``torch.nn.AdaptiveAvgPool2d`` with Keras' layers where they compute the same bins.

    Omitted when the map already has that size; a global average for a 1x1 output,
    an average pool when the input is a multiple of the output (equal bins), a
    nearest upsampling when the output is a multiple of the input (bins of one
    cell); :class:`AdaptiveAveragePooling2D` (this package's layer) for uneven bins.
    """
    output_size = _pair(output_size)
    sizes = spatial_shape(x)
    if sizes == output_size:
        return x
    if output_size == (1, 1):
        return layers.GlobalAveragePooling2D(keepdims=True, name=name)(x)
    if None not in sizes and all(i % o == 0 for i, o in zip(sizes, output_size)):
        window = tuple(i // o for i, o in zip(sizes, output_size))
        return _fastpath.layer_class(layers.AveragePooling2D)(window, name=name)(x)
    if None not in sizes and all(o % i == 0 for i, o in zip(sizes, output_size)):
        return layers.UpSampling2D(tuple(o // i for i, o in zip(sizes, output_size)), name=name)(x)
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
