"""The keras.applications constructor contract, implemented once for every model.

Every public constructor (``VGG16``, ``ResNet50``, ...) is an explicit function
registered with :func:`keras_cnnclassics.registry.register_model`, whose body is one
call to :func:`build_model` through its registry entry, which

1. validates the common arguments (``weights``, ``pooling``, ``classes``, ...),
2. resolves and validates ``input_shape`` against the architecture's minimum
   input size *before any layer is built*,
3. creates the input (or wraps ``input_tensor``),
4. calls the family builder, which returns the network's output tensor(s),
5. names the model and loads ``weights``: a local file, or published weights / a URL
   made local by :mod:`keras_cnnclassics.pretrained`, with a clear error when the
   file does not fit (:mod:`keras_cnnclassics.weights`).

The constructors' common argument documentation is written once here
(:func:`constructor_doc`) and appended to each constructor's own short docstring.
Argument meanings follow ``keras.applications`` (e.g. ``keras.applications.ResNet50``).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import numbers
import os
import sys
import textwrap
import weakref

import keras

from keras_cnnclassics import pretrained
from keras_cnnclassics import weights as weights_lib
from keras_cnnclassics.backend_support import require_channels_first_support

POOLING_CHOICES = (None, "avg", "max")
WEIGHT_SUFFIXES = (".weights.h5", ".keras", ".h5")
STATS_PATH = os.path.join(os.path.dirname(__file__), "data", "model_stats.json")

# Keras maps a functional graph recursively, one Python frame per layer along its
# longest path (keras-team/keras#15596): Python's default limit of 1,000 stops near
# 950 chained layers, ResNet-1202 chains 4,213.
DEEP_GRAPH_RECURSION_LIMIT = 30_000

# Models built here -> their registry name, whatever the Keras name the user chose.
_BUILT_FROM = weakref.WeakKeyDictionary()


def channels_last() -> bool:
    """True when Keras is configured for NHWC images (the default)."""
    return keras.config.image_data_format() == "channels_last"


def to_data_format(shape_hwc):
    """Turn an ``(H, W, C)`` shape into the configured data format's order."""
    h, w, c = shape_hwc
    return (h, w, c) if channels_last() else (c, h, w)


def _spatial_and_channels(shape):
    if channels_last():
        return shape[:2], shape[2]
    return shape[1:], shape[0]


def resolve_input_shape(spec, input_shape, include_top, min_size):
    """Validate ``input_shape`` (or choose the default) for ``spec``.

    Rules: rank 3 in the configured data format; channels a positive int;
    height/width None (only where the top ends in global pooling or
    ``include_top=False``) or integers >= ``min_size``; models whose top
    flattens a fixed-size map take exactly their default spatial size.
    """
    default = to_data_format(spec.input_shape)
    if input_shape is None:
        return default
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
        raise ValueError(
            f"{spec.name}: input_shape must be a tuple of 3 integers "
            f"{_layout()} such as {default}; got {input_shape!r}."
        )
    input_shape = tuple(input_shape)
    (height, width), chans = _spatial_and_channels(input_shape)
    if not _is_positive_int(chans):
        raise ValueError(
            f"{spec.name}: the channel axis of input_shape {input_shape} must be a "
            f"positive integer (data format {keras.config.image_data_format()}, "
            f"layout {_layout()}); e.g. {default}."
        )
    fixed = include_top and not spec.flexible_top
    default_hw = _spatial_and_channels(default)[0]
    if fixed and (height, width) != tuple(default_hw):
        raise ValueError(
            f"{spec.name}: include_top=True flattens a fixed-size feature map, so the "
            f"input must be {default_hw[0]}x{default_hw[1]}; got {input_shape}. Pass "
            "include_top=False for other sizes."
        )
    for size in (height, width):
        if size is None:
            continue
        if not _is_positive_int(size):
            raise ValueError(
                f"{spec.name}: input height/width must be positive integers or None; "
                f"got {input_shape}."
            )
        if size < min_size:
            raise ValueError(
                f"{spec.name}: input {input_shape} is too small; this network needs "
                f"height and width >= {min_size} (default {default})."
            )
    return input_shape


def _layout():
    return "(height, width, channels)" if channels_last() else "(channels, height, width)"


def _is_positive_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0


