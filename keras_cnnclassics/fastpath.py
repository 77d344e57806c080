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
* one more pass per biased convolution adding the bias after the convolution.

Here, when no gradient is recorded (``predict``, ``torch.no_grad``,
``torch.inference_mode``) and the layer computes in its variables' dtype,
:class:`Conv2D` keeps the re-laid kernel until the variable changes (keyed on the
tensor's storage and version counter) and hands the bias to ``torch.conv2d``;
:class:`BatchNormalization` calls ``torch.batch_norm`` with the moving
statistics. Every other case (training, other backends, mixed precision, padding
Keras resolves asymmetrically) runs Keras' own ``call``.
"""

from __future__ import annotations

import weakref

import keras

from keras_cnnclassics.layers import PACKAGE

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


def _symmetric_padding(layer):
    """PyTorch's padding for the layer's Keras padding, or None when Keras pads unevenly."""
    if layer.padding == "valid":
        return (0, 0)
    if all(s == 1 for s in layer.strides) and all(k % 2 == 1 for k in layer.kernel_size):
        return tuple((k - 1) // 2 * d for k, d in zip(layer.kernel_size, layer.dilation_rate))
    return None


@keras.saving.register_keras_serializable(package=PACKAGE)
class Conv2D(keras.layers.Conv2D):
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
class BatchNormalization(keras.layers.BatchNormalization):
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
