"""What a network sees: feature maps, filters, Grad-CAM and gradient saliency.

* :func:`feature_maps` returns the activations of chosen layers for one image (the
  stage ends of :func:`keras_cnnclassics.feature_info` by default) and
  :func:`plot_feature_maps` draws a grid per layer, as Zeiler & Fergus, "Visualizing and
  Understanding Convolutional Networks" (ECCV 2014) looked inside AlexNet.
* :func:`filters` returns a convolution's kernels as image tiles (a first layer's as RGB,
  e.g. AlexNet's 64 conv1 filters of 11x11x3); :func:`plot_filters` draws them.
* :func:`grad_cam` is Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep
  Networks via Gradient-based Localization", ICCV 2017) and :func:`saliency` the gradient
  saliency of Simonyan et al., "Deep Inside Convolutional Networks: Visualising Image
  Classification Models and Saliency Maps" (ICLR workshop 2014); :func:`plot_heat_map`
  lays either over the image.

Images given to these functions are one preprocessed image, as the model takes it (with or
without the batch axis, in the configured image data format). Gradients are taken of the
class *logit* (the input of a final softmax), through the backend's own automatic
differentiation (TensorFlow's GradientTape, ``jax.grad``, torch autograd). Pictures are
written with matplotlib's Agg canvas, atomically.
"""

from __future__ import annotations

import math
import os

import keras
import numpy as np

from keras_cnnclassics.applications import deep_graph_recursion

__all__ = [
    "feature_maps", "filters", "grad_cam", "plot_feature_maps", "plot_filters", "plot_heat_map", "saliency",
]

SQUASHING_ACTIVATIONS = ("softmax", "sigmoid")


# ------------------------------------------------------------------ inputs and layers


def _channels_last() -> bool:
    return keras.config.image_data_format() == "channels_last"


def _batch(model, image):
    """``image`` as a float32 batch of one, checked against the model's input rank."""
    x = np.asarray(image, dtype="float32")
    rank = len(model.inputs[0].shape)
    if x.ndim == rank - 1:
        x = x[None]
    if x.ndim != rank or x.shape[0] != 1:
        raise ValueError(
            f"expected one preprocessed image of shape {tuple(model.inputs[0].shape[1:])} (with or "
            f"without a batch axis of 1); got shape {np.shape(image)}."
        )
    return x


def _to_channels_last(array):
    """A 4-D batch's first image as (H, W, C), whatever the data format."""
    return array[0] if _channels_last() else np.moveaxis(array[0], 0, -1)


def _is_spatial(layer) -> bool:
    shape = layer.output.shape if not isinstance(layer.output, (list, tuple)) else ()
    if len(shape) != 4:
        return False
    height, width = shape[1:3] if _channels_last() else shape[2:4]
    return (height or 2) * (width or 2) > 1


def last_spatial_layer(model) -> str:
    """The last layer with a spatial output (4-D, more than 1x1): Grad-CAM's default."""
    names = [layer.name for layer in model.layers if _is_spatial(layer)]
    if not names:
        raise ValueError(f"{model.name} has no layer with a spatial (4-D, larger than 1x1) output.")
    return names[-1]


def _layer(model, name):
    try:
        return model.get_layer(name)
    except ValueError:
        raise ValueError(
            f"{model.name} has no layer {name!r}; list its layers with model.summary() "
            "or `cnnclassics profile NAME`."
        ) from None


def _submodel(inputs, outputs, model, what):
    with deep_graph_recursion():
        try:
            return keras.Model(inputs, outputs)
        except ValueError as err:
            raise ValueError(
                f"cannot compute {what} of {model.name} from that layer alone (another path of "
                f"the graph bypasses it: {str(err).splitlines()[0]}); choose a layer every path "
                "goes through, e.g. a stage end."
            ) from None


# ------------------------------------------------------------------ feature maps


def _default_feature_layers(model):
    from keras_cnnclassics.features import feature_info

    try:
        return [entry["layer"] for entry in feature_info(model)]
    except ValueError as err:
        raise ValueError(f"{err} Choose the layers: layers=[...] in Python, --layer L on the command line.") from None


def feature_maps(model, image, layers=None) -> dict:
    """``{layer name: activations (H, W, C)}`` of one preprocessed ``image``.

    ``layers`` defaults to the stage ends that :func:`keras_cnnclassics.feature_info`
    lists. Arrays are channels-last whatever the data format.
    """
    names = list(layers) if layers is not None else _default_feature_layers(model)
    if not names:
        raise ValueError("layers is empty; give at least one layer name.")
    outputs = [_layer(model, name).output for name in names]
    extractor = _submodel(model.inputs[0], outputs, model, "those feature maps")
    values = extractor(_batch(model, image), training=False)
    values = values if isinstance(values, (list, tuple)) else [values]
    maps = {}
    for name, value in zip(names, values):
        array = keras.ops.convert_to_numpy(value)
        maps[name] = _to_channels_last(array) if array.ndim == 4 else array[0]
    return maps


