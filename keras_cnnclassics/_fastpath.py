"""A PyTorch-backend inference fast path for Keras' ``Conv2D``, ``BatchNormalization``,
``MaxPooling2D``, ``AveragePooling2D``, ``ReLU``, ``Concatenate`` and ``Add``.

Private: :mod:`keras_cnnclassics.blocks` asks :func:`layer_class` for each layer it
builds. It gets the subclass defined here only when :func:`enabled`: the PyTorch
backend, a Keras version in :data:`TESTED_KERAS` (another version warns once and gets
Keras' own layers) and the environment variable ``KERAS_CNNCLASSICS_FASTPATH`` not
``0``. Otherwise, and always on TensorFlow and JAX, models hold Keras' own layers.

Each subclass has Keras' layer's variables, configuration, training behaviour and
outputs; it is saved as Keras' own layer (:class:`~keras_cnnclassics.layers.SavedAsKerasClass`),
so a ``.keras`` file loads where this package is not installed (and loads back
as Keras' own layer). What changes on the PyTorch backend:

* Convolution at inference (no gradient recorded, float32): Keras copies every
  kernel from ``(kh, kw, in, out)`` to PyTorch's ``(out, in, kh, kw)`` on every
  call and adds the bias in a second pass. :class:`Conv2D` keeps the re-laid
  kernel until the variable changes (keyed on the tensor's storage and version
  counter), hands the bias to ``torch.conv2d`` and rectifies its own new output
  in place when its activation is ReLU.
* BatchNormalization at inference is one ``torch.batch_norm`` pass instead of
  three (``(x - mean) * (gamma / sqrt(var + eps)) + beta``).
* Pooling (training too) runs on the input laid out in ``channels_last`` memory,
  where PyTorch's CPU pooling kernels are an order of magnitude faster than in
  the contiguous ``(N, C, H, W)`` layout Keras' backend makes first. A max pool
  whose ``"same"`` padding Keras splits unevenly replicates the border (the
  maximum is the same as with Keras' padding).
* Keras' ``Layer.__call__`` (input conversion, signature binding, training flag
  and mask resolution, name and autocast scopes, ``torch.nn.Module.__call__``)
  costs far more than ``call`` for small layers. All these layers call ``call``
  directly when none of that bookkeeping has anything to do
  (:func:`_bookkeeping_idle`): a built layer, float32 tensors in, no gradient
  recorded, no autocast scope, mask, activity regularizer, quantization,
  distribution or PyTorch hook, and ``training=False`` passed to layers that take
  it (as ``predict`` does). That check reads Keras internals, hence the version gate.

Every other case (training, mixed precision, padding Keras splits unevenly for a
convolution or an average pool) runs Keras' own ``call``.
"""

from __future__ import annotations

import functools
import os
import re
import warnings
import weakref

import keras

from keras_cnnclassics.layers import PACKAGE, SavedAsKerasClass

try:  # Keras' own checks, used by Layer.__call__; absent in another Keras layout
    from keras.src.backend.common.masking import get_keras_mask
    from keras.src.backend.common.variables import get_autocast_scope
except ImportError:  # pragma: no cover - then every call takes Keras' own __call__
    get_keras_mask = get_autocast_scope = None

ENVIRONMENT_SWITCH = "KERAS_CNNCLASSICS_FASTPATH"
# Keras versions (major, minor) the fast path is tested with: from the first, before the second.
TESTED_KERAS = ((3, 15), (3, 16))

# layer -> ((storage pointer, version), kernel in PyTorch's layout)
_TORCH_KERNELS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def keras_minor_version(version: str) -> tuple:
    """(major, minor) of a Keras version string such as ``"3.15.1"`` or ``"3.16.0.dev0"``."""
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match[1]), int(match[2])) if match else (0, 0)


@functools.cache
def tested_keras() -> bool:
    """Whether the installed Keras is one the fast path is tested with; warns once if not."""
    version = keras.version()
    if TESTED_KERAS[0] <= keras_minor_version(version) < TESTED_KERAS[1]:
        return True
    first, last = (".".join(map(str, v)) for v in TESTED_KERAS)
    warnings.warn(
        f"keras_cnnclassics: the PyTorch fast path is tested with Keras >={first},<{last}; "
        f"with Keras {version} models use Keras' own layers (set {ENVIRONMENT_SWITCH}=0 to "
        "silence this).",
        RuntimeWarning,
        stacklevel=2,
    )
    return False


