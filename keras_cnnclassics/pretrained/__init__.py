"""Published ImageNet weights in one argument: ``ResNet50(weights="imagenet")``.

``weights=`` of every constructor and ``get_model`` accepts, besides None and a local
``.weights.h5``/``.keras``/``.h5`` file:

* ``"imagenet"``: the recommended published weights (torchvision's ``DEFAULT``; timm's
  default tag for the timm-referenced models);
* a published tag: ``"imagenet1k_v1"``, ``"imagenet1k_v2"`` (torchvision),
  ``"in1k"``, ``"a1h_in1k"``, ... (timm); :func:`published_weights` lists them;
* a URL of a torchvision/timm-layout checkpoint (``.pth``, ``.safetensors``) or of a
  Keras weights file: ``https://...``, ``http://...``, ``hf://org/repo/file``,
  optionally ending in ``#sha256=<hex>`` (as pip accepts it).

The file is found in a cache or downloaded and verified
(:mod:`~keras_cnnclassics.pretrained.fetch`), converted once with the strict mapping
and cached as ``.weights.h5`` (:mod:`~keras_cnnclassics.pretrained.store`); later calls
need neither network nor torch. The published head is kept with ``include_top=True``
(``classes`` must then be the published number) and dropped with
``include_top=False``; :func:`weights_file` with another ``classes`` gives the same
weights under a freshly initialised head. :func:`preprocessing` returns the eval
preprocessing of a tag (resize, centre crop, normalisation).
"""

from __future__ import annotations

from keras_cnnclassics.pretrained.catalogue import (
    DEFAULT_TAG,
    WeightSource,
    is_request,
    is_url,
    models_with_weights,
    published,
    resolve,
)
from keras_cnnclassics.pretrained.fetch import DownloadError, cache_dir
from keras_cnnclassics.pretrained.preprocess import Preprocessing

__all__ = [
    "DownloadError",
    "Preprocessing",
    "WeightSource",
    "cache_dir",
    "download",
    "models_with_weights",
    "preprocessing",
    "published_weights",
    "resolve",
    "weights_file",
]


def published_weights(name: str) -> dict:
    """``{tag: entry}`` of model ``name``'s published weights (``{}`` when it has none).

    Each entry: ``url``, ``file``, ``sha256_prefix``, ``classes``, ``top1``/``top5``
    (ImageNet-1k, as published; None where the library publishes none), ``input_size``,
    ``preprocessing`` (resize, crop, interpolation, mean, std), ``options`` (constructor
    options the weights are meant for), ``source`` and ``default`` (True for the tag
    ``"imagenet"`` means).
    """
    info = published(name)
    return {tag: {**entry, "default": tag == info["default"]} for tag, entry in info.get("tags", {}).items()}


def check_request(spec, weights, include_top, classes) -> WeightSource:
    """The source of a ``weights=`` request for ``spec``; head mismatches raise here, before
    anything is built or downloaded."""
    source = resolve(spec.name, weights)
    if include_top and source.classes and classes != source.classes:
        raise ValueError(
            f"{spec.name}: weights={weights!r} hold a {source.classes}-class head; classes={classes} needs "
            "include_top=False (the backbone, to put your own head on), or "
            f"weights=keras_cnnclassics.pretrained.weights_file({spec.name!r}, {weights!r}, classes={classes}) "
            f"for these weights under a freshly initialised {classes}-class head."
        )
    return source


def weight_options(spec, weights, options) -> dict:
    """``options`` plus the constructor options published weights are meant for
    (torchvision's GoogLeNet/Inception v3 weights: ``transform_input=True``); the
    user's own choice wins."""
    if weights is None or not is_request(weights) or is_url(weights):
        return dict(options)
    return {**resolve(spec.name, weights).options, **options}


def local_weights(spec, weights, include_top, classes, options):
    """The local file ``weights=`` stands for: a path as it is, a request converted and cached."""
    from keras_cnnclassics.pretrained import store

    if not is_request(weights):
        return weights
    return store.weights_path(resolve(spec.name, weights), include_top, classes, options)


def weights_file(name: str, weights: str = DEFAULT_TAG, include_top: bool = True, classes=None,
                 **options) -> str:
    """The cached ``.weights.h5`` of published weights (or a URL's) for a model built with
    ``include_top``, ``classes`` and ``options``; downloaded and converted if needed.

    Unlike ``weights="imagenet"``, ``classes`` may differ from the published head: the
    file then holds the published weights under a freshly initialised head, e.g.
    ``ResNet18(classes=10, weights=weights_file("resnet18", classes=10))``.
    """
    from keras_cnnclassics.pretrained import store
    from keras_cnnclassics.registry import get_spec

    spec = get_spec(name)
    source = resolve(spec.name, weights)
    return store.weights_path(source, include_top, classes, {**source.options, **options})


def preprocessing(name: str, weights: str = DEFAULT_TAG) -> Preprocessing:
    """The eval preprocessing published with ``name``'s weights tag ``weights``.

    >>> prep = preprocessing("resnet50")            # IMAGENET1K_V2: resize 232, crop 224
    >>> model.predict(prep(image_uint8_hwc))        # doctest: +SKIP
    """
    from keras_cnnclassics.registry import get_spec

    source = resolve(get_spec(name).name, weights)
    if source.entry is None:
        raise ValueError(f"{name}: a URL carries no preprocessing; use a published tag, e.g. "
                         f"preprocessing({name!r}, {DEFAULT_TAG!r}).")
    return Preprocessing.from_entry(source.entry)


def download(name: str, weights: str = DEFAULT_TAG) -> list:
    """Fill the cache with ``name``'s weights ``weights``: the converted file with the
    published head and the backbone (``include_top=False``). Returns their paths."""
    return [weights_file(name, weights), weights_file(name, weights, include_top=False)]
