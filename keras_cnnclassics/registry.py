"""Model registry: every public model is registered here by name.

``@register_model(name, ...)`` decorates a model's explicit public constructor
(``def ResNet50(include_top=True, weights=None, ...)``, one per model, as
torchvision and timm write them) and records everything the package's tools need
to know about that model in a :class:`ModelSpec`: family, builder and options,
paper, year, exact parameter count at the default number of classes, default
input shape, the torchvision/timm model it matches, the published ImageNet top-1
with its source, ``preprocess_input``, the torch checkpoint mapping and the
stage-end layers for feature extraction. The tools read the entry; they never
look a model's module up by name.

Modelled on torchvision's ``models/_api.py`` (builder plus metadata and a registry)
and timm's ``@register_model``.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import re
from typing import Any, Callable, Mapping

from keras_cnnclassics.mapping import TorchMapping

__all__ = [
    "ModelSpec",
    "register_model",
    "list_models",
    "get_model",
    "model_info",
    "get_spec",
]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything the package knows about one registry model.

    Attributes:
        name: lowercase registry name, e.g. ``"vgg16_bn"``.
        constructor: name of the public constructor, e.g. ``"VGG16_BN"``.
        family: the family the model belongs to, e.g. ``"vgg"``; models of one
            family share a builder and a module under ``keras_cnnclassics/models``.
        builder: ``builder(img_input, *, include_top, classes,
            classifier_activation, pooling, **options) -> outputs``.
        options: family options fixed for this variant (depth, width, ...).
        paper: citation of the paper that defines the model.
        year: year of that paper.
        params: exact parameter count at the default input and 1000 classes
            (or ``default_classes``).
        input_shape: default input shape, channels_last ``(H, W, C)``.
        min_size: smallest spatial size (H and W) the network accepts.
        preprocess_input: ``preprocess_input(x)``: the normalisation the model's
            weights expect, from images in [0, 255].
        reference: the torchvision/timm model this one matches exactly
            (``"torchvision:resnet50"``, ``"timm:legacy_seresnet50"``) or None.
        torch_mapping: how that model's checkpoints differ from the generic
            per-layer copy: a :class:`~keras_cnnclassics.mapping.TorchMapping`, a
            function ``(options) -> TorchMapping``, or None (no difference).
        default_classes: number of classes of the default head.
        flexible_top: True when the top ends in global/adaptive pooling, so
            ``include_top=True`` accepts any input size >= ``min_size``.
        top1: published ImageNet-1k top-1 accuracy (%) or None.
        top1_source: where ``top1`` comes from.
        notes: short remarks shown by ``cnnclassics info``.
        heavy: marks models that tests sample per backend instead of running
            everywhere (set automatically from ``params``).
        feature_layers: names of the layers that end each stage (strides 4, 8,
            16, 32 where the network has them), or a callable ``(options) ->
            names``; used by ``feature_extractor`` (timm's ``feature_info``).
    """

    name: str
    constructor: str
    family: str
    builder: Callable[..., Any]
    options: Mapping[str, Any]
    paper: str
    year: int
    params: int
    input_shape: tuple
    min_size: int
    preprocess_input: Callable[..., Any]
    reference: str | None = None
    torch_mapping: Any = None
    default_classes: int = 1000
    flexible_top: bool = True
    top1: float | None = None
    top1_source: str | None = None
    notes: str = ""
    heavy: bool = False
    feature_layers: Any = ()

    def stage_outputs(self, options=None) -> tuple:
        """Names of the stage-end layers for these options (see ``feature_layers``)."""
        return tuple(_for_options(self.feature_layers, self.options, options))

    def mapping(self, options=None) -> TorchMapping:
        """The :class:`TorchMapping` of this model built with ``options``."""
        return _for_options(self.torch_mapping, self.options, options) or TorchMapping()

    def build(self, *args, **kwargs):
        """Build this model through the keras.applications contract
        (:func:`keras_cnnclassics.applications.build_model`)."""
        from keras_cnnclassics import applications

        return applications.build_model(self, *args, **kwargs)

    def info(self) -> dict:
        """The public metadata as a plain dict (what ``model_info`` returns); ``weights``:
        the published weight tags (:func:`keras_cnnclassics.pretrained.published_weights`);
        ``recipe``: the paper's CIFAR training recipe and reported test error, or None
        (:mod:`keras_cnnclassics.training.recipes`)."""
        from keras_cnnclassics.pretrained import published_weights
        from keras_cnnclassics.training.recipes import recipe_for  # a table, no Keras

        return {
            "name": self.name,
            "constructor": self.constructor,
            "family": self.family,
            "paper": self.paper,
            "year": self.year,
            "params": self.params,
            "input_shape": tuple(self.input_shape),
            "min_input_size": self.min_size,
            "default_classes": self.default_classes,
            "reference": self.reference,
            "top1": self.top1,
            "top1_source": self.top1_source,
            "options": dict(self.options),
            "notes": self.notes,
            "weights": published_weights(self.name),
            "recipe": recipe_for(self.name),
        }


