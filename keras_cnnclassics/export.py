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
  TensorFlow backend, i.e. the TFLite converter with builtin ops only (no Flex /
  SELECT_TF_OPS), with ``optimizations``, ``supported_types=[float16]``, or a
  representative dataset and ``TFLITE_BUILTINS_INT8`` for full-integer int8
  (input/output ``uint8`` or float, ``int8_io``).

Which backend writes the file (measured with Keras 3.15, see the README):
Keras' LiteRT export refuses JAX and needs ``litert-torch`` on PyTorch; JAX's
ONNX export needs ``jax2onnx`` (whose MaxPooling2D graphs onnxruntime cannot
run); and the TensorFlow backend's ONNX path, tf2onnx, keeps dozens of copies of
the weights as Python protobufs (7.3 GB peak for one 37.7 M-parameter Dense
layer, more than 9 GB for AlexNet). So TFLite files are written on the
TensorFlow backend and ONNX files on the PyTorch backend: in this process when
it runs that backend, otherwise in a worker process started once (the float32
model travels as a ``.keras`` file, so custom layers and weights are kept
exactly). The report says which path was taken.

Every export is a float32 build (a mixed-precision model is rebuilt in float32
and its weights copied) and is verified before the file is moved into place: the
file runs in its runtime (ONNX Runtime, the ``ai-edge-litert`` interpreter) on
the same inputs as the Keras model, and the export fails, leaving no file, when

* float32: max |difference| of the outputs > 1e-4 x max(1, output range),
* float16: max |difference| > 1e-2 times the range of the Keras outputs,
* int8 / dynamic-int8: top-1 agreement with the Keras model < 95 %.

Representative images for int8 (``calibration``): a folder of images (through the
model's own ``preprocess_input``), scikit-learn's bundled ``"digits"`` (real
handwritten digits; calibration on the training split, verification on the
held-out split) or ``"random"`` images.

:func:`measure_file` measures an exported file's size and latency (1 thread and
all threads) for the benchmark.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

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

FORMATS = ("onnx", "tflite")
SUFFIXES = {"onnx": ".onnx", "tflite": ".tflite"}
QUANTIZATIONS = ("none", "float16", "dynamic-int8", "int8")
INT8_IO = ("uint8", "float")
CALIBRATION_SOURCES = ("digits", "random")
# The Keras backend whose exporter writes each format (see the module docstring).
WRITER_BACKEND = {"onnx": "torch", "tflite": "tensorflow"}
BACKEND_TITLE = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}

FLOAT32_MAX_DIFF = 1e-4
FLOAT16_MAX_RELATIVE_DIFF = 1e-2
INT8_MIN_AGREEMENT = 0.95
CALIBRATION_IMAGES = 200
VERIFY_FLOAT_IMAGES = 8
VERIFY_INT8_IMAGES = 200
INPUT_NAME = "images"
OUTPUT_NAME = "predictions"


class ExportError(ValueError):
    """An export that failed: its verification (``report`` says by how much) or its writer."""

    def __init__(self, message, report=None):
        super().__init__(message)
        self.report = report


# --------------------------------------------------------------------------- report


