"""Converted weights, made once and cached as ``.weights.h5`` files.

A converted file lives in the cache folder (:func:`~keras_cnnclassics.pretrained.fetch.cache_dir`)
under ``<model>-<tag>-<head>-<key>.weights.h5``: ``head`` is ``top`` (the published
head), ``notop`` (``include_top=False``) or ``top<N>`` (a freshly initialised N-class
head, asked for explicitly), ``key`` a digest of the source URL and hash, the
constructor options and the image data format (the flatten order of VGG/AlexNet's first
Dense depends on it). Later calls find the file and need neither network nor torch;
a read-only cache folder that holds it works.

Conversion is :func:`keras_cnnclassics.convert.convert_checkpoint` (strict mapping;
logits checked against torchvision/timm when they are importable, unless
``CNNCLASSICS_VERIFY_CONVERSION=0``), which writes
through a temporary file and an atomic rename: two processes converting at once both
write complete files, and the last rename wins. A backbone or another head is derived
from a cached ``top`` file (no original needed).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys

from keras_cnnclassics.pretrained import fetch

__all__ = ["converted_path", "head_name", "weights_path"]

# Bump when the converted files' layout changes: older files are then ignored.
FORMAT = 1
ENV_VERIFY = "CNNCLASSICS_VERIFY_CONVERSION"
KERAS_SUFFIXES = (".weights.h5", ".keras", ".h5")


def head_name(include_top, classes, published_classes):
    """``top`` (the published head), ``notop`` or ``top<N>``."""
    if not include_top:
        return "notop"
    return "top" if classes in (None, published_classes) else f"top{int(classes)}"


def converted_path(source, options, head) -> str:
    """Where the converted file of ``source`` with ``options`` and ``head`` lives."""
    import keras

    key = json.dumps({
        "format": FORMAT, "model": source.model, "url": source.url, "sha256": source.sha256,
        "options": {k: _plain(v) for k, v in sorted((options or {}).items())},
        "data_format": keras.config.image_data_format(),
    }, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return os.path.join(fetch.cache_dir(), f"{source.model}-{source.tag}-{head}-{digest}.weights.h5")


def _plain(value):
    return list(value) if isinstance(value, tuple) else value if isinstance(value, (bool, int, float, str)) \
        or value is None else repr(value)


def weights_path(source, include_top=True, classes=None, options=None) -> str:
    """The local ``.weights.h5`` for ``source`` and the requested head, made if needed."""
    if source.file.endswith(KERAS_SUFFIXES):
        return _keras_file(source)
    head = head_name(include_top, classes, source.classes)
    target = converted_path(source, options, head)
    if os.path.isfile(target):
        return target
    full = converted_path(source, options, "top")
    if head != "top" and source.classes and os.path.isfile(full):
        return _derive(source, full, target, include_top, classes, options)
    return _convert(source, target, include_top, classes if head.startswith("top") and head != "top" else None,
                    options)


def _keras_file(source):
    """A URL of a Keras weights file: downloaded and kept as it is (no conversion)."""
    with fetch.original(source) as path:
        pass
    return fetch.cached_original(source) or path


def _library(source):
    from keras_cnnclassics.registry import get_spec

    reference = get_spec(source.model).reference
    if reference is None:
        raise ValueError(
            f"{source.model} has no torchvision/timm counterpart, so {source.url} cannot be converted; "
            "give the URL of a .weights.h5 file for it instead."
        )
    return reference.split(":", 1)[0]


def _convert(source, target, include_top, classes, options):
    from keras_cnnclassics.convert import convert_checkpoint

    library = _library(source)
    fetch.writable_folder(os.path.dirname(target), os.path.basename(target))
    with fetch.original(source) as path, float32_policy():
        print(f"Converting {source.file} for {source.model} (once): {target}", file=sys.stderr)
        try:
            convert_checkpoint(source.model, library, path, target, classes=classes, include_top=include_top,
                               force=True, verify=verify_conversions(), log=_log, options=options)
        except ValueError as err:
            raise ValueError(f"The weights at {source.url} do not convert to {source.model}: {err}") from None
    return target


@contextlib.contextmanager
def float32_policy():
    """Keras' float32 dtype policy inside the block: a conversion checks float32 logits
    against torch's, whatever mixed-precision policy the user has set."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def verify_conversions() -> bool:
    """False when ``CNNCLASSICS_VERIFY_CONVERSION`` is 0/false/no/off: conversions then skip the
    logit check against torchvision/timm (made only where torch and that library import)."""
    return os.environ.get(ENV_VERIFY, "").strip().lower() not in ("0", "false", "no", "off")


def _log(line):
    print(f"  {line}", file=sys.stderr)


def _derive(source, full, target, include_top, classes, options):
    """``target`` made from the cached ``top`` file: same layers, the requested head."""
    from keras_cnnclassics.convert import _copy_matching_layers
    from keras_cnnclassics.registry import get_model
    from keras_cnnclassics.weights import save_weights

    fetch.writable_folder(os.path.dirname(target), os.path.basename(target))
    published = get_model(source.model, weights=full, classes=source.classes, **(options or {}))
    model = get_model(source.model, include_top=include_top, classes=classes or source.classes,
                      **(options or {}))
    _copy_matching_layers(published, model)
    save_weights(model, target, overwrite=True)
    return target
