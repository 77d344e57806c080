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

from keras_cnnclassics.training.config import TrainConfig
from keras_cnnclassics.training.engine import TrainResult, train
from keras_cnnclassics.training.inference import evaluate, load_trained, predict

__all__ = ["TrainConfig", "TrainResult", "train", "evaluate", "predict", "load_trained"]
