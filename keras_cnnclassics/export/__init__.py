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

import importlib

# Public name -> the module that defines it, imported on first use (PEP 562), so that
# ``keras_cnnclassics.export.quiet`` can be imported before Keras loads.
_PUBLIC = {
    "export_model": "pipeline",
    "ExportReport": "report",
    "ExportError": "report",
    "measure_file": "measure",
    "load_runtime": "runtimes",
    "check_builtin_ops": "verify",
    "calibration_images": "calibration",
    "FORMATS": "options",
    "QUANTIZATIONS": "options",
}

__all__ = list(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
