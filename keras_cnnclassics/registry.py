"""Model registry: every public model is registered here by name.

``register_model`` turns a family builder into a keras.applications-style public
constructor (see :mod:`keras_cnnclassics.applications`) and records the metadata
that ``model_info`` returns and the tests check: paper, year, exact parameter count
at the default number of classes, default input shape, the torchvision/timm model it
matches, and the published ImageNet top-1 with its source.

Modelled on torchvision's ``models/_api.py`` (builder plus metadata and a registry)
and timm's ``@register_model``.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from typing import Any, Callable, Mapping

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
        family: family module name, e.g. ``"vgg"``.
        builder: ``builder(img_input, *, include_top, classes,
            classifier_activation, pooling, **options) -> outputs``.
        options: family options fixed for this variant (depth, width, ...).
        paper: citation of the paper that defines the model.
        year: year of that paper.
        params: exact parameter count at the default input and 1000 classes
            (or ``default_classes``).
        input_shape: default input shape, channels_last ``(H, W, C)``.
        min_size: smallest spatial size (H and W) the network accepts.
        reference: the torchvision/timm model this one matches exactly
            (``"torchvision:resnet50"``, ``"timm:legacy_seresnet50"``) or None.
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
    reference: str | None = None
    default_classes: int = 1000
    flexible_top: bool = True
    top1: float | None = None
    top1_source: str | None = None
    notes: str = ""
    heavy: bool = False
    feature_layers: Any = ()

    def stage_outputs(self, options=None) -> tuple:
        """Names of the stage-end layers for these options (see ``feature_layers``)."""
        layers = self.feature_layers
        if callable(layers):
            layers = layers({**self.options, **(options or {})})
        return tuple(layers)

    def info(self) -> dict:
        """The public metadata as a plain dict (what ``model_info`` returns)."""
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
        }


_REGISTRY: dict[str, ModelSpec] = {}

HEAVY_PARAMS = 30_000_000


def register_model(
    name: str,
    *,
    builder: Callable[..., Any],
    paper: str,
    year: int,
    params: int,
    input_shape: tuple = (224, 224, 3),
    min_size: int,
    constructor: str | None = None,
    options: Mapping[str, Any] | None = None,
    reference: str | None = None,
    default_classes: int = 1000,
    flexible_top: bool = True,
    top1: float | None = None,
    top1_source: str | None = None,
    notes: str = "",
    heavy: bool | None = None,
    feature_layers: Any = (),
    doc: str | None = None,
):
    """Register a model variant and return its public constructor.

    The returned function has the keras.applications signature
    ``(include_top=True, weights=None, input_tensor=None, input_shape=None,
    pooling=None, classes=..., classifier_activation="softmax", name=None,
    **family_options)``; see :func:`keras_cnnclassics.applications.build_model`.
    """
    from keras_cnnclassics import applications

    if name != name.lower() or name in _REGISTRY:
        raise ValueError(f"Model name {name!r} must be lowercase and unique.")
    family = builder.__module__.rsplit(".", 1)[-1]
    spec = ModelSpec(
        name=name,
        constructor=constructor or name,
        family=family,
        builder=builder,
        options=dict(options or {}),
        paper=paper,
        year=year,
        params=params,
        input_shape=tuple(input_shape),
        min_size=min_size,
        reference=reference,
        default_classes=default_classes,
        flexible_top=flexible_top,
        top1=top1,
        top1_source=top1_source,
        notes=notes,
        heavy=params > HEAVY_PARAMS if heavy is None else heavy,
        feature_layers=feature_layers,
    )
    _REGISTRY[name] = spec
    return applications.make_constructor(spec, doc=doc)


def _ensure_models_loaded():
    # Importing the models package runs every family's registrations.
    import keras_cnnclassics.models  # noqa: F401


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted registry names, optionally filtered by an fnmatch ``pattern``.

    >>> list_models("vgg1[69]*")
    ['vgg16', 'vgg16_bn', 'vgg19', 'vgg19_bn']
    """
    _ensure_models_loaded()
    names = sorted(_REGISTRY)
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
    spec = get_spec(name)
    from keras_cnnclassics import applications

    return applications.build_model(spec, **kwargs)


def model_info(name: str) -> dict:
    """Metadata of a registry model: paper, year, params, input_shape, reference, top-1."""
    return get_spec(name).info()


def all_specs() -> list[ModelSpec]:
    """Every registered spec, sorted by name."""
    _ensure_models_loaded()
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]
