"""Export to ONNX and TFLite/LiteRT (float32, float16, int8), verified before success.

:func:`export_model` takes a registry name (optionally with a weights file), a
saved ``.keras`` file or a ``keras.Model`` and writes one file:

* ``format="onnx"``: Keras' ``model.export(format="onnx")`` on the PyTorch
  backend (``torch.onnx``). ``quantize="float16"`` stores the weights as float16
  (half the file; ONNX Runtime's CPU kernels compute in float32, like LiteRT's
  float16 files on CPU), ``"dynamic-int8"`` and ``"int8"`` are ONNX Runtime's
  ``quantize_dynamic`` and ``quantize_static`` (QDQ, per-channel weights,
  calibrated on the representative images). ONNX keeps float input/output.
* ``format="tflite"``: Keras' ``model.export(format="litert")`` on the
  TensorFlow backend, i.e. the TFLite converter with builtin ops only
  (:mod:`~keras_cnnclassics.export.litert`).

Every export is a float32 build (:mod:`~keras_cnnclassics.export.model`),
written by the backend whose exporter suits the format, in this process or a
worker process (:mod:`~keras_cnnclassics.export.writers`), and verified in its
runtime against the Keras model before the file is moved into place
(:mod:`~keras_cnnclassics.export.verify`, with the representative images of
:mod:`~keras_cnnclassics.export.calibration`).

:func:`measure_file` measures an exported file's size and latency (1 thread and
all threads) for the benchmark.
"""

from keras_cnnclassics.export.calibration import calibration_images
from keras_cnnclassics.export.litert import check_builtin_ops
from keras_cnnclassics.export.measure import measure_file
from keras_cnnclassics.export.options import FORMATS, QUANTIZATIONS
from keras_cnnclassics.export.pipeline import export_model
from keras_cnnclassics.export.report import ExportError, ExportReport
from keras_cnnclassics.export.runtimes import load_runtime

__all__ = [
    "export_model",
    "ExportReport",
    "ExportError",
    "measure_file",
    "load_runtime",
    "check_builtin_ops",
    "calibration_images",
    "FORMATS",
    "QUANTIZATIONS",
]