@dataclasses.dataclass
class ExportReport:
    """What an export wrote and how well the file reproduces the Keras model.

    ``max_abs_diff`` is over every output value of the verification images,
    ``output_range`` the range (max - min) of the Keras outputs, ``top1_agreement``
    the fraction of images whose arg-max class is the same, ``latency_ms`` the
    mean time per image in the runtime (all threads, batch ``batch``).
    ``accuracy`` holds the Keras and file accuracies where the verification
    images have labels that match the model's classes (digits, 10 classes).
    """

    output: str
    format: str
    precision: str
    size_bytes: int
    max_abs_diff: float
    output_range: float
    top1_agreement: float
    latency_ms: float
    samples: int
    verified_on: str
    limit: str
    passed: bool
    writer: str
    input_shape: tuple
    input_dtype: str
    batch: object
    input_quantization: tuple | None = None
    accuracy: dict | None = None
    notes: list = dataclasses.field(default_factory=list)

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 1e6

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "size_mb": self.size_mb}

    def table(self) -> str:
        """The one-row verification table (plus notes) printed after an export."""
        head = ("format", "precision", "size", "max |diff|", "top-1 agreement",
                "latency/image", "limit", "result")
        row = (
            self.format,
            self.precision,
            f"{self.size_mb:.2f} MB",
            f"{self.max_abs_diff:.2e}",
            f"{100 * self.top1_agreement:.1f} %",
            f"{self.latency_ms:.2f} ms",
            self.limit,
            "ok" if self.passed else "FAILED",
        )
        widths = [max(len(h), len(c)) for h, c in zip(head, row)]
        lines = [
            "  ".join(h.ljust(w) for h, w in zip(head, widths)),
            "  ".join("-" * w for w in widths),
            "  ".join(c.ljust(w) for c, w in zip(row, widths)),
        ]
        io = f"input {INPUT_NAME} {self.input_dtype} {tuple(self.input_shape)} (NHWC)"
        if self.input_quantization:
            scale, zero = self.input_quantization
            io += f", quantized q = x / {scale:.6g} + {zero}"
        lines.append(f"{io}; verified on {self.samples} {self.verified_on} images")
        if self.accuracy:
            lines.append(
                "accuracy on their labels: keras {keras:.1%}, file {file:.1%}".format(**self.accuracy)
            )
        lines.append(f"written by: {self.writer}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


# ------------------------------------------------------------------ validation


@dataclasses.dataclass(frozen=True)
class _Request:
    format: str
    quantize: str
    output: str
    batch: int | None
    calibration: str | None
    int8_io: str
    force: bool
    min_agreement: float


def _validate(format, quantize, output, batch_size, calibration, int8_io, force,
              min_agreement=INT8_MIN_AGREEMENT) -> _Request:
    """Check every export option before anything is built (ValueError stating the rule)."""
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}.")
    if quantize not in QUANTIZATIONS:
        raise ValueError(
            f"unknown quantization {quantize!r} for {format}; choose one of "
            f"{', '.join(QUANTIZATIONS)}."
        )
    if int8_io not in INT8_IO:
        raise ValueError(f"int8_io must be one of {', '.join(INT8_IO)}; got {int8_io!r}.")
    if format == "onnx" and quantize == "int8" and int8_io == "uint8":
        raise ValueError(
            "quantization int8 with uint8 input/output is not supported for onnx: ONNX "
            "Runtime's quantized models keep float input and output (int8_io='float'); "
            "use --format tflite for a uint8-in/uint8-out file."
        )
    if isinstance(min_agreement, bool) or not isinstance(min_agreement, (int, float)) or not 0 <= min_agreement <= 1:
        raise ValueError(f"min_agreement must be a fraction in [0, 1]; got {min_agreement!r}.")
    batch = _validate_batch(batch_size)
    _validate_calibration(calibration, quantize)
    output = _validate_output(output, format, force)
    return _Request(format, quantize, output, batch, calibration, int8_io, bool(force),
                    float(min_agreement))


def _validate_batch(batch_size):
    if batch_size == "dynamic" or batch_size is None:
        return None
    if isinstance(batch_size, str) and batch_size.isdigit():
        batch_size = int(batch_size)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer or 'dynamic'; got {batch_size!r}.")
    return batch_size


def _validate_calibration(calibration, quantize):
    if quantize == "int8" and calibration is None:
        raise ValueError(
            "quantization int8 needs representative images: calibration=DIR (a folder of "
            "images), 'digits' (scikit-learn's handwritten digits) or 'random'."
        )
    if calibration is None:
        return
    if quantize not in ("int8", "dynamic-int8"):
        raise ValueError(
            f"calibration is only used by the int8 quantizations; got quantize={quantize!r}."
        )
    if calibration in CALIBRATION_SOURCES:
        return
    if not os.path.isdir(os.fspath(calibration)):
        raise ValueError(
            f"calibration must be a folder of images, 'digits' or 'random'; "
            f"{os.fspath(calibration)!r} is not a folder."
        )
    _image_files(calibration)  # raises when the folder holds no images


def _validate_output(output, format, force):
    if output is None:
        raise ValueError("an output file is required (e.g. model.onnx / model.tflite).")
    output = os.path.abspath(os.fspath(output))
    if not output.endswith(SUFFIXES[format]):
        raise ValueError(f"the output of a {format} export must end in {SUFFIXES[format]}; got {output!r}.")
    folder = os.path.dirname(output)
    if not os.path.isdir(folder):
        what = "is a file, not a folder" if os.path.exists(folder) else "does not exist; create it first"
        raise FileNotFoundError(f"output folder {folder!r} {what}.")
    if os.path.exists(output) and not force:
        raise FileExistsError(f"{output!r} already exists; pass force=True / --force to replace it.")
    return output


# ------------------------------------------------------------- float32 Keras model


def _keras():
    import keras

    return keras


@contextlib.contextmanager
def _float32_channels_last():
    """Build under the float32 policy and NHWC (the exported files' layout)."""
    keras = _keras()
    policy, layout = keras.config.dtype_policy(), keras.config.image_data_format()
    keras.config.set_dtype_policy("float32")
    keras.config.set_image_data_format("channels_last")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(policy)
        keras.config.set_image_data_format(layout)


