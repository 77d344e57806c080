"""Verification: the exported file, run in its runtime, against the Keras model's outputs.

The export fails, leaving no file, when

* float32: max |difference| of the outputs > 1e-4 x max(1, output range),
* float16: max |difference| > 1e-2 times the range of the Keras outputs,
* int8 / dynamic-int8: top-1 agreement with the Keras model < 95 % (``min_agreement``),
* a .tflite file needs operators outside LiteRT's builtin set (Flex / custom).

:func:`check_in_runtime` holds a file to the same limits in another runtime
(OpenCV's DNN module for ONNX files: the tests use it as a second runtime).
"""

from __future__ import annotations

import os

import numpy as np

from keras_cnnclassics.export.measure import latency_ms
from keras_cnnclassics.export.report import ExportError, ExportReport
from keras_cnnclassics.export.runtimes import load_runtime, run_batches

FLOAT32_MAX_DIFF = 1e-4
FLOAT16_MAX_RELATIVE_DIFF = 1e-2


def check_builtin_ops(path):
    """Raise ``ExportError`` when a .tflite file needs Flex (Select TF) or custom ops.

    Reads the flatbuffer's operator codes: the LiteRT interpreter on a phone runs
    builtin operators only (a mixed-precision graph, for instance, turns into
    Flex ops). Returns the sorted builtin operator names.
    """
    from keras_cnnclassics.export.tflite_graph import operator_names, read_model

    names = set(operator_names(read_model(path)))
    foreign = {name.partition(":")[2] for name in names if name.startswith("CUSTOM:")}
    builtin = names - {f"CUSTOM:{name}" for name in foreign}
    if foreign:
        raise ExportError(
            f"{path}: the file needs non-builtin operators {', '.join(sorted(foreign))} "
            "(Flex/Select TF ops are not in the LiteRT runtime of a phone). Export from a "
            "float32 model with builtin operators only."
        )
    return sorted(builtin)


def limit(quantize, min_agreement):
    """The limit a file of ``quantize`` must meet, as the report states it."""
    if quantize == "none":
        return f"max |diff| <= {FLOAT32_MAX_DIFF:g} x max(1, range)"
    if quantize == "float16":
        return f"max |diff| <= {FLOAT16_MAX_RELATIVE_DIFF:g} x range"
    return f"top-1 agreement >= {min_agreement:.0%}"


def passes(quantize, max_diff, output_range, agreement, min_agreement):
    """Whether the measured figures meet :func:`limit`."""
    if quantize == "none":
        # Probabilities: absolute. Logits of an untrained deep network can reach 1e20,
        # where float32 rounding alone is larger: relative to their range.
        return max_diff <= FLOAT32_MAX_DIFF * max(1.0, output_range)
    if quantize == "float16":
        return max_diff <= FLOAT16_MAX_RELATIVE_DIFF * output_range
    return agreement >= min_agreement


def compare(outputs, reference):
    """``(max |diff|, range of the reference, top-1 agreement)`` of a file's outputs."""
    max_diff = float(np.max(np.abs(outputs - reference)))
    output_range = float(np.max(reference) - np.min(reference))
    agreement = float(np.mean(outputs.argmax(-1) == reference.argmax(-1)))
    return max_diff, output_range, agreement


def check_in_runtime(path, runtime, x, reference, quantize="none", min_agreement=0.95):
    """``(max_diff, top1_agreement, passed)`` of ``path`` run in ``runtime`` against ``reference``.

    ``runtime`` is a :func:`~keras_cnnclassics.export.runtimes.load_runtime` name
    (``"opencv"``, ...); the limits are those of the export (:func:`limit`).
    """
    max_diff, output_range, agreement = compare(run_batches(load_runtime(path, runtime=runtime), x), reference)
    return max_diff, agreement, passes(quantize, max_diff, output_range, agreement, min_agreement)


PRECISION = {"none": "float32", "float16": "float16", "dynamic-int8": "dynamic int8"}


def _run_file(path, fmt, x):
    """The file's runtime and its outputs on ``x`` (ExportError when it does not run)."""
    if fmt == "tflite":
        check_builtin_ops(path)
    try:
        runtime = load_runtime(path)
        return runtime, run_batches(runtime, x)
    except (RuntimeError, ValueError) as err:  # the runtimes' own load/prepare errors
        runtime_name = "ONNX Runtime" if fmt == "onnx" else "the LiteRT interpreter"
        raise ExportError(f"the exported file does not run in {runtime_name}: {err}") from None


def _precision(request):
    if request.quantize != "int8":
        return PRECISION[request.quantize]
    return f"int8 ({request.int8_io} io)" if request.format == "tflite" else "int8 (QDQ)"


def verify(path, request, x, reference, labels, verified_on, written_by, notes):
    """The :class:`ExportReport` of the file at ``path`` run on ``x`` against ``reference``.

    ``labels`` (or None) score both on the verification images; ``written_by``
    is ``(writer, why)`` from :func:`keras_cnnclassics.export.writers.write`.
    """
    runtime, outputs = _run_file(path, request.format, x)
    max_diff, output_range, agreement = compare(outputs, reference)
    accuracy = None
    if labels is not None and reference.shape[-1] == 10:
        accuracy = {"keras": float(np.mean(reference.argmax(-1) == labels)),
                    "file": float(np.mean(outputs.argmax(-1) == labels))}
    return ExportReport(
        output=request.output,
        format=request.format,
        precision=_precision(request),
        size_bytes=os.path.getsize(path),
        max_abs_diff=max_diff,
        output_range=output_range,
        top1_agreement=agreement,
        latency_ms=latency_ms(runtime, x[0]),
        samples=len(x),
        verified_on=verified_on,
        limit=limit(request.quantize, request.min_agreement),
        passed=passes(request.quantize, max_diff, output_range, agreement, request.min_agreement),
        writer=written_by[0],
        writer_reason=written_by[1],
        input_shape=(request.batch or "N", *x.shape[1:]),
        input_dtype=runtime.input_dtype,
        batch=request.batch or "dynamic",
        input_quantization=runtime.input_quantization,
        accuracy=accuracy,
        notes=notes,
    )
