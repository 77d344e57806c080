"""keras_cnnclassics: the classic CNNs of CS231n lecture 9 for Keras 3.

Public API: one constructor per model (``VGG16``, ``AlexNet``, ...), the
registry (``list_models``, ``get_model``, ``model_info``) and the tools built on
it. Everything runs on the TensorFlow, JAX and PyTorch backends.
"""

import keras_cnnclassics.backend_support  # noqa: F401  first: enables oneDNN before TensorFlow loads
from keras_cnnclassics.models import *  # noqa: F401,F403
from keras_cnnclassics.models import __dict__ as _models_namespace
from keras_cnnclassics.counting import count_params
from keras_cnnclassics.ensemble import ensemble
from keras_cnnclassics.export import export_model
from keras_cnnclassics.features import feature_extractor, feature_info
from keras_cnnclassics.imagenet import decode_predictions
from keras_cnnclassics.registry import get_model, list_models, model_info
from keras_cnnclassics.profiler import profile
from keras_cnnclassics.chart import complexity_chart

__version__ = "0.1.0"

__all__ = [
    "complexity_chart",
    "count_params",
    "decode_predictions",
    "ensemble",
    "export_model",
    "feature_extractor",
    "feature_info",
    "get_model",
    "list_models",
    "model_info",
    "profile",
] + sorted(
    name for name in _models_namespace if name[:1].isupper()
)