def _load_source(name_or_path, weights, input_shape, classes):
    """The Keras model to export and its registry name (or None)."""
    keras = _keras()
    from keras_cnnclassics import registry

    if isinstance(name_or_path, keras.Model):
        if weights is not None or classes is not None:
            raise ValueError("weights/classes apply to registry names, not to a keras.Model.")
        return name_or_path, _registry_name(name_or_path.name)
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise ValueError(
            "the model to export must be a registry name, the path of a .keras file or a "
            f"keras.Model; got {type(name_or_path).__name__}."
        )
    path = os.fspath(name_or_path)
    if path.endswith(".keras"):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"model file {path!r} does not exist.")
        if weights is not None or classes is not None:
            raise ValueError("weights/classes apply to registry names; a .keras file has its own.")
        from keras_cnnclassics.weights import load_model_file

        with _float32_channels_last():
            model = load_model_file(path)
        return model, _registry_name(model.name)
    spec = registry.get_spec(path)  # ValueError with the closest names
    kwargs = {"weights": weights, "input_shape": input_shape}
    if classes is not None:
        kwargs["classes"] = classes
    with _float32_channels_last():
        return registry.get_model(spec.name, **kwargs), spec.name


def _registry_name(name):
    from keras_cnnclassics import registry

    return name if name in registry.list_models() else None


def _is_float32(model):
    return all(
        getattr(layer, "dtype_policy", None) is None or layer.dtype_policy.name == "float32"
        for layer in model.layers
    )


def _clone(model, replace=None, input_shape=None):
    """``model`` rebuilt layer by layer (``replace(layer) -> new layer or None``), weights copied.

    Used to turn a mixed-precision model into float32, to give it a new input
    shape, and to swap grouped ``Conv2D`` for ``GroupedConv2D`` on TensorFlow.
    """
    keras = _keras()

    def clone_layer(layer):
        new = replace(layer) if replace else None
        return new if new is not None else layer.__class__.from_config(layer.get_config())

    inputs = keras.Input(shape=input_shape, name=model.inputs[0].name) if input_shape else None
    with _float32_channels_last():
        clone = keras.models.clone_model(model, input_tensors=inputs, clone_function=clone_layer)
    targets = {layer.name: layer for layer in clone.layers}
    for layer in model.layers:
        if layer.weights:
            target = targets[layer.name]
            target.set_weights([np.asarray(w, dtype=v.dtype) for w, v in zip(layer.get_weights(), target.weights)])
    return clone


def _float32_layer(layer):
    if getattr(layer, "dtype_policy", None) is None or layer.dtype_policy.name == "float32":
        return None
    return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})


def _float32_model(model, input_shape, notes):
    """A float32, statically shaped copy of ``model`` where needed (else ``model``)."""
    current = tuple(model.input_shape[1:])
    if len(model.inputs) != 1 or len(model.outputs) != 1 or len(current) != 3:
        raise ValueError("export supports image models with one (H, W, C) input and one output.")
    if any(getattr(layer, "data_format", None) == "channels_first" for layer in model.layers):
        raise ValueError(
            "export writes NHWC files: rebuild the model with channels_last (its weights load "
            "unchanged) and export that."
        )
    shape = tuple(input_shape) if input_shape else current
    if len(shape) != 3 or any(s is not None and (not isinstance(s, int) or s < 1) for s in shape):
        raise ValueError(f"input_shape must be 3 positive integers (H, W, C); got {input_shape!r}.")
    if None in shape:
        raise ValueError(
            f"the model's input {current} has no fixed size; pass input_shape/--input-shape "
            "H,W,C (the exported file gets a static NHWC input)."
        )
    if any(c is not None and c != s for c, s in zip(current, shape)) and input_shape:
        raise ValueError(f"input_shape {shape} does not fit the model's input {current}.")
    mixed = not _is_float32(model)
    if mixed:
        notes.append(f"rebuilt in float32 from the {model.dtype_policy.name} model (weights copied)")
    if mixed or shape != current:
        return _clone(model, _float32_layer, shape if shape != current else None)
    return model


# ------------------------------------------------------------------------ images


def _image_files(folder):
    from keras_cnnclassics.training.data import IMAGE_SUFFIXES

    files = sorted(
        os.path.join(root, f)
        for root, _, names in os.walk(os.fspath(folder))
        for f in names
        if f.lower().endswith(IMAGE_SUFFIXES) and not f.startswith(".")
    )
    if not files:
        raise ValueError(
            f"calibration folder {os.fspath(folder)!r} holds no images "
            f"({', '.join(IMAGE_SUFFIXES)})."
        )
    return files


def _folder_images(folder, shape, count):
    from keras_cnnclassics.training.data import load_image_file

    height, width, channels = shape
    if height != width:
        raise ValueError(f"calibration from a folder needs a square input; got {shape}.")
    files = _image_files(folder)[:count]
    images, bad = [], []
    for path in files:
        try:
            images.append(load_image_file(path, height, channels))
        except ValueError:
            bad.append(os.path.relpath(path, os.fspath(folder)))
    if bad:
        raise ValueError(
            f"calibration folder {os.fspath(folder)!r}: {len(bad)} unreadable image file(s): "
            f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}. Remove or fix them."
        )
    return np.stack(images).astype("float32")