def _most_active(activations, count):
    """Indices of the ``count`` channels with the largest mean activation, largest first."""
    means = activations.reshape(-1, activations.shape[-1]).mean(axis=0)
    return np.argsort(-means, kind="stable")[:count]


def plot_feature_maps(maps, path, max_channels=16, columns=8, overwrite=False, title=None):
    """Draw a grid per layer of ``maps`` (from :func:`feature_maps`): the ``max_channels``
    most active channels of each, each scaled to its own range. Writes ``path`` (PNG)."""
    spatial = {name: m for name, m in maps.items() if np.ndim(m) == 3}
    if not spatial:
        raise ValueError("no spatial feature maps to draw (expected arrays of shape (H, W, C)).")
    columns = min(columns, max_channels)
    rows = [math.ceil(min(max_channels, m.shape[-1]) / columns) for m in spatial.values()]
    heights = [0.4 if title else 0.01] + [r + 0.4 for r in rows]  # a band for the title first
    fig = _figure(columns * 1.1, sum(heights) * 1.1)
    header, *subfigures = fig.subfigures(len(heights), 1, height_ratios=heights, squeeze=False)[:, 0]
    if title:
        header.suptitle(title, fontsize=9)
    for subfig, (name, activations), row_count in zip(subfigures, spatial.items(), rows):
        channels = _most_active(activations, max_channels)
        height, width, total = activations.shape
        subfig.suptitle(f"{name}: {height}x{width}x{total}, {len(channels)} most active channels", fontsize=8)
        axes = subfig.subplots(row_count, columns, squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, channel in zip(axes.flat, channels):
            ax.imshow(activations[..., channel], cmap="viridis", interpolation="nearest")
    _save(fig, path, overwrite)


# ------------------------------------------------------------------ filters


def _first_convolution(model):
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            return layer
    raise ValueError(f"{model.name} has no Conv2D layer; pass layer= the name of a convolution.")


def filters(model, layer=None):
    """A convolution's kernels as tiles ``(filters, kh, kw, in_channels)``, each filter scaled
    to [0, 1] on its own (the first Conv2D by default: RGB tiles for an RGB input)."""
    conv = _first_convolution(model) if layer is None else _layer(model, layer)
    kernel = getattr(conv, "kernel", None)
    if kernel is None or len(kernel.shape) != 4:
        raise ValueError(f"layer {conv.name!r} has no 2-D convolution kernel; choose a Conv2D layer.")
    tiles = np.transpose(keras.ops.convert_to_numpy(kernel), (3, 0, 1, 2)).astype("float32")
    low = tiles.min(axis=(1, 2, 3), keepdims=True)
    span = tiles.max(axis=(1, 2, 3), keepdims=True) - low
    return (tiles - low) / np.where(span > 0, span, 1.0)


def plot_filters(tiles, path, max_filters=64, max_channels=8, columns=8, overwrite=False, title=None):
    """Draw :func:`filters` tiles to ``path`` (PNG): one RGB (or grey) tile per filter when
    the kernels read 3 (or 1) channels, else one row of grey tiles per filter, one per
    input channel (the first ``max_channels``)."""
    tiles = np.asarray(tiles)[:max_filters]
    count, _, _, channels = tiles.shape
    if channels in (1, 3):
        rows, cols = math.ceil(count / columns), min(columns, count)
        images = [tile if channels == 3 else tile[..., 0] for tile in tiles]
    else:
        count = min(count, 16)
        rows, cols = count, min(channels, max_channels)
        images = [tiles[f, ..., c] for f in range(count) for c in range(cols)]
    fig = _figure(cols * 0.9, rows * 0.9 + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image in zip(axes.flat, images):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    _save(fig, path, overwrite, title)


# ------------------------------------------------------------------ gradients


def _gradients(fn, x):
    """The gradient of ``sum(fn(x))`` with respect to ``x`` (a numpy array), by the
    backend's own automatic differentiation."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(fn(x))
        return tape.gradient(total, x).numpy()
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        return np.asarray(jax.grad(lambda v: jnp.sum(fn(v)))(jnp.asarray(x)))
    if backend == "torch":
        import torch

        x = keras.ops.convert_to_tensor(x).detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(fn(x).sum(), x)
        return grad.detach().cpu().numpy()
    raise ValueError(f"gradients are not available on the {backend!r} backend; use tensorflow, jax or torch.")


def _logits_tensor(model):
    """The model's class scores before a final softmax/sigmoid ``Activation`` layer."""
    last = model.layers[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", "")
    if isinstance(last, keras.layers.Activation) and activation in SQUASHING_ACTIVATIONS:
        return last.input
    if activation in SQUASHING_ACTIVATIONS:
        raise ValueError(
            f"{model.name} applies {activation} inside its last layer {last.name!r}; build it with "
            "classifier_activation=None (logits) or end it with a separate Activation layer."
        )
    return model.outputs[0]


def _class_logit(head, class_index):
    """``a -> head(a)[:, class_index]``: one class score as a function of ``head``'s input."""
    def logit(a):
        return head(a, training=False)[:, class_index]
    return logit


def _top_class(logits, class_index):
    logits = np.asarray(logits)
    if class_index is None:
        return int(np.argmax(logits[0]))
    if isinstance(class_index, bool) or not isinstance(class_index, (int, np.integer)) or not (
        0 <= class_index < logits.shape[-1]
    ):
        raise ValueError(f"class_index must be an integer in 0..{logits.shape[-1] - 1}; got {class_index!r}.")
    return int(class_index)


def _unit_range(heat):
    top = float(heat.max())
    return (heat / top if top > 0 else np.zeros_like(heat)).astype("float32")


def grad_cam(model, image, class_index=None, layer=None):
    """Grad-CAM heat map ``(h, w)`` in [0, 1] at ``layer``'s resolution (Selvaraju et al. 2017).

    ``ReLU(sum_c alpha_c A_c)`` with ``alpha_c`` the spatial mean of d logit / d A_c, for
    ``class_index`` (default: the top class) at ``layer`` (default: the last spatial layer).
    """
    x = _batch(model, image)
    name = layer or last_spatial_layer(model)
    target = _layer(model, name).output
    logits = _logits_tensor(model)
    activations = keras.ops.convert_to_numpy(_submodel(model.inputs[0], target, model, "that layer")(x, training=False))
    head = _submodel(target, logits, model, "the class scores")
    k = _top_class(keras.ops.convert_to_numpy(head(activations, training=False)), class_index)
    grads = _gradients(_class_logit(head, k), activations)
    a, g = _to_channels_last(activations), _to_channels_last(grads)
    weights = g.mean(axis=(0, 1))
    return _unit_range(np.maximum(a @ weights, 0.0))


def saliency(model, image, class_index=None):
    """Gradient saliency ``(H, W)`` in [0, 1]: max over channels of |d logit / d input|
    (Simonyan et al. 2014), for ``class_index`` (default: the top class)."""
    x = _batch(model, image)
    scores = _submodel(model.inputs[0], _logits_tensor(model), model, "the class scores")
    k = _top_class(keras.ops.convert_to_numpy(scores(x, training=False)), class_index)
    grads = _to_channels_last(_gradients(_class_logit(scores, k), x))
    return _unit_range(np.abs(grads).max(axis=-1))


# ------------------------------------------------------------------ pictures


def display_image(image):
    """An image (or a preprocessed one) as RGB floats in [0, 1] (H, W, 3) for drawing."""
    x = np.asarray(image, dtype="float32")
    if x.ndim == 4:
        x = x[0]
    if x.ndim == 3 and x.shape[0] in (1, 3) and x.shape[-1] not in (1, 3):
        x = np.moveaxis(x, 0, -1)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    low, high = float(x.min()), float(x.max())
    return (x - low) / (high - low) if high > low else np.zeros_like(x)


def plot_heat_map(image, heat, path, alpha=0.5, overwrite=False, title=None):
    """Draw ``image`` beside it with ``heat`` (from :func:`grad_cam` or :func:`saliency`)
    laid over it, stretched to the image's size. Writes ``path`` (PNG)."""
    picture = display_image(image)
    height, width = picture.shape[:2]
    fig = _figure(8, 4.3)
    left, right = fig.subplots(1, 2)
    for ax in (left, right):
        ax.imshow(picture)
        ax.axis("off")
    # imshow's own extent: pixel centres at 0..width-1, so both layers cover the same area
    right.imshow(np.asarray(heat), cmap="jet", alpha=alpha, extent=(-0.5, width - 0.5, height - 0.5, -0.5),
                 interpolation="bilinear", vmin=0, vmax=1)
    _save(fig, path, overwrite, title)


def _figure(width, height):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - matplotlib is in the train/test extras
        raise ImportError("drawing needs matplotlib: pip install matplotlib") from err
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, overwrite, title=None):
    from keras_cnnclassics.weights import atomic_path

    if not os.fspath(path).lower().endswith(".png"):
        raise ValueError(f"cannot write {os.fspath(path)!r}: give a file name ending in .png.")
    if title:
        fig.suptitle(title, fontsize=9)
    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png")
