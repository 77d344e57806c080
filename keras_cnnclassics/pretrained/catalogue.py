"""The published weights table and what a ``weights=`` string asks for.

``data/pretrained_weights.json`` (written by ``tools/make_pretrained_table.py`` from the
installed torchvision and timm, and compared with them by the tests) lists, for each
model whose registry reference is a torchvision/timm model, every published weight
tag: source URL (``hf://`` for the Hugging Face Hub), the sha256 prefix in a
torchvision file name, published top-1/top-5, input size and the eval preprocessing.

:func:`resolve` turns ``weights="imagenet"``, a tag or a URL (optionally with
``#sha256=<hex>``, as pip accepts it) into a :class:`WeightSource`; errors are one line.
Nothing here imports Keras or torch.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import json
import os
import re
import urllib.parse
from importlib import resources

__all__ = ["WeightSource", "is_request", "models_with_weights", "published", "resolve", "table"]

URL_SCHEMES = ("http://", "https://", "hf://")
DEFAULT_TAG = "imagenet"
# pip's hash fragment; a prefix of at least 8 hex digits is accepted as torch.hub does.
_HASH_FRAGMENT = re.compile(r"^sha256=([0-9a-fA-F]{8,64})$")


@functools.cache
def table() -> dict:
    """The whole table (``{"models": {name: {"reference", "default", "tags"}}, ...}``)."""
    text = resources.files("keras_cnnclassics").joinpath("data/pretrained_weights.json").read_text("utf-8")
    return json.loads(text)


def published(name: str) -> dict:
    """``{"default": tag, "tags": {tag: entry}}`` of registry model ``name``, or ``{}``."""
    return table()["models"].get(name, {})


def models_with_weights(pattern: str | None = None) -> list:
    """Registry names with published weights (matching an fnmatch ``pattern``), in table order."""
    names = list(table()["models"])
    return [n for n in names if pattern is None or fnmatch.fnmatchcase(n, pattern.lower())]


@dataclasses.dataclass(frozen=True)
class WeightSource:
    """Where the weights of one ``weights=`` request come from.

    Attributes:
        model: registry name.
        tag: the published tag, or ``"url"`` for a user's URL.
        url: ``http(s)://...`` or ``hf://org/repo/path``.
        sha256: expected sha256 of the file, or a prefix of it (torchvision file
            names; a URL's ``#sha256=`` fragment), or None.
        entry: the table entry of a published tag (None for a URL).
    """

    model: str
    tag: str
    url: str
    sha256: str | None = None
    entry: dict | None = None

    @property
    def file(self) -> str:
        """The file name at the end of the URL."""
        return os.path.basename(urllib.parse.urlsplit(self.url).path)

    @property
    def options(self) -> dict:
        """Constructor options the published weights are meant for (``transform_input``)."""
        return dict((self.entry or {}).get("options", {}))

    @property
    def classes(self) -> int | None:
        """Number of classes of the published head (None: a URL, unknown until read)."""
        return (self.entry or {}).get("classes")


def is_url(weights) -> bool:
    return isinstance(weights, str) and weights.lower().startswith(URL_SCHEMES)


def is_request(weights) -> bool:
    """True when ``weights`` asks for downloadable weights: ``"imagenet"``, a tag (a bare
    word: no dot, no path separator, not an existing file) or a URL."""
    if not isinstance(weights, str) or not weights:
        return False
    if is_url(weights) or weights.lower() == DEFAULT_TAG:
        return True
    return not any(c in weights for c in "./\\\0") and not os.path.exists(weights)


def resolve(name: str, weights: str) -> WeightSource:
    """The :class:`WeightSource` of ``weights`` (see :func:`is_request`) for model ``name``."""
    if is_url(weights):
        return _url_source(name, weights)
    info = published(name)
    if not info:
        raise ValueError(
            f"{name}: weights={weights!r} cannot be downloaded: {name} has no published weights "
            f"(no torchvision/timm counterpart with ImageNet weights). Models with published weights: "
            f"{', '.join(models_with_weights())}. Otherwise pass None or the path of a local "
            ".weights.h5/.keras/.h5 file."
        )
    tag = info["default"] if weights.lower() == DEFAULT_TAG else weights.lower()
    if tag not in info["tags"]:
        raise ValueError(
            f"{name}: unknown weights {weights!r}; published tags: "
            f"{', '.join([DEFAULT_TAG, *info['tags']])} ('{DEFAULT_TAG}' is {info['default']}), or pass a "
            "URL or the path of a local .weights.h5/.keras/.h5 file."
        )
    entry = info["tags"][tag]
    return WeightSource(name, tag, entry["url"], entry.get("sha256_prefix"), entry)


def _url_source(name, weights):
    url, _, fragment = weights.partition("#")
    digest = None
    if fragment:
        match = _HASH_FRAGMENT.match(fragment)
        if not match:
            raise ValueError(
                f"{name}: the URL fragment #{fragment} is not a hash; write {url}#sha256=<hex digest> "
                "(the file's sha256, or its first 8+ hex digits)."
            )
        digest = match.group(1).lower()
    parts = urllib.parse.urlsplit(url)
    if url.lower().startswith("hf://"):
        if len([p for p in parts.path.split("/") if p]) < 2 or not parts.netloc:
            raise ValueError(f"{name}: {url!r} names no file on the Hub; write hf://<org>/<repo>/<file>.")
    elif not parts.netloc or not os.path.basename(parts.path):
        raise ValueError(f"{name}: {url!r} names no file; give the URL of a .pth/.safetensors/.weights.h5 file.")
    return WeightSource(name, "url", url, digest)