def calibration_images(source, shape, count=CALIBRATION_IMAGES, seed=0):
    """Raw images in [0, 255], NHWC float32, for calibration and verification.

    Returns ``(calibration, verification, verification_labels_or_None)``:
    ``"digits"`` gives the training split and the held-out split with labels,
    a folder gives its images for both, ``"random"`` two independent draws.
    """
    height, width, channels = shape
    if source == "digits":
        from keras_cnnclassics.training.data import load_digits_data

        if height != width:
            raise ValueError(f"digits calibration needs a square input; got {shape}.")
        data = load_digits_data(height, channels, seed=seed)
        return (data.x_train[:count].astype("float32"), data.x_val[:count].astype("float32"),
                data.y_val[:count])
    if source == "random":
        rng = np.random.default_rng(seed)
        draw = lambda: rng.uniform(0, 255, (count, height, width, channels)).astype("float32")  # noqa: E731
        return draw(), draw(), None
    images = _folder_images(source, shape, count)
    return images, images, None


def _preprocess_function(preprocess, registry_name, notes):
    """The model's own ``preprocess_input`` (its family module's), or what was asked."""
    if callable(preprocess):
        return preprocess
    from keras_cnnclassics import registry

    name = preprocess or registry_name
    if name == "none":
        return lambda x: np.asarray(x, "float32")
    if name is None:
        notes.append("not a registry model: images are fed unscaled in [0, 255] (pass preprocess=)")
        return lambda x: np.asarray(x, "float32")
    family = registry.get_spec(name).family
    return importlib.import_module(f"keras_cnnclassics.models.{family}").preprocess_input


def _datasets(request, shape, preprocess):
    """Preprocessed calibration images (or None), verification images, labels, their source."""
    if request.quantize in ("int8", "dynamic-int8"):
        source = request.calibration or "random"
        calib, verify, labels = calibration_images(source, shape, CALIBRATION_IMAGES)
        verify = verify[:VERIFY_INT8_IMAGES]
        described = "held-out digits" if source == "digits" else (
            "random" if source == "random" else "calibration-folder")
        calib = np.asarray(preprocess(calib), "float32") if request.quantize == "int8" else None
        return calib, np.asarray(preprocess(verify), "float32"), labels, described
    _, verify, _ = calibration_images("random", shape, VERIFY_FLOAT_IMAGES)
    return None, np.asarray(preprocess(verify), "float32"), None, "random"


# ----------------------------------------------------------------------- writers


def _converter_options(quantize, calibration, int8_io, batch):
    """TFLite converter attributes for ``model.export(format="litert", **options)``."""
    import tensorflow as tf

    builtins = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "none":
        return {"target_spec": {"supported_ops": builtins}}
    options = {"optimizations": [tf.lite.Optimize.DEFAULT]}
    if quantize == "float16":
        options["target_spec"] = {"supported_ops": builtins, "supported_types": [tf.float16]}
    elif quantize == "dynamic-int8":
        options["target_spec"] = {"supported_ops": builtins}
    else:
        step = batch or 1

        def representative_dataset():
            for start in range(0, len(calibration) - step + 1, step):
                yield [calibration[start : start + step]]

        io_type = tf.uint8 if int8_io == "uint8" else tf.float32
        options.update(
            target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]},
            representative_dataset=representative_dataset,
            inference_input_type=io_type,
            inference_output_type=io_type,
        )
    return options


def _grouped_conv_layer(layer):
    """TensorFlow runs grouped ``Conv2D`` through XLA, which neither TFLite nor tf2onnx take."""
    keras = _keras()
    from keras_cnnclassics.layers import GroupedConv2D

    if isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, GroupedConv2D) and layer.groups > 1:
        return GroupedConv2D.from_config(layer.get_config())
    return None