def _validate_common(spec, include_top, weights, pooling, classes, classifier_activation):
    if not isinstance(include_top, bool):
        raise ValueError(f"{spec.name}: include_top must be True or False; got {include_top!r}.")
    if pooling not in POOLING_CHOICES:
        raise ValueError(
            f"{spec.name}: pooling must be None, 'avg' or 'max'; got {pooling!r}."
        )
    if not _is_positive_int(classes):
        raise ValueError(f"{spec.name}: classes must be a positive integer; got {classes!r}.")
    if classifier_activation is not None and not (
        isinstance(classifier_activation, str) or callable(classifier_activation)
    ):
        raise ValueError(
            f"{spec.name}: classifier_activation must be None, a name such as "
            f"'softmax', or a callable; got {classifier_activation!r}."
        )
    if isinstance(classifier_activation, str):
        try:
            keras.activations.get(classifier_activation)
        except ValueError as err:
            raise ValueError(
                f"{spec.name}: unknown classifier_activation {classifier_activation!r}."
            ) from err
    if weights is not None and pretrained.is_request(weights):
        pretrained.check_request(spec, weights, include_top, classes)
    elif weights is not None:
        _validate_weights_path(spec, weights)


def _validate_weights_path(spec, weights):
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            f"{spec.name}: weights must be None or the path of a local "
            f"{'/'.join(WEIGHT_SUFFIXES)} file, 'imagenet', a published tag or a URL; got {weights!r}."
        )
    path = os.fspath(weights)
    if not path.endswith(WEIGHT_SUFFIXES):
        raise ValueError(
            f"{spec.name}: weights file {path!r} must end in "
            f"{', '.join(WEIGHT_SUFFIXES)}."
        )
    if not os.path.isfile(path):
        raise ValueError(f"{spec.name}: weights file {path!r} does not exist.")


def _input_tensor_shape(spec, input_tensor, input_shape):
    """The input shape taken from ``input_tensor`` (a symbolic Keras tensor)."""
    if not keras.backend.is_keras_tensor(input_tensor):
        raise ValueError(
            f"{spec.name}: input_tensor must be a symbolic Keras tensor (keras.Input(...) or "
            f"a layer's output); got {type(input_tensor).__name__}. Call the model on arrays "
            "instead of passing them as input_tensor."
        )
    shape = tuple(input_tensor.shape[1:])
    if input_shape is not None and (not isinstance(input_shape, (tuple, list)) or tuple(input_shape) != shape):
        raise ValueError(
            f"{spec.name}: input_shape {tuple(input_shape)} differs from input_tensor's shape "
            f"{shape}; pass one of them."
        )
    return shape


def _resolve_options(spec, options):
    """Merge the variant's fixed options with user options; reject unknown ones."""
    params = inspect.signature(spec.builder).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    known = {
        n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
    } - {"include_top", "classes", "classifier_activation", "pooling"}
    unknown = sorted(set(options) - known)
    if unknown and not accepts_any:
        raise ValueError(
            f"{spec.name}: unknown option(s) {', '.join(unknown)}; this family accepts "
            f"{', '.join(sorted(known)) or 'no extra options'}."
        )
    return {**spec.options, **options}


def build_model(
    spec,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=None,
    classifier_activation="softmax",
    name=None,
    **options,
):
    """Build ``spec`` following the keras.applications contract (see module doc).

    With ``input_tensor`` the network is built as one nested model named ``name``
    and applied to that tensor, so several copies (different ``name``) can share
    an input in one graph without layer-name clashes.
    """
    classes = spec.default_classes if classes is None else classes
    _validate_common(spec, include_top, weights, pooling, classes, classifier_activation)
    require_channels_first_support(spec.name)
    classes = int(classes)  # numpy integers pass the check; Keras layers want a Python int
    if name is not None and (not isinstance(name, str) or not name or "/" in name):
        raise ValueError(f"{spec.name}: name must be None or a non-empty string without '/'; got {name!r}.")
    options = pretrained.weight_options(spec, weights, options)
    requested_options, options = options, _resolve_options(spec, options)
    if input_tensor is not None:
        input_shape = _input_tensor_shape(spec, input_tensor, input_shape)
    input_shape = resolve_input_shape(spec, input_shape, include_top, spec.min_size)
    # A fixed name keeps profiles, exports and weight manifests stable however many
    # models the process has built (Keras would number it input_layer_N).
    img_input = keras.Input(shape=input_shape, name="input_layer")
    outputs = spec.builder(
        img_input,
        include_top=include_top,
        classes=classes,
        classifier_activation=classifier_activation,
        pooling=pooling,
        **options,
    )
    with deep_graph_recursion():
        model = keras.Model(img_input, outputs, name=name or spec.name)
    _BUILT_FROM[model] = spec.name
    if weights is not None:
        weights_lib.load_weights(
            model, pretrained.local_weights(spec, weights, include_top, classes, requested_options))
    if input_tensor is None:
        return model
    source = keras.utils.get_source_inputs(input_tensor)
    return keras.Model(source, model(input_tensor), name=model.name)


