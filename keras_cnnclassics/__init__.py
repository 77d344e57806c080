"""keras_cnnclassics: the classic CNNs of CS231n lecture 9 for Keras 3.

Public API: one constructor per model (``VGG16``, ``AlexNet``, ...), the
registry (``list_models``, ``get_model``, ``model_info``) and the tools built on
it. Everything runs on the TensorFlow, JAX and PyTorch backends.

Importing the package is light: each public name is imported on first use
(PEP 562), so ``cnnclassics --help`` never loads Keras. Where Keras is already
imported, importing the package loads every model at once, which registers the
package's layers for ``keras.saving.load_model``.
"""

import importlib
import importlib.util
import sys

import keras_cnnclassics.backend_support  # noqa: F401  first: enables oneDNN before TensorFlow loads

__version__ = "0.1.0"

# Public name -> the module that defines it (the model constructors come from ``models``).
_TOOLS = {
    "complexity_chart": "keras_cnnclassics.chart",
    "count_params": "keras_cnnclassics.counting",
    "decode_predictions": "keras_cnnclassics.imagenet",
    "ensemble": "keras_cnnclassics.ensemble",
    "export_model": "keras_cnnclassics.export",
    "feature_extractor": "keras_cnnclassics.features",
    "feature_info": "keras_cnnclassics.features",
    "get_model": "keras_cnnclassics.registry",
    "list_models": "keras_cnnclassics.registry",
    "model_info": "keras_cnnclassics.registry",
    "profile": "keras_cnnclassics.profiler",
    "receptive_field": "keras_cnnclassics.receptive_fields",
}


def _constructors() -> dict:
    """The public model constructors (``ResNet50``, ...), importing every family once."""
    models = importlib.import_module("keras_cnnclassics.models")
    return {name: value for name, value in vars(models).items() if name[:1].isupper()}


def __getattr__(name):
    if name == "__all__":
        value = sorted(_TOOLS) + sorted(_constructors())
    elif name in _TOOLS:
        value = getattr(importlib.import_module(_TOOLS[name]), name)
    elif name.startswith("_"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    elif importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")  # a submodule, e.g. kc.weights
    elif name in (constructors := _constructors()):
        value = constructors[name]
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__():
    return sorted(set(globals()) | set(__getattr__("__all__")))


if "keras" in sys.modules:
    _constructors()
