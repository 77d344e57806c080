"""Copying PyTorch (torchvision/timm) weights into the package's Keras models.

Our layer names are the torch module paths with "." written as "_" (Keras'
PyTorch backend forbids dots in variable paths): ``layer3.2.conv2`` is the Keras
layer ``layer3_2_conv2``. Conversion is therefore a per-layer copy with a layout
change per layer type:

* Conv2D: ``weight`` OIHW -> kernel HWIO (grouped kernels keep their per-group
  input size, which is Keras' grouped layout too); ``bias``.
* DepthwiseConv2D: ``weight`` (C*m, 1, H, W) -> (H, W, C, m).
* Dense: ``weight.T``; the first Dense after a flatten of a (C, H, W) map gets its
  rows permuted from torch's (C, H, W) order to Keras' (H, W, C) order.
* BatchNormalization: weight, bias, running_mean, running_var (eps 1e-5 is
  already PyTorch's in our models).

``state_dict_to_keras(model, state_dict)`` assigns everything in place and is
strict: every Keras weight filled, every source tensor used, else a ValueError
listing the missing, unexpected and shape-mismatched names. Family-specific key
renames (``name_map``) live next to each family.
"""

from __future__ import annotations

import numpy as np
import keras

from keras_cnnclassics.weights import _leaf_layers

_BN_KEYS = ("weight", "bias", "running_mean", "running_var")
_IGNORED_SUFFIXES = ("num_batches_tracked",)


def _to_numpy(tensor):
    if hasattr(tensor, "detach"):
        tensor = tensor.detach().cpu().numpy()
    return np.asarray(tensor)


def _producer(tensor):
    history = getattr(tensor, "_keras_history", None)
    return history.operation if history else None


def _flatten_source_shape(model, dense_layer):
    """(C, H, W) of the map flattened right before ``dense_layer``, or None."""
    producer = _producer(dense_layer.input)
    while isinstance(producer, (keras.layers.Dropout, keras.layers.Activation)):
        producer = _producer(producer.input)
    if not isinstance(producer, keras.layers.Flatten):
        return None
    shape = producer.input.shape[1:]
    if keras.config.image_data_format() == "channels_first":
        c, h, w = shape
    else:
        h, w, c = shape
    return (c, h, w) if h * w > 1 else None


def _convert_layer(model, layer, get):
    """Keras weight arrays for ``layer`` from torch tensors fetched by ``get(suffix)``."""
    if isinstance(layer, keras.layers.BatchNormalization):
        return [get(k) for k in _BN_KEYS]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        w = get("weight")  # (C*m, 1, kh, kw)
        c = layer.input.shape[-1 if keras.config.image_data_format() == "channels_last" else 1]
        kernel = w.reshape(c, -1, *w.shape[2:]).transpose(2, 3, 0, 1)
        return [kernel] + ([get("bias")] if layer.use_bias else [])
    if isinstance(layer, keras.layers.Conv2D):
        kernel = get("weight").transpose(2, 3, 1, 0)
        return [kernel] + ([get("bias")] if layer.use_bias else [])
    if isinstance(layer, keras.layers.Dense):
        w = get("weight")  # (out, in)
        chw = _flatten_source_shape(model, layer)
        if chw is not None:
            c, h, w_ = chw
            w = w.reshape(w.shape[0], c, h, w_).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
        return [w.T] + ([get("bias")] if layer.use_bias else [])
    raise ValueError(
        f"No torch conversion rule for layer {layer.name!r} of type {type(layer).__name__}."
    )


def keras_name(torch_path: str) -> str:
    """The Keras layer name of a torch module path: ``layer3.2.conv2`` -> ``layer3_2_conv2``."""
    return torch_path.replace(".", "_")


def torch_prefix_lookup(source):
    """``keras_name -> torch module path`` for the modules of a state dict."""
    prefixes = {key.rsplit(".", 1)[0] for key in source}
    lookup = {}
    for prefix in prefixes:
        name = keras_name(prefix)
        if lookup.get(name, prefix) != prefix:
            raise ValueError(f"Ambiguous torch module names {lookup[name]!r} and {prefix!r}.")
        lookup[name] = prefix
    return lambda name: lookup.get(name, name)


def state_dict_to_keras(model, state_dict, name_map=None):
    """Copy a torch ``state_dict`` into ``model`` (strict; see module docstring).

    ``name_map(keras_layer_name) -> torch_prefix`` renames where a family's Keras
    names differ from the torch module paths (default: the module whose path,
    with "." written as "_", is the Keras name).
    """
    source = {k: _to_numpy(v) for k, v in state_dict.items() if not k.endswith(_IGNORED_SUFFIXES)}
    name_map = name_map or torch_prefix_lookup(source)
    used, missing, mismatched, assignments = set(), [], [], []
    for layer in _leaf_layers(model):
        if not layer.weights:
            continue
        prefix = name_map(layer.name)

        def get(suffix, prefix=prefix):
            key = f"{prefix}.{suffix}"
            if key not in source:
                raise KeyError(key)
            used.add(key)
            return source[key]

        try:
            arrays = _convert_layer(model, layer, get)
        except KeyError as err:
            missing.append(f"{layer.name} (needs {err.args[0]})")
            continue
        expected = [tuple(v.shape) for v in layer.weights]
        if [a.shape for a in arrays] != expected:
            mismatched.append(f"{layer.name}: keras {expected} vs source {[a.shape for a in arrays]}")
            continue
        assignments.append((layer, arrays))
    unexpected = sorted(set(source) - used)
    if missing or mismatched or unexpected:
        parts = [
            f"{title} ({len(items)}): {'; '.join(items[:8])}{' ...' if len(items) > 8 else ''}"
            for title, items in (
                ("missing in the checkpoint", missing),
                ("shape mismatch", mismatched),
                ("unexpected in the checkpoint", unexpected),
            )
            if items
        ]
        raise ValueError(f"Checkpoint does not match {model.name!r}: " + " | ".join(parts))
    for layer, arrays in assignments:
        layer.set_weights([a.astype(np.float32) for a in arrays])
    return model
