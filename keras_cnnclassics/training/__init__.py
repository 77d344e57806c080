"""Training as users run it: ``cnnclassics train`` and its Python API.

    from keras_cnnclassics.training import TrainConfig, train
    result = train(TrainConfig("lenet5", epochs=20, output="runs/lenet5"))

Modules: :mod:`.config` (options and their rules), :mod:`.data` (digits and image
folders, deterministic batch streams), :mod:`.augment` (Keras preprocessing
layers), :mod:`.precision` (dtype policies), :mod:`.schedules` (warm-up +
cosine/step), :mod:`.distribute` (data parallelism), :mod:`.runfolder` (atomic
artifacts, lock, resume checkpoint), :mod:`.report` (metrics and plots),
:mod:`.engine` (the training loop around ``model.fit``) and :mod:`.inference`
(evaluate and predict on a finished run).
"""

import importlib

# Public name -> its module, imported on first use (PEP 562): the command line reads
# ``config`` without loading Keras.
_EXPORTS = {"TrainConfig": "config", "TrainResult": "engine", "train": "engine",
            "evaluate": "inference", "predict": "inference", "load_trained": "inference"}

__all__ = ["TrainConfig", "TrainResult", "train", "evaluate", "predict", "load_trained"]


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