def switched_on() -> bool:
    """The environment switch: ``KERAS_CNNCLASSICS_FASTPATH`` unset, ``1`` or ``0``."""
    value = os.environ.get(ENVIRONMENT_SWITCH, "1").strip() or "1"
    if value not in ("0", "1"):
        raise ValueError(f"{ENVIRONMENT_SWITCH}={value!r}: set it to 1 (the default) or 0 (Keras' own layers).")
    return value == "1"


def enabled() -> bool:
    """Whether models built now get the fast layers (see the module docstring)."""
    return switched_on() and keras.backend.backend() == "torch" and tested_keras()


def layer_class(keras_class):
    """``keras_class``, or its fast-path subclass where :func:`enabled`."""
    fast = _FAST_CLASSES.get(keras_class)
    return fast if fast is not None and enabled() else keras_class


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


class _DirectCall(SavedAsKerasClass):
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


def same_padding(size, window, stride):
    """(before, after) cells Keras' ``"same"`` pads on one axis (TensorFlow's rule)."""
    total = max((-(-size // stride) - 1) * stride + window - size, 0)
    return total // 2, total - total // 2


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


def _eager_torch_tensor(inputs) -> bool:
    if keras.backend.backend() != "torch":
        return False
    import torch

    return isinstance(inputs, torch.Tensor) and inputs.device.type != "meta"


class _ChannelsLastPooling:
    """Mixin for Keras' 2-D pooling layers: on PyTorch, ``_torch_pool`` runs on the
    input laid out in ``channels_last`` memory and the result comes back in the
    layout Keras' own layer returns; elsewhere Keras' ``call`` runs."""

    def call(self, inputs):
        padding = self._torch_padding(inputs) if _eager_torch_tensor(inputs) else None
        if padding is None:
            return super().call(inputs)
        import torch

        channels_last = self.data_format == "channels_last"
        x = inputs.permute(0, 3, 1, 2) if channels_last else inputs
        x = self._torch_pool(x.contiguous(memory_format=torch.channels_last), padding)
        return x.permute(0, 2, 3, 1) if channels_last else x.contiguous()

    def _torch_padding(self, inputs):
        """PyTorch's symmetric padding, or None to run Keras' ``call``."""
        return _symmetric_padding(self)


class MaxPooling2D(_DirectCall, _ChannelsLastPooling, keras.layers.MaxPooling2D):
    """``keras.layers.MaxPooling2D``; on PyTorch, pools in ``channels_last`` memory
    (see the module docstring)."""

    def _torch_padding(self, inputs):
        """Symmetric padding, or ``((top, bottom), (left, right))`` where ``"same"`` pads unevenly."""
        padding = super()._torch_padding(inputs)
        if padding is not None or self.padding != "same":
            return padding
        spatial = inputs.shape[2:] if self.data_format == "channels_first" else inputs.shape[1:3]
        return tuple(same_padding(n, k, s) for n, k, s in zip(spatial, self.pool_size, self.strides))

    def _torch_pool(self, x, padding):
        import torch

        if isinstance(padding[0], tuple):  # the border repeated never wins a maximum it was not in
            (top, bottom), (left, right) = padding
            x = torch.nn.functional.pad(x, (left, right, top, bottom), mode="replicate")
            padding = 0
        return torch.nn.functional.max_pool2d(x, self.pool_size, self.strides, padding)


class AveragePooling2D(_DirectCall, _ChannelsLastPooling, keras.layers.AveragePooling2D):
    """``keras.layers.AveragePooling2D``; on PyTorch, pools in ``channels_last`` memory
    (see the module docstring). ``"same"`` padding averages only the cells inside the
    input, as Keras' layer does."""

    def _torch_pool(self, x, padding):
        import torch

        return torch.nn.functional.avg_pool2d(x, self.pool_size, self.strides, padding,
                                              count_include_pad=False)


class ReLU(_DirectCall, keras.layers.ReLU):
    """``keras.layers.ReLU``; on PyTorch inference, called without Keras' per-call
    bookkeeping (see the module docstring)."""


class Concatenate(_DirectCall, keras.layers.Concatenate):
    """``keras.layers.Concatenate``; on PyTorch inference, called without Keras' per-call
    bookkeeping (see the module docstring)."""


class Add(_DirectCall, keras.layers.Add):
    """``keras.layers.Add``; on PyTorch inference, called without Keras' per-call
    bookkeeping (see the module docstring)."""


_FAST_CLASSES = {fast._keras_class: fast for fast in (
    Conv2D, BatchNormalization, MaxPooling2D, AveragePooling2D, ReLU, Concatenate, Add)}

# Files saved before these layers were saved as Keras' own name them "keras_cnnclassics>Conv2D", ...
keras.saving.get_custom_objects().update(
    {f"{PACKAGE}>{keras_class.__name__}": keras_class for keras_class in _FAST_CLASSES}
)
