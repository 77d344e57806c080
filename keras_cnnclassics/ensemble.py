"""Model ensembles: one Keras model averaging its members' class probabilities.

The ILSVRC entries of 2014-2016 (GoogLeNet's 7 models, the 2016 winner's
Inception/ResNet/Wide ResNet mix) averaged the softmax outputs of several
networks on the same image. ``ensemble([m1, m2, m3], weights=[2, 1, 1])``
builds that as a single ``keras.Model``: one shared input, each member nested
under its own name, and a (weighted) mean of their outputs; it predicts,
saves as ``.keras`` and reloads like any other model.
"""

from __future__ import annotations

import numbers

import keras

from keras_cnnclassics.layers import WeightedAverage

__all__ = ["ensemble"]


def _single_output_shape(model):
    if len(model.outputs) != 1:
        raise ValueError(
            f"ensemble: member {model.name!r} has {len(model.outputs)} outputs; each member "
            "must have one probability output (build GoogLeNet/Inception v3 with aux_logits=False)."
        )
    return tuple(model.outputs[0].shape)


def _check_members(models):
    if isinstance(models, keras.Model) or not isinstance(models, (list, tuple)):
        raise ValueError("ensemble: models must be a list or tuple of keras.Model instances.")
    if len(models) < 2:
        raise ValueError(f"ensemble: needs at least 2 models; got {len(models)}.")
    not_models = [type(m).__name__ for m in models if not isinstance(m, keras.Model)]
    if not_models:
        raise ValueError(f"ensemble: every member must be a keras.Model; got {', '.join(not_models)}.")
    input_shapes = [tuple(m.inputs[0].shape[1:]) if len(m.inputs) == 1 else None for m in models]
    if None in input_shapes or len(set(input_shapes)) != 1:
        listed = ", ".join(f"{m.name}: {s}" for m, s in zip(models, input_shapes))
        raise ValueError(
            f"ensemble: all members must take one input of the same shape; got {listed}."
        )
    output_shapes = [_single_output_shape(m) for m in models]
    if len(set(output_shapes)) != 1 or len(output_shapes[0]) != 2:
        listed = ", ".join(f"{m.name}: {s[1:]}" for m, s in zip(models, output_shapes))
        raise ValueError(
            f"ensemble: all members must output the same number of classes (batch, classes); "
            f"got {listed}."
        )
    return input_shapes[0]


def _check_weights(weights, count):
    if weights is None:
        return None
    if not isinstance(weights, (list, tuple)) or len(weights) != count:
        raise ValueError(f"ensemble: weights must be a list of {count} numbers (one per model); got {weights!r}.")
    if any(isinstance(w, bool) or not isinstance(w, numbers.Real) for w in weights):
        raise ValueError(f"ensemble: weights must be numbers; got {weights!r}.")
    if min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"ensemble: weights must be non-negative with a positive sum; got {list(weights)}.")
    return [float(w) for w in weights]


def _unique_members(models):
    """Members as nested models with distinct names (``resnet50``, ``resnet50_1``, ...)."""
    seen, members = {}, []
    for model in models:
        count = seen.get(model.name, 0)
        seen[model.name] = count + 1
        if count:
            model = keras.Model(model.inputs[0], model.outputs[0], name=f"{model.name}_{count}")
        members.append(model)
    if len({m.name for m in members}) != len(members):
        raise ValueError(
            f"ensemble: member names clash ({[m.name for m in members]}); build them with name=..."
        )
    return members


def ensemble(models, weights=None, name="ensemble"):
    """One model whose output is the (weighted) mean of ``models``' outputs on the same input.

    Args:
        models: two or more ``keras.Model`` with one input of the same shape and
            one ``(batch, classes)`` output each, with the same ``classes``
            (softmax probabilities, e.g. this package's models with the default
            ``classifier_activation``).
        weights: None for the plain mean, else one non-negative number per model
            (positive sum); the output is ``sum(w_i * p_i) / sum(w_i)``.
        name: the ensemble model's name.

    Returns:
        A ``keras.Model`` with the members nested as layers (their weights are
        shared with the models passed in), savable as ``.keras``.
    """
    input_shape = _check_members(models)
    weights = _check_weights(weights, len(models))
    if not isinstance(name, str) or not name:
        raise ValueError(f"ensemble: name must be a non-empty string; got {name!r}.")
    inputs = keras.Input(shape=input_shape, name=f"{name}_input")
    outputs = [member(inputs) for member in _unique_members(models)]
    if weights is None:
        combined = keras.layers.Average(name="average")(outputs)
    else:
        combined = WeightedAverage(weights, name="weighted_average")(outputs)
    return keras.Model(inputs, combined, name=name)