def _write_native(model, fmt, path, batch, quantize="none", calibration=None, int8_io="float"):
    """Write ``path`` with Keras' exporter of the running backend (see WRITER_BACKEND)."""
    keras = _keras()
    shape = (batch, *model.input_shape[1:])
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if any(_grouped_conv_layer(layer) for layer in model.layers):
            model = _clone(model, _grouped_conv_layer)
        signature = [tf.TensorSpec(shape, tf.float32, name=INPUT_NAME)]
    else:
        signature = [keras.InputSpec(shape=shape, dtype="float32", name=INPUT_NAME)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "tflite":
            options = _converter_options(quantize, calibration, int8_io, batch)
            model.export(path, format="litert", input_signature=signature, verbose=False, **options)
        else:
            model.export(path, format="onnx", input_signature=signature, verbose=False)


def _writer_backend(fmt):
    """The backend that writes ``fmt`` here, with the reason when it is not the active one."""
    keras = _keras()
    active = keras.backend.backend()
    wanted = WRITER_BACKEND[fmt]
    if fmt == "onnx" and importlib.util.find_spec("torch") is None:
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


def _write(model, request, path, calibration):
    """Write the float32 file (or the TFLite quantized one) at ``path``; returns 'written by'."""
    fmt = request.format
    native_quantize = request.quantize if fmt == "tflite" else "none"
    backend, reason = _writer_backend(fmt)
    exporter = "model.export(format='litert')" if fmt == "tflite" else "model.export(format='onnx')"
    if reason is None:
        _write_native(model, fmt, path, request.batch, native_quantize, calibration, request.int8_io)
        return f"Keras {exporter} on the {BACKEND_TITLE[backend]} backend, in this process"
    _worker(backend).write(model, fmt, path, request.batch, native_quantize, calibration, request.int8_io)
    return (
        f"Keras {exporter} on the {BACKEND_TITLE[backend]} backend in a worker process "
        f"(model rebuilt from its .keras file): {reason}"
    )


# --------------------------------------------------------------- ONNX post-passes


def _onnx_finish(path):
    """Name the graph output ``predictions`` (torch.onnx numbers it)."""
    import onnx

    model = onnx.load(path)
    graph = model.graph
    old = graph.output[0].name
    if old != OUTPUT_NAME:
        for node in graph.node:
            node.output[:] = [OUTPUT_NAME if o == old else o for o in node.output]
            node.input[:] = [OUTPUT_NAME if i == old else i for i in node.input]
        graph.output[0].name = OUTPUT_NAME
        onnx.save(model, path)


def _onnx_float16_weights(path):
    """Store float32 initializers as float16, each followed by a Cast back to float32.

    The file halves; ONNX Runtime folds the casts when the session starts and
    computes in float32 (its CPU kernels have no float16 convolutions), which is
    what LiteRT does with a float16-quantized file on CPU.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(path)
    graph = model.graph
    casts, keep = [], []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            keep.append(init)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), f"{init.name}_fp16")
        keep.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT,
                                      name=f"{init.name}_cast"))
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, path)


def _onnx_quantize(path, quantize, calibration, batch):
    """ONNX Runtime's dynamic or static (QDQ, per-channel) int8 quantization, in place."""
    from onnxruntime import quantization as q

    with tempfile.TemporaryDirectory() as tmp:
        prepared = os.path.join(tmp, "prepared.onnx")
        with _quiet_logging():
            q.quant_pre_process(path, prepared, skip_symbolic_shape=True)
            if quantize == "dynamic-int8":
                q.quantize_dynamic(prepared, path, weight_type=q.QuantType.QInt8)
                return
            step = batch or 1
            feeds = iter(
                {INPUT_NAME: calibration[start : start + step]}
                for start in range(0, len(calibration) - step + 1, step)
            )

            class Reader(q.CalibrationDataReader):
                def get_next(self):
                    return next(feeds, None)

            q.quantize_static(
                prepared, path, Reader(), quant_format=q.QuantFormat.QDQ, per_channel=True,
                activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                nodes_to_exclude=_final_softmax(prepared),
            )


def _final_softmax(path):
    """The output Softmax node, kept in float: 8-bit probabilities of many classes tie."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    return [n.name for n in graph.node if OUTPUT_NAME in n.output and n.op_type == "Softmax"]


@contextlib.contextmanager
def _quiet_logging():
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


# ---------------------------------------------------------------------- runtimes


def check_builtin_ops(path):
    """Raise ``ExportError`` when a .tflite file needs Flex (Select TF) or custom ops.

    Reads the flatbuffer's operator codes: the LiteRT interpreter on a phone runs
    builtin operators only (a mixed-precision graph, for instance, turns into
    Flex ops). Returns the sorted builtin operator names.
    """
    from ai_edge_litert import schema_py_generated as schema

    with open(path, "rb") as f:
        model = schema.ModelT.InitFromPackedBuf(f.read(), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    builtin, foreign = set(), set()
    for code in model.operatorCodes or []:
        op = max(code.builtinCode, code.deprecatedBuiltinCode)
        if op == schema.BuiltinOperator.CUSTOM:
            custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
            foreign.add(custom)
        else:
            builtin.add(names.get(op, str(op)))
    if foreign:
        raise ExportError(
            f"{path}: the file needs non-builtin operators {', '.join(sorted(foreign))} "
            "(Flex/Select TF ops are not in the LiteRT runtime of a phone). Export from a "
            "float32 model with builtin operators only."
        )
    return sorted(builtin)


class _OnnxRuntime:
    def __init__(self, path, threads=None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        spec = self.session.get_inputs()[0]
        self.name = spec.name
        self.batch = spec.shape[0] if isinstance(spec.shape[0], int) else None
        self.input_dtype = "float32"
        self.input_quantization = None

    def __call__(self, x):
        return self.session.run(None, {self.name: x})[0].astype("float32")


class _LiteRTRuntime:
    def __init__(self, path, threads=None):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=path, num_threads=threads or os.cpu_count())
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        dynamic = self.input["shape_signature"][0] == -1
        self.batch = None if dynamic else int(self.input["shape"][0])
        self.input_dtype = np.dtype(self.input["dtype"]).name
        scale, zero = self.input["quantization"]
        self.input_quantization = (float(scale), int(zero)) if self.input_dtype != "float32" else None

    def __call__(self, x):
        interp = self.interpreter
        if x.shape[0] != self.input["shape"][0]:
            interp.resize_tensor_input(self.input["index"], list(x.shape))
            interp.allocate_tensors()
            self.input = interp.get_input_details()[0]
            self.output = interp.get_output_details()[0]
        if self.input_quantization:
            scale, zero = self.input_quantization
            info = np.iinfo(self.input["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(self.input["dtype"])
        interp.set_tensor(self.input["index"], x)
        interp.invoke()
        y = interp.get_tensor(self.output["index"])
        if np.dtype(self.output["dtype"]) != np.float32:
            scale, zero = self.output["quantization"]
            y = (y.astype("float32") - zero) * scale
        return y.astype("float32")


def load_runtime(path, threads=None):
    """A callable ``runtime(x_nhwc_float32) -> outputs`` for an .onnx or .tflite file.

    Runs in ONNX Runtime (CPU) or the ``ai-edge-litert`` interpreter with
    ``threads`` threads (None: the runtime's default, all cores); quantized
    uint8 inputs/outputs are (de)quantized with the file's scale and zero point.
    ``runtime.batch`` is the file's fixed batch size (None when dynamic).
    """
    path = os.fspath(path)
    if path.endswith(".onnx"):
        return _OnnxRuntime(path, threads)
    if path.endswith(".tflite"):
        return _LiteRTRuntime(path, threads)
    raise ValueError(f"{path!r}: expected an .onnx or .tflite file.")


def _run(runtime, x):
    """Outputs of ``runtime`` on every image of ``x`` (fixed batches padded, then cut)."""
    step = runtime.batch or 1
    outputs = []
    for start in range(0, len(x), step):
        chunk = x[start : start + step]
        if len(chunk) < step:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], step - len(chunk), 0)])
        outputs.append(runtime(chunk))
    return np.concatenate(outputs)[: len(x)]


def _latency_ms(runtime, image, budget_s=1.0, max_runs=50):
    """Mean milliseconds per image over timed runs (after one warm-up run)."""
    batch = np.repeat(image[None], runtime.batch or 1, axis=0)
    runtime(batch)
    runs, start = 0, time.perf_counter()
    while runs < 3 or (runs < max_runs and time.perf_counter() - start < budget_s):
        runtime(batch)
        runs += 1
    return 1000 * (time.perf_counter() - start) / (runs * len(batch))


def measure_file(path, threads=(1, None), image=None, budget_s=2.0, max_runs=100):
    """Size and CPU latency of an exported file, for the benchmark.

    Returns ``{"path", "format", "size_bytes", "size_mb", "latency_ms": {"1": ms,
    "all": ms}}``: the mean time per image (batch = the file's batch, 1 when
    dynamic) with one thread and with all threads (``threads`` entries: an int or
    None for all). ``image`` is one NHWC float32 input (random if None).
    """
    path = os.fspath(path)
    latency = {}
    for count in threads:
        runtime = load_runtime(path, count)
        if image is None:
            shape = runtime.session.get_inputs()[0].shape[1:] if path.endswith(".onnx") else runtime.input["shape"][1:]
            image = np.random.default_rng(0).normal(size=tuple(int(s) for s in shape)).astype("float32")
        latency["all" if count is None else str(count)] = _latency_ms(runtime, image, budget_s, max_runs)
    size = os.path.getsize(path)
    return {"path": path, "format": "onnx" if path.endswith(".onnx") else "tflite",
            "size_bytes": size, "size_mb": size / 1e6, "latency_ms": latency}


# ------------------------------------------------------------------ verification


def _limit(quantize, min_agreement):
    if quantize == "none":
        return f"max |diff| <= {FLOAT32_MAX_DIFF:g} x max(1, range)"
    if quantize == "float16":
        return f"max |diff| <= {FLOAT16_MAX_RELATIVE_DIFF:g} x range"
    return f"top-1 agreement >= {min_agreement:.0%}"


def _passes(quantize, max_diff, output_range, agreement, min_agreement):
    if quantize == "none":
        # Probabilities: absolute. Logits of an untrained deep network can reach 1e20,
        # where float32 rounding alone is larger: relative to their range.
        return max_diff <= FLOAT32_MAX_DIFF * max(1.0, output_range)
    if quantize == "float16":
        return max_diff <= FLOAT16_MAX_RELATIVE_DIFF * output_range
    return agreement >= min_agreement


def _verify(path, request, x, reference, labels, verified_on, writer, notes):
    if request.format == "tflite":
        check_builtin_ops(path)
    try:
        runtime = load_runtime(path)
        outputs = _run(runtime, x)
    except (RuntimeError, ValueError) as err:  # the runtimes' own load/prepare errors
        runtime_name = "ONNX Runtime" if request.format == "onnx" else "the LiteRT interpreter"
        raise ExportError(f"the exported file does not run in {runtime_name}: {err}") from None
    max_diff = float(np.max(np.abs(outputs - reference)))
    output_range = float(np.max(reference) - np.min(reference))
    agreement = float(np.mean(outputs.argmax(-1) == reference.argmax(-1)))
    accuracy = None
    if labels is not None and reference.shape[-1] == 10:
        accuracy = {"keras": float(np.mean(reference.argmax(-1) == labels)),
                    "file": float(np.mean(outputs.argmax(-1) == labels))}
    precision = {"none": "float32", "float16": "float16", "dynamic-int8": "dynamic int8",
                 "int8": f"int8 ({request.int8_io} io)" if request.format == "tflite" else "int8 (QDQ)"}
    return ExportReport(
        output=request.output,
        format=request.format,
        precision=precision[request.quantize],
        size_bytes=os.path.getsize(path),
        max_abs_diff=max_diff,
        output_range=output_range,
        top1_agreement=agreement,
        latency_ms=_latency_ms(runtime, x[0]),
        samples=len(x),
        verified_on=verified_on,
        limit=_limit(request.quantize, request.min_agreement),
        passed=_passes(request.quantize, max_diff, output_range, agreement, request.min_agreement),
        writer=writer,
        input_shape=(request.batch or "N", *x.shape[1:]),
        input_dtype=runtime.input_dtype,
        batch=request.batch or "dynamic",
        input_quantization=runtime.input_quantization,
        accuracy=accuracy,
        notes=notes,
    )


# ------------------------------------------------------------------------ export


def export_model(
    name_or_path,
    format="onnx",
    output=None,
    *,
    weights=None,
    input_shape=None,
    batch_size=1,
    quantize="none",
    calibration=None,
    int8_io="uint8",
    force=False,
    classes=None,
    preprocess=None,
    min_agreement=INT8_MIN_AGREEMENT,
    verbose=True,
):
    """Export a model to ONNX or TFLite, verify the file, and report.

    Args:
        name_or_path: a registry name (``"squeezenet1_1"``), a ``.keras`` file or
            a ``keras.Model``.
        format: ``"onnx"`` or ``"tflite"``.
        output: the file to write (``.onnx`` / ``.tflite``) in an existing folder.
        weights: a weights file for a registry name (see ``cnnclassics convert``).
        input_shape: ``(H, W, C)``; default the model's (registry default 224x224x3).
        batch_size: fixed batch of the file's input, or ``"dynamic"``.
        quantize: ``"none"`` (float32), ``"float16"``, ``"dynamic-int8"`` (int8
            weights) or ``"int8"`` (full integer, calibrated).
        calibration: representative images for ``"int8"`` (required) and the
            verification images of both int8 modes: a folder, ``"digits"`` or
            ``"random"``.
        int8_io: ``"uint8"`` or ``"float"`` input/output of a TFLite int8 file.
        force: replace an existing ``output``.
        classes: head size for a registry name (e.g. to match ``weights``).
        preprocess: a callable, a registry name whose ``preprocess_input`` to use,
            or ``"none"``; default the model's own (its family module's).
        min_agreement: the int8 limit (default 0.95). Lower it only for an
            untrained network, whose outputs barely depend on the image.
        verbose: print the verification table.

    Returns:
        An :class:`ExportReport`. Raises ``ExportError`` (and writes nothing) when
        the file misses the limits in the module docstring; ``ValueError`` /
        ``FileExistsError`` / ``FileNotFoundError`` for bad options.
    """
    request = _validate(format, quantize, output, batch_size, calibration, int8_io, force, min_agreement)
    from keras_cnnclassics.weights import atomic_path

    notes = []
    source, registry_name = _load_source(name_or_path, weights, input_shape, classes)
    model = _float32_model(source, input_shape, notes)
    preprocess_fn = _preprocess_function(preprocess, registry_name, notes)
    shape = tuple(model.input_shape[1:])
    calib, verify, labels, verified_on = _datasets(request, shape, preprocess_fn)
    reference = np.asarray(model.predict(verify, batch_size=32, verbose=0), "float32")
    if not np.isfinite(reference).all():
        raise ExportError(
            "the Keras model's own outputs are not finite (NaN/inf) on the verification images, so "
            "no file can be checked against them; an untrained very deep network (resnet1202, "
            "preact_resnet1001) overflows in inference mode: export trained weights (--weights)"
        )
    with atomic_path(request.output, overwrite=request.force) as tmp:
        writer = _write(model, request, tmp, calib)
        if request.format == "onnx":
            _onnx_finish(tmp)
            if request.quantize == "float16":
                _onnx_float16_weights(tmp)
            elif request.quantize != "none":
                _onnx_quantize(tmp, request.quantize, calib, request.batch)
        report = _verify(tmp, request, verify, reference, labels, verified_on, writer, notes)
        if not report.passed:
            raise ExportError(
                f"the exported file does not reproduce the Keras model ({report.limit}); "
                f"nothing was written.\n{report.table()}",
                report,
            )
    if verbose:
        print(report.table())
    return report


# ------------------------------------------------------------------ worker process


class _Worker:
    """A long-lived Python process on another Keras backend that writes export files.

    Started on first use and reused (one per backend), so the cost of importing
    the other backend is paid once per session. Requests and replies are JSON
    lines on two private pipes; the worker's own output goes to a log file whose
    tail is shown when it fails.
    """

    def __init__(self, backend):
        self.backend = backend
        to_child, self._child_in = os.pipe()
        self._child_out, from_child = os.pipe()
        self.log = tempfile.TemporaryFile(mode="w+")
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
               "CNNCLASSICS_EXPORT_PIPES": f"{to_child},{from_child}"}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from keras_cnnclassics.export import _worker_main; _worker_main()"],
            pass_fds=(to_child, from_child), stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=subprocess.STDOUT, env=env,
        )
        os.close(to_child)
        os.close(from_child)
        self.send = os.fdopen(self._child_in, "w")
        self.receive = os.fdopen(self._child_out, "r")

    def alive(self):
        return self.proc.poll() is None

    def write(self, model, fmt, path, batch, quantize, calibration, int8_io):
        with tempfile.TemporaryDirectory(prefix="cnnclassics-export-") as tmp:
            model_path = os.path.join(tmp, "model.keras")
            model.save(model_path)
            calib_path = None
            if calibration is not None:
                calib_path = os.path.join(tmp, "calibration.npy")
                np.save(calib_path, calibration)
            job = {"model": model_path, "format": fmt, "path": path, "batch": batch,
                   "quantize": quantize, "calibration": calib_path, "int8_io": int8_io}
            try:
                self.send.write(json.dumps(job) + "\n")
                self.send.flush()
                reply = self.receive.readline()
            except BrokenPipeError:
                reply = ""
        if not reply:
            self.close()
            raise ExportError(f"the {self.backend} export worker died:\n{self._log_tail()}")
        reply = json.loads(reply)
        if not reply["ok"]:
            raise ExportError(f"{fmt} export on the {self.backend} backend failed: {reply['error']}")

    def _log_tail(self, lines=15):
        self.log.seek(0)
        return "".join(self.log.readlines()[-lines:])

    def close(self):
        with contextlib.suppress(OSError):
            self.send.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


_WORKERS: dict = {}


def _worker(backend):
    worker = _WORKERS.get(backend)
    if worker is None or not worker.alive():
        worker = _WORKERS[backend] = _Worker(backend)
    return worker


@atexit.register
def _close_workers():
    for worker in list(_WORKERS.values()):
        worker.close()
    _WORKERS.clear()


def _worker_main():
    """The worker's loop: load the .keras model, write the file, reply; until EOF."""
    import gc
    import traceback

    import keras

    import keras_cnnclassics.layers  # noqa: F401  (registers the custom layers)

    receive_fd, send_fd = (int(fd) for fd in os.environ["CNNCLASSICS_EXPORT_PIPES"].split(","))
    with os.fdopen(receive_fd, "r") as receive, os.fdopen(send_fd, "w") as send:
        for line in receive:
            job = json.loads(line)
            try:
                model = keras.saving.load_model(job["model"], compile=False)
                calibration = np.load(job["calibration"]) if job["calibration"] else None
                _write_native(model, job["format"], job["path"], job["batch"], job["quantize"],
                              calibration, job["int8_io"])
                reply = {"ok": True}
            except Exception as err:  # reported to the parent, which raises
                traceback.print_exc()
                reply = {"ok": False, "error": f"{type(err).__name__}: {err}"}
            send.write(json.dumps(reply) + "\n")
            send.flush()
            keras.utils.clear_session()
            gc.collect()
