"""Which Keras backend writes each format, here or in a worker process.

Keras' LiteRT export refuses JAX and needs ``litert-torch`` on PyTorch; JAX's
ONNX export needs ``jax2onnx`` (whose MaxPooling2D graphs onnxruntime cannot
run); and the TensorFlow backend's ONNX path, tf2onnx, keeps dozens of copies of
the weights as Python protobufs (more than 9 GB for AlexNet). So TFLite files are
written on the TensorFlow backend and ONNX files on the PyTorch backend: in this
process when it runs that backend, otherwise in a worker process started once.
"""

from __future__ import annotations

import importlib.util

import keras

from keras_cnnclassics.export.native import write_native
from keras_cnnclassics.export.onnx_lean import lean_enabled
from keras_cnnclassics.export.worker import worker

# The Keras backend whose exporter writes each format.
WRITER_BACKEND = {"onnx": "torch", "tflite": "tensorflow"}
BACKEND_TITLE = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
# What runs after the exporter when an ONNX file is made lean (keras_cnnclassics.export.onnx_lean).
LEAN_STEP = "made lean (ONNX Runtime's offline optimisation, onnxslim)"


def torch_installed():
    """Whether torch can be imported here (ONNX files are then written on the PyTorch backend)."""
    return importlib.util.find_spec("torch") is not None


def writer_backend(fmt):
    """The backend that writes ``fmt`` here, with the reason when it is not the active one."""
    active = keras.backend.backend()
    wanted = WRITER_BACKEND[fmt]
    if fmt == "onnx" and not torch_installed():
        wanted = "tensorflow"  # tf2onnx: correct, but memory-hungry for big models
    if active == wanted:
        return wanted, None
    if fmt == "tflite":
        reason = {
            "jax": "Keras' LiteRT export refuses the JAX backend",
            "torch": "Keras' LiteRT export on the PyTorch backend goes through litert-torch"
                     + ("" if importlib.util.find_spec("litert_torch") else " (not installed)"),
        }[active]
    else:
        reason = {
            "jax": "JAX's ONNX export needs jax2onnx, whose MaxPooling2D graphs onnxruntime "
                   "cannot run",
            "tensorflow": "tf2onnx (the TensorFlow backend's ONNX path) holds dozens of copies "
                          "of the weights in memory (7.3 GB for a 37.7 M-parameter layer)",
            "torch": "torch is not installed",
        }[active]
    return wanted, reason


def write(model, request, path, calibration):
    """Write the float32 file (or the TFLite quantized one) at ``path``.

    Returns ``(written_by, why)``: the exporter and where it ran, and why a
    worker process wrote the file (None when this process did).
    """
    fmt = request.format
    native_quantize = request.quantize if fmt == "tflite" else "none"
    lean = fmt == "onnx" and lean_enabled()
    backend, reason = writer_backend(fmt)
    arguments = (fmt, path, request.batch, native_quantize, calibration, request.int8_io, lean)
    if reason is None:
        write_native(model, *arguments)
        where = "in this process"
    else:
        worker(backend).write(model, *arguments)
        where = "in a worker process (model rebuilt from its .keras file)"
    return writer_description(fmt, backend, where, lean), reason


def writer_description(fmt, backend, where, lean):
    """The report's "written by" line: the exporter, its backend, where it ran, and the lean step."""
    if fmt == "tflite":
        exporter = "model.export(format='litert')"
    else:
        exporter = "model.export(format='onnx')" + (" (tf2onnx)" if backend == "tensorflow" else "")
    return f"Keras {exporter} on the {BACKEND_TITLE[backend]} backend, {where}" + (f", then {LEAN_STEP}" if lean else "")