def _for_options(value, fixed, options):
    """``value``, or ``value(options)`` when it is a function of the model's options."""
    if callable(value) and not isinstance(value, TorchMapping):
        return value({**fixed, **(options or {})})
    return value


_REGISTRY: dict[str, ModelSpec] = {}

HEAVY_PARAMS = 30_000_000


def register_model(
    name: str,
    *,
    family: str,
    builder: Callable[..., Any],
    preprocess_input: Callable[..., Any],
    paper: str,
    year: int,
    params: int,
    min_size: int,
    input_shape: tuple = (224, 224, 3),
    options: Mapping[str, Any] | None = None,
    heavy: bool | None = None,
    **metadata,
):
    """Decorator registering a model's public constructor under ``name``.

    The decorated function must have the keras.applications signature
    ``(include_top=True, weights=None, input_tensor=None, input_shape=None,
    pooling=None, classes=<default_classes>, classifier_activation="softmax",
    name=None, **kwargs)`` and build through ``<Constructor>.spec.build(...)``.
    The decorator records the :class:`ModelSpec` (other keyword arguments: the
    optional fields of :class:`ModelSpec`), attaches it as ``constructor.spec``
    and appends the common argument documentation to the constructor's docstring.
    """
    from keras_cnnclassics import applications

    if name != name.lower() or name in _REGISTRY:
        raise ValueError(f"Model name {name!r} must be lowercase and unique.")

    def register(constructor):
        spec = ModelSpec(
            name=name,
            constructor=constructor.__name__,
            family=family,
            builder=builder,
            options=dict(options or {}),
            paper=paper,
            year=year,
            params=params,
            input_shape=tuple(input_shape),
            min_size=min_size,
            preprocess_input=preprocess_input,
            heavy=params > HEAVY_PARAMS if heavy is None else heavy,
            **metadata,
        )
        applications.check_constructor_signature(constructor, spec)
        constructor.__doc__ = applications.constructor_doc(spec, constructor.__doc__)
        constructor.spec = spec
        _REGISTRY[name] = spec
        return constructor

    return register


def _ensure_models_loaded():
    # Importing the models package runs every family's registrations.
    import keras_cnnclassics.models  # noqa: F401


def natural_key(name: str) -> list:
    """Sort key reading digit runs as numbers: ``resnet18`` before ``resnet101``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_models(pattern: str | None = None) -> list[str]:
    """Registry names in natural order, optionally filtered by an fnmatch ``pattern``.

    >>> list_models("resnet1*")
    ['resnet18', 'resnet101', 'resnet110', 'resnet110_stochastic_depth', 'resnet152', 'resnet1202']
    """
    _ensure_models_loaded()
    names = sorted(_REGISTRY, key=natural_key)
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern.lower())]
    return names


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``; unknown names list the closest ones."""
    _ensure_models_loaded()
    if not isinstance(name, str):
        raise TypeError(f"Model name must be a string, got {type(name).__name__}.")
    key = name.lower().replace("-", "_")
    if key in _REGISTRY:
        return _REGISTRY[key]
    close = difflib.get_close_matches(key, _REGISTRY, n=5, cutoff=0.5)
    hint = (
        f" Closest names: {', '.join(close)}."
        if close
        else " See keras_cnnclassics.list_models() for every name."
    )
    raise ValueError(f"Unknown model name {name!r}.{hint}")


def get_model(name: str, /, **kwargs):
    """Build the registry model ``name``; kwargs go to its constructor.

    ``name`` is positional-only, so ``name=`` (the Keras model's name) goes to the
    constructor like every other keras.applications argument.

    >>> model = get_model("vgg11", classes=10, input_shape=(64, 64, 3), name="my_vgg")
    """
    return get_spec(name).build(**kwargs)


def model_info(name: str) -> dict:
    """Metadata of a registry model: paper, year, params, input_shape, reference, top-1,
    published weights."""
    return get_spec(name).info()


def all_specs() -> list[ModelSpec]:
    """Every registered spec, in natural order of their names (see :func:`list_models`)."""
    _ensure_models_loaded()
    return [_REGISTRY[n] for n in sorted(_REGISTRY, key=natural_key)]
