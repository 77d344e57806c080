"""``Conv2D`` and ``BatchNormalization`` with a PyTorch-backend inference fast path.

Both are the Keras layers (same variables, configs, training, mixed precision and
outputs on every backend); only inference on the PyTorch backend takes a shorter
road. Measured with torch's profiler on ResNet-50 (batch 16, channels_first, 2-core
CI machine), Keras' PyTorch backend spends, per forward pass, beyond torchvision:

* ~38 ms copying every convolution kernel from Keras' ``(kh, kw, in, out)`` layout
  to a contiguous ``(out, in, kh, kw)`` tensor, on every call;
* ~24 ms on BatchNormalization computed as three passes over the activations
  (``(x - mean) * (gamma / sqrt(var + eps)) + beta``) where ``torch.batch_norm``
  makes one;
* one more pass per biased convolution adding the bias after the convolution,
  and a new tensor for a fused ReLU where the convolution's own output can be
  rectified in place.

Pooling has a third cost: Keras' PyTorch backend makes every pooled tensor
contiguous in ``(N, C, H, W)`` first, and PyTorch's CPU pooling kernels are an
order of magnitude slower in that layout than in ``channels_last`` (3x3 max pool
on 16x480x28x28: 69 ms vs 4.5 ms; half of a GoogLeNet pass in
``torch.profiler``). :class:`MaxPooling2D` and :class:`AveragePooling2D` pool in
``channels_last`` memory on the PyTorch backend (training included: nothing is
cached) and hand back the layout Keras' own layers return.

Here, when no gradient is recorded (``predict``, ``torch.no_grad``,
``torch.inference_mode``) and the layer computes in its variables' dtype,
:class:`Conv2D` keeps the re-laid kernel until the variable changes (keyed on the
tensor's storage and version counter) and hands the bias to ``torch.conv2d``;
:class:`BatchNormalization` calls ``torch.batch_norm`` with the moving
statistics. Every other case (training, other backends, mixed precision, padding
Keras resolves asymmetrically) runs Keras' own ``call``.

Last, the per-layer bookkeeping: Keras' ``Layer.__call__`` converts inputs,
binds the call signature, resolves training flags and masks, opens name and
autocast scopes, and goes through ``torch.nn.Module.__call__`` and
``Operation.__call__`` before it reaches ``call`` -- about 35 us per ReLU and
230 us per BatchNormalization on the 2-core CI machine, against 4-76 us for
``call`` itself. All these layers (and :class:`ReLU`, :class:`Concatenate`,
:class:`Add`) call ``call`` directly when none of that bookkeeping has anything
to do (:func:`_bookkeeping_idle`): a built layer, float32 tensors in, no gradient
recorded, no autocast scope, mask, activity regularizer, quantization,
distribution or PyTorch hook, and, for layers with a ``training`` argument,
``training=False`` passed (as ``predict`` does).
"""

from __future__ import annotations

import weakref

import keras

from keras_cnnclassics.layers import PACKAGE

try:  # Keras' own checks, used by Layer.__call__; absent in another Keras layout
    from keras.src.backend.common.masking import get_keras_mask
    from keras.src.backend.common.variables import get_autocast_scope
except ImportError:  # pragma: no cover - then every call takes Keras' own __call__
    get_keras_mask = get_autocast_scope = None

# layer -> ((storage pointer, version), kernel in PyTorch's layout)
_TORCH_KERNELS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _torch_inference(layer, inputs) -> bool:
    """True on the PyTorch backend with no gradient recorded and no autocasting."""
    if keras.backend.backend() != "torch":
        return False
    import torch

    return (
        isinstance(inputs, torch.Tensor)
        and not torch.is_grad_enabled()
        and layer.compute_dtype == layer.variable_dtype
        and inputs.dtype == getattr(torch, layer.variable_dtype)
    )


def _bookkeeping_idle(layer, args, kwargs) -> bool:
    """Whether Keras' ``Layer.__call__`` would only pass ``args``/``kwargs`` to ``call``
    (see the module docstring)."""
    if keras.backend.backend() != "torch" or len(args) != 1 or not layer.built or get_keras_mask is None:
        return False
    import torch

    tensors = list(args[0]) if isinstance(args[0], (list, tuple)) else [args[0]]
    if set(kwargs) - {"training", "mask"} or kwargs.get("mask") is not None:
        return False
    # a layer with a training argument needs training=False passed (a Functional model
    # passes its own to every layer); otherwise the call context decides: Keras' path
    if kwargs.get("training", None if layer._call_has_training_arg else False) is not False:
        return False
    module = torch.nn.modules.module
    return (
        all(_torch_inference(layer, x) and x.device.type != "meta" and get_keras_mask(x) is None
            for x in tensors)
        and layer.variable_dtype == "float32"
        and get_autocast_scope() is None
        and layer.activity_regularizer is None
        and getattr(layer, "quantization_mode", None) is None
        and not getattr(layer, "_remat_mode", False)
        and keras.distribution.distribution() is None
        and not (layer._forward_hooks or layer._forward_pre_hooks
                 or module._global_forward_hooks or module._global_forward_pre_hooks)
    )


class _DirectCall:
    """Mixin: ``layer(x)`` runs ``layer.call(x)`` when Keras' bookkeeping is idle."""

    def __call__(self, *args, **kwargs):
        if not _bookkeeping_idle(self, args, kwargs):
            return super().__call__(*args, **kwargs)
        if self._call_has_training_arg:
            return self.call(args[0], training=False)
        return self.call(args[0])


