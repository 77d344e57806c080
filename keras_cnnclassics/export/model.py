"""The Keras model that gets exported: always a float32, NHWC, statically shaped build.

A registry name is built (or a ``.keras`` file loaded) under the float32 policy
and ``channels_last``; a mixed-precision model is rebuilt in float32 and its
weights copied; a model with another input size is rebuilt with the new input.
"""

from __future__ import annotations

import contextlib
import os

import keras
import numpy as np


@contextlib.contextmanager
def float32_channels_last():
    """Build under the float32 policy and NHWC (the exported files' layout)."""
    policy, layout = keras.config.dtype_policy(), keras.config.image_data_format()
    keras.config.set_dtype_policy("float32")
    keras.config.set_image_data_format("channels_last")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(policy)
        keras.config.set_image_data_format(layout)


def load_source(name_or_path, weights, input_shape, classes, seed=None):
    """The Keras model to export and its registry name (or None).

    ``seed`` fixes the random initial weights of a registry name
    (``keras.utils.set_random_seed``).
    """
    from keras_cnnclassics import registry

    if isinstance(name_or_path, keras.Model):
        if weights is not None or classes is not None or seed is not None:
            raise ValueError("weights/classes/seed apply to registry names, not to a keras.Model.")
        return name_or_path, registry_name(name_or_path.name)
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise ValueError(
            "the model to export must be a registry name, the path of a .keras file or a "
            f"keras.Model; got {type(name_or_path).__name__}."
        )
    path = os.fspath(name_or_path)
    if path.endswith(".keras"):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"model file {path!r} does not exist.")
        if weights is not None or classes is not None or seed is not None:
            raise ValueError("weights/classes/seed apply to registry names; a .keras file has its own.")
        from keras_cnnclassics.weights import load_model_file

        with float32_channels_last():
            model = load_model_file(path)
        return model, registry_name(model.name)
    spec = registry.get_spec(path)  # ValueError with the closest names
    kwargs = {"weights": weights, "input_shape": input_shape}
    if classes is not None:
        kwargs["classes"] = classes
    if seed is not None:
        keras.utils.set_random_seed(seed)
    with float32_channels_last():
        return registry.get_model(spec.name, **kwargs), spec.name


def registry_name(name):
    from keras_cnnclassics import registry

    return name if name in registry.list_models() else None


def is_float32(model):
    return all(
        getattr(layer, "dtype_policy", None) is None or layer.dtype_policy.name == "float32"
        for layer in model.layers
    )


def clone(model, replace=None, input_shape=None):
    """``model`` rebuilt layer by layer (``replace(layer) -> new layer or None``), weights copied.

    Used to turn a mixed-precision model into float32, to give it a new input
    shape, and to swap grouped ``Conv2D`` for ``GroupedConv2D`` on TensorFlow.
    """

    def clone_layer(layer):
        new = replace(layer) if replace else None
        return new if new is not None else layer.__class__.from_config(layer.get_config())

    inputs = keras.Input(shape=input_shape, name=model.inputs[0].name) if input_shape else None
    with float32_channels_last():
        copy = keras.models.clone_model(model, input_tensors=inputs, clone_function=clone_layer)
    targets = {layer.name: layer for layer in copy.layers}
    for layer in model.layers:
        if layer.weights:
            target = targets[layer.name]
            target.set_weights([np.asarray(w, dtype=v.dtype) for w, v in zip(layer.get_weights(), target.weights)])
    return copy


def float32_layer(layer):
    if getattr(layer, "dtype_policy", None) is None or layer.dtype_policy.name == "float32":
        return None
    return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})


def float32_model(model, input_shape, notes):
    """A float32, statically shaped copy of ``model`` where needed (else ``model``)."""
    current = tuple(model.input_shape[1:])
    if len(model.inputs) != 1 or len(model.outputs) != 1 or len(current) != 3:
        raise ValueError("export supports image models with one (H, W, C) input and one output.")
    if any(getattr(layer, "data_format", None) == "channels_first" for layer in model.layers):
        raise ValueError(
            "export writes NHWC files: rebuild the model with channels_last (its weights load "
            "unchanged) and export that."
        )
    shape = tuple(input_shape) if input_shape else current
    if len(shape) != 3 or any(s is not None and (not isinstance(s, int) or s < 1) for s in shape):
        raise ValueError(f"input_shape must be 3 positive integers (H, W, C); got {input_shape!r}.")
    if None in shape:
        raise ValueError(
            f"the model's input {current} has no fixed size; pass input_shape/--input-shape "
            "H,W,C (the exported file gets a static NHWC input)."
        )
    if any(c is not None and c != s for c, s in zip(current, shape)) and input_shape:
        raise ValueError(f"input_shape {shape} does not fit the model's input {current}.")
    mixed = not is_float32(model)
    if mixed:
        notes.append(f"rebuilt in float32 from the {model.dtype_policy.name} model (weights copied)")
    if mixed or shape != current:
        return clone(model, float32_layer, shape if shape != current else None)
    return model