def registry_name(model):
    """The registry name of a model built by :func:`build_model` (whatever its Keras
    ``name``), or None for any other model."""
    return _BUILT_FROM.get(model)


@contextlib.contextmanager
def deep_graph_recursion(limit=DEEP_GRAPH_RECURSION_LIMIT):
    """Within the block, let Keras map functional graphs about ``limit`` layers deep.

    Python's recursion limit is raised (never lowered) and restored on exit. Building
    uses it; wrap ``keras.saving.load_model``, ``keras.models.clone_model`` or
    ``keras.Model(...)`` of a 1,000-layer network (``resnet1202``,
    ``preact_resnet1001``) in it as well.
    """
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


# The keras.applications signature every public constructor has (``classes`` defaults
# to the model's ``default_classes``).
CONSTRUCTOR_DEFAULTS = {
    "include_top": True,
    "weights": None,
    "input_tensor": None,
    "input_shape": None,
    "pooling": None,
    "classes": None,
    "classifier_activation": "softmax",
    "name": None,
}


def check_constructor_signature(constructor, spec):
    """Raise TypeError unless ``constructor`` has exactly the keras.applications signature."""
    parameter = inspect.Parameter
    defaults = {**CONSTRUCTOR_DEFAULTS, "classes": spec.default_classes}
    expected = inspect.Signature(
        [parameter(n, parameter.POSITIONAL_OR_KEYWORD, default=d) for n, d in defaults.items()]
        + [parameter("kwargs", parameter.VAR_KEYWORD)]
    )
    got = inspect.signature(constructor)
    if got != expected:
        raise TypeError(f"{constructor.__name__}{got}: a model constructor's signature must be {expected}.")


_CONSTRUCTOR_ARGS = """
Args:
    include_top: whether to include the classifier head.
    weights: None (the default: random initialisation), "imagenet" (the published
        ImageNet weights, downloaded, converted and cached once), a published tag
        (``model_info(name)["weights"]``), a URL (``https://``, ``hf://``; optional
        ``#sha256=<hex>``) or the path of a local ``.weights.h5``, ``.keras`` or
        legacy ``.h5`` file for this architecture.
    input_tensor: optional Keras tensor to use as the model's input.
    input_shape: optional shape tuple, (height, width, channels) for
        channels_last; default {default}. Height and width must be >= {min_size}.
    pooling: None, "avg" or "max"; global pooling applied when
        ``include_top=False``.
    classes: number of classes of the head (default {classes}).
    classifier_activation: activation of the head ("softmax", None for logits).
    name: the model's name (default ``"{name}"``).
{options}

Returns:
    A ``keras.Model``.
"""


def constructor_doc(spec, summary):
    """``summary`` (the constructor's own docstring), then the reference, the model's
    size and the common ``Args`` section."""
    options = [
        n for n, p in inspect.signature(spec.builder).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
        and n not in ("include_top", "classes", "classifier_activation", "pooling")
    ]
    macs = _cached_macs(spec)
    size = f"Parameters: {spec.params:,} (with {spec.default_classes} classes)." + (
        f" Multiply-adds: {macs / 1e9:.3g} G per {'x'.join(map(str, spec.input_shape))} image." if macs else ""
    ) + (f" Matches {spec.reference}." if spec.reference else "")
    paragraphs = [
        inspect.cleandoc(summary or f"Instantiates {spec.constructor}."),
        *(textwrap.fill(text, 88) for text in (f"Reference: {spec.paper}", size, spec.notes) if text),
    ]
    options_doc = textwrap.fill(
        f"**kwargs: options of the {spec.family} family builder: {', '.join(options) or 'none'}.",
        88, initial_indent="    ", subsequent_indent="        ",
    )
    return "\n\n".join(paragraphs) + "\n" + _CONSTRUCTOR_ARGS.format(
        default=spec.input_shape, min_size=spec.min_size, classes=spec.default_classes,
        name=spec.name, options=options_doc,
    )


def _cached_macs(spec):
    """``spec``'s multiply-adds from the profiler's cache (``data/model_stats.json``),
    or None where its entry is missing or was made for another count or input."""
    entry = _cached_stats().get(spec.name, {})
    if entry.get("params") != spec.params or tuple(entry.get("input_shape", ())) != spec.input_shape:
        return None
    return entry.get("macs")


@functools.cache
def _cached_stats():
    try:
        with open(STATS_PATH, encoding="utf-8") as handle:
            return json.load(handle)["models"]
    except (OSError, ValueError, KeyError):
        return {}
