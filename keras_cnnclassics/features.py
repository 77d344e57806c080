"""Multi-scale feature extraction, as timm's ``features_only=True``.

``feature_extractor("resnet50")`` returns a model whose outputs are the ends of
the network's stages (strides 4, 8, 16, 32 for ImageNet models), ready for a
detector or segmenter (FPN, U-Net). Which layers end the stages is declared in
each model's registry entry (``feature_layers``), next to the family code.
"""

from __future__ import annotations

import keras

from keras_cnnclassics.applications import deep_graph_recursion, registry_name
from keras_cnnclassics.registry import get_model, get_spec

__all__ = ["feature_extractor", "feature_info"]


def _spec_of(model):
    spec_name = registry_name(model) or model.name
    try:
        return get_spec(spec_name)
    except ValueError:
        raise ValueError(
            f"Cannot tell which registry model {model.name!r} is; pass the registry "
            "name instead, e.g. feature_extractor('resnet50', input_shape=...)."
        ) from None


def feature_info(model_or_name, **kwargs):
    """``[{"layer": name, "channels": C, "reduction": stride}, ...]`` per stage end."""
    model, names = _model_and_stage_layers(model_or_name, **kwargs)
    info = []
    in_size = _spatial(model.inputs[0].shape)
    for name in names:
        shape = model.get_layer(name).output.shape
        channel_axis = -1 if keras.config.image_data_format() == "channels_last" else 1
        size = _spatial(shape)
        reduction = in_size[0] // size[0] if in_size[0] and size[0] else None
        info.append({"layer": name, "channels": int(shape[channel_axis]), "reduction": reduction})
    return info


def _spatial(shape):
    return tuple(shape[1:3]) if keras.config.image_data_format() == "channels_last" else tuple(shape[2:4])


def _model_and_stage_layers(model_or_name, **kwargs):
    if isinstance(model_or_name, str):
        spec = get_spec(model_or_name)
        kwargs.setdefault("include_top", False)
        model = get_model(model_or_name, **kwargs)
        options = {k: v for k, v in kwargs.items() if k in spec.options or k not in _CONTRACT}
    else:
        model, spec, options = model_or_name, _spec_of(model_or_name), {}
    names = spec.stage_outputs(options)
    if not names:
        raise ValueError(f"{spec.name}: this model declares no stage outputs for feature extraction.")
    return model, names


_CONTRACT = {
    "include_top", "weights", "input_tensor", "input_shape", "pooling", "classes",
    "classifier_activation", "name",
}


def feature_extractor(model_or_name, out_indices=None, **kwargs):
    """A ``keras.Model`` returning the stage-end feature maps of a registry model.

    Args:
        model_or_name: a registry name (built with ``include_top=False`` and
            ``kwargs``) or a model built by this package.
        out_indices: which stages to return (default: all), e.g. ``(1, 2, 3)``
            for strides 8, 16, 32 on a 4-stage network.
    """
    model, names = _model_and_stage_layers(model_or_name, **kwargs)
    if out_indices is None:
        out_indices = tuple(range(len(names)))
    bad = [i for i in out_indices if not isinstance(i, int) or not -len(names) <= i < len(names)]
    if bad:
        raise ValueError(
            f"out_indices {tuple(out_indices)} out of range: this model has "
            f"{len(names)} stages (indices 0..{len(names) - 1})."
        )
    outputs = [model.get_layer(names[i]).output for i in out_indices]
    with deep_graph_recursion():
        return keras.Model(model.inputs, outputs, name=f"{model.name}_features")
