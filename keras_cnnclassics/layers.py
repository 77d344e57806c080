"""Custom layers used by the model families, all serializable for ``.keras`` files.

Every layer here is built from ``keras.ops`` only, so it runs on the TensorFlow,
JAX and PyTorch backends and exports to ONNX/LiteRT.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

PACKAGE = "keras_cnnclassics"


class SavedAsKerasClass:
    """Mixin for a subclass of a Keras class that changes how it computes, never what.

    Its objects report the Keras class they extend as ``__class__``, which is what
    ``keras.saving.serialize_keras_object`` records: a saved ``.keras`` file holds
    Keras' own class with the same configuration and loads where this package is
    not installed. ``type(obj)`` is still the subclass, whose methods run.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        keras_bases = (base for base in cls.__mro__ if base.__module__.split(".")[0] == "keras")
        cls._keras_class = next(keras_bases, None)  # None in a mixin of mixins

    @property
    def __class__(self):
        return self._keras_class


def _channel_axis():
    return -1 if keras.config.image_data_format() == "channels_last" else 1


@keras.saving.register_keras_serializable(package=PACKAGE)
class LocalResponseNormalization(keras.layers.Layer):
    """Cross-channel local response normalisation (Krizhevsky et al., 2012, sec. 3.3).

    ``b_c = a_c / (k + alpha / size * sum_{c' in window(c)} a_{c'}^2) ** beta``,
    the window being ``size`` neighbouring channels centred on ``c``. This is the
    formula of ``torch.nn.LocalResponseNorm`` and Caffe's LRN (alpha divided by
    ``size``); the paper's constants are size=5, alpha=1e-4, beta=0.75, k=2.
    """

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"LRN size must be a positive integer; got {size!r}.")
        self.size, self.alpha, self.beta, self.k = size, float(alpha), float(beta), float(k)

    def call(self, inputs):
        axis = _channel_axis() % len(inputs.shape)
        squared = ops.square(inputs)
        before, after = self.size // 2, (self.size - 1) // 2
        pad = [[0, 0]] * len(inputs.shape)
        pad[axis] = [before, after]
        padded = ops.pad(squared, pad)
        channels = inputs.shape[axis]
        # Slices, not ops.take: take becomes Gather/aten::ravel, which torch.onnx cannot export.
        window = sum(
            padded[tuple(slice(i, i + channels) if a == axis else slice(None) for a in range(len(inputs.shape)))]
            for i in range(self.size)
        )
        scale = self.k + (self.alpha / self.size) * window
        return inputs / ops.power(scale, self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "size": self.size,
            "alpha": self.alpha,
            "beta": self.beta,
            "k": self.k,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class DropPath(keras.layers.Layer):
    """Stochastic depth: drop a whole residual branch per sample (Huang et al., 2016).

    In training each sample's branch is zeroed with probability ``rate`` and the
    survivors are scaled by ``1 / (1 - rate)``, so the expectation is unchanged
    and inference is the identity (timm's ``DropPath`` convention).
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"DropPath rate must be in [0, 1); got {rate!r}.")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        keep = 1.0 - self.rate
        shape = (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        noise = keras.random.uniform(shape, seed=self.seed_generator, dtype=inputs.dtype)
        mask = ops.cast(noise < keep, inputs.dtype)
        return inputs * mask / ops.cast(keep, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package=PACKAGE)
class PoolPadding2D(keras.layers.Layer):
    """Pad height/width so that a following max pool ignores the border.

    This reproduces PyTorch's ``MaxPool2d(padding=p, ceil_mode=...)`` exactly:
    PyTorch never lets padded cells win the maximum, and ``ceil_mode=True`` is the
    same as padding ``stride - 1`` extra cells at the bottom/right and pooling with
    ``valid`` windows (Keras has no ceil mode). ``padding`` is
    ``((top, bottom), (left, right))``.

    The padded cells repeat the nearest border row/column instead of holding
    ``-inf``: under PyTorch's pooling rules (padding <= kernel / 2, no window
    starting past the last input cell) every window that contains a padded cell
    also contains the border cell it copies, so the maximum is the same, while the
    graph stays finite -- ``-inf`` gives int8 quantizers (TFLite, ONNX Runtime) an
    infinite activation range.
    """

    def __init__(self, padding=((0, 0), (0, 0)), **kwargs):
        super().__init__(**kwargs)
        self.padding = tuple(tuple(int(p) for p in pair) for pair in padding)

    def _pad_width(self, rank):
        spatial = list(self.padding)
        if keras.config.image_data_format() == "channels_last":
            return [[0, 0]] + [list(p) for p in spatial] + [[0, 0]] * (rank - 3)
        return [[0, 0], [0, 0]] + [list(p) for p in spatial]

    def call(self, inputs):
        if keras.backend.backend() == "torch" and len(inputs.shape) == 4:
            return self._torch_replicate_pad(inputs)
        rank = len(inputs.shape)
        x = inputs
        for axis, (before, after) in enumerate(self._pad_width(rank)):
            if not (before or after):
                continue
            index = [slice(None)] * rank
            index[axis] = slice(0, 1)
            first = x[tuple(index)]
            index[axis] = slice(-1, None)
            last = x[tuple(index)]
            x = ops.concatenate([first] * before + [x] + [last] * after, axis=axis)
        return x

    def _torch_replicate_pad(self, inputs):
        """One ``torch.nn.functional.pad(mode="replicate")`` instead of a concatenation per
        padded side (it keeps ``channels_last`` memory: 4 ms instead of 7 ms on a
        16x112x112x64 map, 2-core CPU)."""
        import torch

        (top, bottom), (left, right) = self.padding
        channels_last = keras.config.image_data_format() == "channels_last"
        x = inputs.permute(0, 3, 1, 2) if channels_last else inputs
        x = torch.nn.functional.pad(x, (left, right, top, bottom), mode="replicate")
        return x.permute(0, 2, 3, 1) if channels_last else x

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        width = self._pad_width(len(shape))
        return tuple(
            None if s is None else s + a + b for s, (a, b) in zip(shape, width)
        )

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConnectionTableConv2D(keras.layers.Layer):
    """A convolution where output map ``j`` sees only the inputs listed in ``table[j]``.

    LeNet-5's C3 layer (LeCun et al., 1998, Table I) connects its 16 maps to
    subsets of S2's 6 maps, giving 60 connections of 5x5 weights plus 16 biases =
    1,516 parameters. Only the used weights are stored (``kernel`` has shape
    ``(kh, kw, connections)``); the dense kernel is assembled in ``call`` with
    fixed one-hot placement matrices, so the layer runs and exports anywhere.
    """

    def __init__(self, table, kernel_size=5, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.table = tuple(tuple(int(i) for i in row) for row in table)
        self.kernel_size = int(kernel_size)
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        in_channels = int(input_shape[_channel_axis()])
        pairs = [(i, j) for j, row in enumerate(self.table) for i in row]
        if max(i for i, _ in pairs) >= in_channels:
            raise ValueError(
                f"{self.name}: connection table refers to input map "
                f"{max(i for i, _ in pairs)} but the input has {in_channels} channels."
            )
        place_in = [[1.0 if i == c else 0.0 for c in range(in_channels)] for i, _ in pairs]
        place_out = [[1.0 if j == c else 0.0 for c in range(len(self.table))] for _, j in pairs]
        # numpy, not tensors: a tensor made here would be captured by traced/exported
        # graphs as an extra input (tf2onnx); numpy becomes a constant in each graph.
        self._place_in = np.asarray(place_in, "float32")
        self._place_out = np.asarray(place_out, "float32")
        k = self.kernel_size
        self.kernel = self.add_weight(
            name="kernel", shape=(k, k, len(pairs)), initializer="glorot_uniform"
        )
        self.bias = self.add_weight(name="bias", shape=(len(self.table),), initializer="zeros")

    def dense_kernel(self):
        """The equivalent ``(kh, kw, in, out)`` kernel, zeros where not connected."""
        place_in = ops.cast(self._place_in, self.kernel.dtype)
        place_out = ops.cast(self._place_out, self.kernel.dtype)
        return ops.einsum("hwc,ci,co->hwio", self.kernel, place_in, place_out)

    def call(self, inputs):
        kernel = ops.cast(self.dense_kernel(), inputs.dtype)
        data_format = keras.config.image_data_format()
        outputs = ops.conv(inputs, kernel, strides=1, padding="valid", data_format=data_format)
        bias_shape = (1, 1, 1, -1) if data_format == "channels_last" else (1, -1, 1, 1)
        outputs = outputs + ops.reshape(ops.cast(self.bias, outputs.dtype), bias_shape)
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        k = self.kernel_size - 1
        if keras.config.image_data_format() == "channels_last":
            n, h, w, _ = input_shape
            return (n, None if h is None else h - k, None if w is None else w - k, len(self.table))
        n, _, h, w = input_shape
        return (n, len(self.table), None if h is None else h - k, None if w is None else w - k)

    def get_config(self):
        return {
            **super().get_config(),
            "table": self.table,
            "kernel_size": self.kernel_size,
            "activation": keras.activations.serialize(self.activation),
        }


def adaptive_pool_matrix(in_size, out_size):
    """PyTorch's adaptive-average bins as an ``(out, in)`` averaging matrix.

    Bin ``i`` covers ``[floor(i * in / out), ceil((i + 1) * in / out))``; when
    ``in < out`` bins repeat input cells (upsampling), as in PyTorch.
    """
    rows = []
    for i in range(out_size):
        start = (i * in_size) // out_size
        end = -(-((i + 1) * in_size) // out_size)
        rows.append([1.0 / (end - start) if start <= j < end else 0.0 for j in range(in_size)])
    return rows


@keras.saving.register_keras_serializable(package=PACKAGE)
class AdaptiveAveragePooling2D(keras.layers.Layer):
    """``torch.nn.AdaptiveAvgPool2d`` exactly, for inputs with static height/width.

    Computed as two small matrix products with PyTorch's bin matrices
    (:func:`adaptive_pool_matrix`), which also covers inputs smaller than the
    output (Keras' own layer fails there) and exports as plain MatMul/Einsum.
    """

    def __init__(self, output_size, **kwargs):
        super().__init__(**kwargs)
        self.output_size = tuple(int(s) for s in output_size)

    def build(self, input_shape):
        h, w = (input_shape[1:3] if _channel_axis() == -1 else input_shape[2:4])
        if h is None or w is None:
            raise ValueError(
                f"{self.name}: adaptive pooling needs a static height and width; "
                "build the model with a fixed input_shape (or include_top=False)."
            )
        # numpy constants (see ConnectionTableConv2D.build): exported graphs embed them.
        self._rows = np.asarray(adaptive_pool_matrix(h, self.output_size[0]), "float32")
        self._cols = np.asarray(adaptive_pool_matrix(w, self.output_size[1]), "float32")

    def call(self, inputs):
        rows = ops.cast(self._rows, inputs.dtype)
        cols = ops.cast(self._cols, inputs.dtype)
        if _channel_axis() == -1:
            return ops.einsum("oh,nhwc,pw->nopc", rows, inputs, cols)
        return ops.einsum("oh,nchw,pw->ncop", rows, inputs, cols)

    def compute_output_shape(self, input_shape):
        if _channel_axis() == -1:
            return (input_shape[0], *self.output_size, input_shape[3])
        return (input_shape[0], input_shape[1], *self.output_size)

    def get_config(self):
        return {**super().get_config(), "output_size": self.output_size}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ChannelAffine(keras.layers.Layer):
    """Fixed per-channel ``x * scale[c] + offset[c]`` on the channel axis; no weights.

    torchvision's GoogLeNet and Inception v3 ``transform_input`` (turning
    ImageNet-normalised input into the ``(x - 0.5) / 0.5`` scaling of the ported
    Google weights) is this layer with ``scale = std / 0.5`` and
    ``offset = (mean - 0.5) / 0.5``.
    """

    def __init__(self, scale, offset, **kwargs):
        super().__init__(**kwargs)
        self.scale = tuple(float(s) for s in scale)
        self.offset = tuple(float(o) for o in offset)
        if len(self.scale) != len(self.offset):
            raise ValueError(
                f"ChannelAffine: scale and offset need one value per channel; got "
                f"{len(self.scale)} and {len(self.offset)}."
            )

    def _broadcast(self, values, inputs):
        shape = [1] * len(inputs.shape)
        shape[_channel_axis()] = len(values)
        return ops.reshape(ops.convert_to_tensor(values, dtype=inputs.dtype), shape)

    def build(self, input_shape):
        channels = input_shape[_channel_axis()]
        if channels is not None and channels != len(self.scale):
            raise ValueError(
                f"{self.name}: {len(self.scale)} channel scales for an input with "
                f"{channels} channels."
            )

    def call(self, inputs):
        return inputs * self._broadcast(self.scale, inputs) + self._broadcast(self.offset, inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


@keras.saving.register_keras_serializable(package=PACKAGE)
class WeightedAverage(keras.layers.Layer):
    """``sum_i w_i * x_i / sum_i w_i`` of same-shaped inputs (fixed, non-trainable weights).

    With equal weights it is ``keras.layers.Average``; used by
    :func:`keras_cnnclassics.ensemble` to average members' probabilities.
    """

    def __init__(self, weights, **kwargs):
        super().__init__(**kwargs)
        self.member_weights = tuple(float(w) for w in weights)
        if not self.member_weights or min(self.member_weights) < 0 or sum(self.member_weights) <= 0:
            raise ValueError(
                "WeightedAverage: weights must be non-negative with a positive sum; "
                f"got {self.member_weights}."
            )

    def call(self, inputs):
        if len(inputs) != len(self.member_weights):
            raise ValueError(
                f"{self.name}: {len(self.member_weights)} weights for {len(inputs)} inputs."
            )
        total = sum(self.member_weights)
        return sum(x * (w / total) for x, w in zip(inputs, self.member_weights))

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "weights": self.member_weights}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ZeroPadChannels(keras.layers.Layer):
    """Append zero channels: ``padding = (before, after)`` on the channel axis; no weights.

    The parameter-free "option A" shortcut of He et al. (2015, sec. 4.2) for CIFAR
    ResNets: when a stage doubles the width, the identity is subsampled and
    padded with zero maps (as fb.resnet.torch: the zeros come after the input maps).
    """

    def __init__(self, padding=(0, 0), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = tuple(int(p) for p in padding)
        if len(self.padding) != 2 or min(self.padding) < 0:
            raise ValueError(
                f"ZeroPadChannels: padding must be two non-negative integers; got {padding!r}."
            )
        # Fixed at construction, like Keras' own layers, so a model keeps working
        # when the global image data format changes later.
        self.data_format = data_format or keras.config.image_data_format()

    def _axis(self, rank):
        return rank - 1 if self.data_format == "channels_last" else 1

    def call(self, inputs):
        pad = [[0, 0]] * len(inputs.shape)
        pad[self._axis(len(inputs.shape))] = list(self.padding)
        return ops.pad(inputs, pad)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        axis = self._axis(len(shape))
        if shape[axis] is not None:
            shape[axis] += sum(self.padding)
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "data_format": self.data_format}


@keras.saving.register_keras_serializable(package=PACKAGE)
class GroupedConv2D(keras.layers.Conv2D):
    """``Conv2D(groups=g)`` computed as ``g`` ordinary convolutions (split, conv, concat).

    Variables, shapes and layout are exactly Keras' grouped ``Conv2D`` (kernel
    ``(kh, kw, in / g, out)``; group ``i`` maps input channels
    ``[i * in / g, (i + 1) * in / g)`` to output channels
    ``[i * out / g, (i + 1) * out / g)``, as ``torch.nn.Conv2d(groups=g)``), so
    weight files, ``.keras`` files and torch conversion are interchangeable, and
    the outputs are the same.

    Why it exists: TensorFlow's own CPU kernels cannot fuse (Conv2D+BiasAdd) or
    differentiate grouped convolutions ("Fused conv implementation does not
    support grouped convolutions", "Gradients for grouped convolutions are not
    supported on CPU"), so Keras 3 runs every grouped convolution on the
    TensorFlow backend inside an XLA-compiled function -- which tf2onnx cannot
    convert (the exported ONNX graph is invalid). Made of plain convolutions,
    this layer runs, trains and exports everywhere; :func:`blocks.conv2d` uses it
    for ``groups > 1`` on the TensorFlow backend.
    """

    def convolution_op(self, inputs, kernel):
        if self.groups == 1:
            return super().convolution_op(inputs, kernel)
        axis = -1 if self.data_format == "channels_last" else 1
        pieces = zip(
            ops.split(inputs, self.groups, axis=axis), ops.split(kernel, self.groups, axis=-1)
        )
        return ops.concatenate(
            [
                ops.conv(
                    x, k, strides=list(self.strides), padding=self.padding,
                    dilation_rate=self.dilation_rate, data_format=self.data_format,
                )
                for x, k in pieces
            ],
            axis=axis,
        )


@keras.saving.register_keras_serializable(package=PACKAGE)
class FractalColumnSampler(keras.layers.Layer):
    """Chooses, per sample, the column kept by FractalNet's *global* drop-path.

    Larsson et al. (2016), Sec. 3.1: global drop-path keeps a single column for
    the entire network, so every join of the network must see the same choice.
    This layer draws it once per sample and step; the network's
    :class:`FractalJoin` layers receive it as ``global_column``. In training a
    sample uses global drop-path with probability ``global_ratio`` (the paper
    mixes 50 % global with 50 % local sampling) and then gets a column drawn
    uniformly from ``range(num_columns)``; every other sample gets -1 (local
    drop-path). At inference the output is all -1. The output is a float32
    vector of shape ``(batch,)`` holding integer values.
    """

    def __init__(self, num_columns, global_ratio=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_columns, int) or num_columns < 1:
            raise ValueError(f"FractalColumnSampler: num_columns must be >= 1; got {num_columns!r}.")
        if not 0.0 <= float(global_ratio) <= 1.0:
            raise ValueError(
                f"FractalColumnSampler: global_ratio must be in [0, 1]; got {global_ratio!r}."
            )
        self.num_columns = num_columns
        self.global_ratio = float(global_ratio)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        none = ops.zeros_like(ops.reshape(inputs, (ops.shape(inputs)[0], -1))[:, 0]) - 1.0
        none = ops.cast(none, "float32")
        if not training or self.global_ratio == 0.0:
            return none
        draw = keras.random.uniform(ops.shape(none), seed=self.seed_generator)
        column = ops.floor(
            keras.random.uniform(ops.shape(none), seed=self.seed_generator) * self.num_columns
        )
        column = ops.minimum(column, self.num_columns - 1.0)
        return ops.where(draw < self.global_ratio, column, none)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],)

    def compute_output_spec(self, inputs, training=None):
        return keras.KerasTensor((inputs.shape[0],), dtype="float32")

    def get_config(self):
        return {
            **super().get_config(),
            "num_columns": self.num_columns,
            "global_ratio": self.global_ratio,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class FractalJoin(keras.layers.Layer):
    """FractalNet's join: element-wise mean of its inputs, with drop-path in training.

    Larsson et al. (2016), Sec. 2 and 3.1. The inputs are the outputs of the
    columns listed in ``columns`` (column indices of the fractal block, 0 =
    the shallowest), all of the same shape.

    * Inference (``training`` false): the plain mean of all inputs.
    * Local drop-path (training): each input is dropped independently per
      sample with probability ``drop_rate``; if every input of a sample is
      dropped, one drawn uniformly is kept. The output is the mean of the kept
      inputs.
    * Global drop-path (training, samples whose ``global_column`` is >= 0, see
      :class:`FractalColumnSampler`): only the input coming from that column is
      kept; a join the chosen column does not pass through outputs zeros
      (its output only feeds columns that are dropped further on).
    """

    def __init__(self, drop_rate=0.15, columns=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(drop_rate) < 1.0:
            raise ValueError(f"FractalJoin: drop_rate must be in [0, 1); got {drop_rate!r}.")
        self.drop_rate = float(drop_rate)
        self.columns = None if columns is None else tuple(int(c) for c in columns)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or not isinstance(input_shape[0], (list, tuple)):
            raise ValueError(f"{self.name}: FractalJoin takes a list of tensors.")
        shapes = {tuple(s) for s in input_shape}
        if len(shapes) != 1:
            raise ValueError(f"{self.name}: all inputs must have the same shape; got {input_shape}.")
        if self.columns is not None and len(self.columns) != len(input_shape):
            raise ValueError(
                f"{self.name}: {len(self.columns)} column indices for {len(input_shape)} inputs."
            )

    def _local_keep(self, count, batch, dtype):
        """(count, batch) 0/1 mask: keep with probability 1 - drop_rate, at least one per sample."""
        noise = keras.random.uniform((count, batch), seed=self.seed_generator)
        keep = ops.cast(noise >= self.drop_rate, dtype)
        pick = keras.random.uniform((batch,), seed=self.seed_generator) * count
        rescue = ops.transpose(ops.one_hot(ops.cast(ops.minimum(pick, count - 1), "int32"), count, dtype=dtype))
        none_kept = ops.cast(ops.sum(keep, axis=0, keepdims=True) == 0, dtype)
        return keep + rescue * none_kept

    def call(self, inputs, global_column=None, training=None):
        stacked = ops.stack(inputs, axis=0)
        if not training:
            return ops.mean(stacked, axis=0)
        count, dtype = len(inputs), stacked.dtype
        batch = ops.shape(inputs[0])[0]
        keep = self._local_keep(count, batch, dtype)
        if global_column is not None:
            columns = self.columns if self.columns is not None else tuple(range(count))
            column_ids = ops.convert_to_tensor([[float(c)] for c in columns], dtype="float32")
            chosen = ops.cast(ops.reshape(global_column, (1, -1)), "float32")
            global_keep = ops.cast(ops.equal(column_ids, chosen), dtype)
            keep = ops.where(chosen >= 0, global_keep, keep)
        keep = ops.reshape(keep, (count, -1) + (1,) * (len(inputs[0].shape) - 1))
        total = ops.sum(stacked * keep, axis=0)
        return total / ops.maximum(ops.sum(keep, axis=0), ops.cast(1.0, dtype))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        return {
            **super().get_config(),
            "drop_rate": self.drop_rate,
            "columns": self.columns,
            "seed": self.seed,
        }