def _symmetric_padding(layer):
    """PyTorch's padding for a convolution or pool's Keras padding, or None when Keras
    pads unevenly (``"same"`` with a stride or an even window)."""
    window = getattr(layer, "kernel_size", None) or layer.pool_size
    dilation = getattr(layer, "dilation_rate", (1,) * len(window))
    if layer.padding == "valid":
        return (0,) * len(window)
    if all(s == 1 for s in layer.strides) and all(k % 2 == 1 for k in window):
        return tuple((k - 1) // 2 * d for k, d in zip(window, dilation))
    return None


@keras.saving.register_keras_serializable(package=PACKAGE)
class Conv2D(_DirectCall, keras.layers.Conv2D):
    """``keras.layers.Conv2D``; on PyTorch, inference is one ``torch.conv2d`` call
    with a cached kernel layout and the bias fused (see the module docstring)."""

    def call(self, inputs):
        padding = _symmetric_padding(self)
        if padding is None or self.lora_enabled or not _torch_inference(self, inputs):
            return super().call(inputs)
        import torch

        x = inputs if self.data_format == "channels_first" else inputs.permute(0, 3, 1, 2)
        bias = self.bias.value if self.use_bias else None
        x = torch.nn.functional.conv2d(
            x, self._torch_kernel(), bias, self.strides, padding, self.dilation_rate, self.groups
        )
        if self.data_format == "channels_last":
            x = x.permute(0, 2, 3, 1)
        if self.activation is keras.activations.relu:
            return torch.relu_(x)  # in place: x is this call's own new tensor
        return self.activation(x) if self.activation is not None else x

    def _torch_kernel(self):
        import torch

        kernel = self.kernel.value
        key = (kernel.data_ptr(), kernel._version)
        cached = _TORCH_KERNELS.get(self)
        if cached is None or cached[0] != key:
            layout = torch.channels_last if self.data_format == "channels_last" else torch.contiguous_format
            cached = (key, kernel.detach().permute(3, 2, 0, 1).contiguous(memory_format=layout))
            _TORCH_KERNELS[self] = cached
        return cached[1]


@keras.saving.register_keras_serializable(package=PACKAGE)
class BatchNormalization(_DirectCall, keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization``; on PyTorch, inference is one
    ``torch.batch_norm`` pass (see the module docstring)."""

    def call(self, inputs, training=None, mask=None):
        if (training and self.trainable) or mask is not None or not _torch_inference(self, inputs):
            return super().call(inputs, training=training, mask=mask)
        import torch

        axis = self.axis % inputs.ndim
        x = inputs if axis == 1 else inputs.movedim(axis, 1)
        x = torch.nn.functional.batch_norm(
            x,
            self.moving_mean.value,
            self.moving_variance.value,
            self.gamma.value if self.scale else None,
            self.beta.value if self.center else None,
            False,
            0.0,
            self.epsilon,
        )
        return x if axis == 1 else x.movedim(1, axis)


class _ChannelsLastPooling:
    """Mixin for Keras' 2-D pooling layers: on PyTorch, ``_torch_pool`` runs on the
    input laid out in ``channels_last`` memory and the result comes back in the
    layout Keras' own layer returns; elsewhere Keras' ``call`` runs."""

    def call(self, inputs):
        padding = _symmetric_padding(self)
        if keras.backend.backend() != "torch" or padding is None:
            return super().call(inputs)
        import torch

        if not isinstance(inputs, torch.Tensor) or inputs.device.type == "meta":
            return super().call(inputs)
        channels_last = self.data_format == "channels_last"
        x = inputs.permute(0, 3, 1, 2) if channels_last else inputs
        x = self._torch_pool(x.contiguous(memory_format=torch.channels_last), padding)
        return x.permute(0, 2, 3, 1) if channels_last else x.contiguous()


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaxPooling2D(_DirectCall, _ChannelsLastPooling, keras.layers.MaxPooling2D):
    """``keras.layers.MaxPooling2D``; on PyTorch, pools in ``channels_last`` memory
    (see the module docstring)."""

    def _torch_pool(self, x, padding):
        import torch

        return torch.nn.functional.max_pool2d(x, self.pool_size, self.strides, padding)


@keras.saving.register_keras_serializable(package=PACKAGE)
class AveragePooling2D(_DirectCall, _ChannelsLastPooling, keras.layers.AveragePooling2D):
    """``keras.layers.AveragePooling2D``; on PyTorch, pools in ``channels_last`` memory
    (see the module docstring). ``"same"`` padding averages only the cells inside the
    input, as Keras' layer does."""

    def _torch_pool(self, x, padding):
        import torch

        return torch.nn.functional.avg_pool2d(x, self.pool_size, self.strides, padding,
                                              count_include_pad=False)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ReLU(_DirectCall, keras.layers.ReLU):
    """``keras.layers.ReLU``; on PyTorch inference, called without Keras' per-call
    bookkeeping (see the module docstring)."""


@keras.saving.register_keras_serializable(package=PACKAGE)
class Concatenate(_DirectCall, keras.layers.Concatenate):
    """``keras.layers.Concatenate``; on PyTorch inference, called without Keras' per-call
    bookkeeping (see the module docstring)."""


@keras.saving.register_keras_serializable(package=PACKAGE)
class Add(_DirectCall, keras.layers.Add):
    """``keras.layers.Add``; on PyTorch inference, called without Keras' per-call
    bookkeeping (see the module docstring)."""
