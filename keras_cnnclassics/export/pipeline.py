"""The export pipeline: validate, build float32, write, post-process, verify, move into place."""

from __future__ import annotations

import numpy as np

from keras_cnnclassics.export.calibration import datasets, preprocess_function
from keras_cnnclassics.export.model import float32_model, load_source
from keras_cnnclassics.export.onnx_passes import float16_weights, name_output, quantize_int8
from keras_cnnclassics.export.options import INT8_MIN_AGREEMENT, validate
from keras_cnnclassics.export.quiet import silenced
from keras_cnnclassics.export.report import ExportError
from keras_cnnclassics.export.verify import verify
from keras_cnnclassics.export.writers import write
from keras_cnnclassics.weights import atomic_path


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
    int8_io=None,
    force=False,
    classes=None,
    preprocess=None,
    min_agreement=INT8_MIN_AGREEMENT,
    seed=None,
    verbose=1,
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
        int8_io: ``"uint8"`` or ``"float"`` input/output of an int8 file; default
            ``"uint8"`` for TFLite and ``"float"`` for ONNX (the only one ONNX
            Runtime's quantized models take).
        force: replace an existing ``output``.
        classes: head size for a registry name (e.g. to match ``weights``).
        preprocess: a callable, a registry name whose ``preprocess_input`` to use,
            or ``"none"``; default the model's own.
        min_agreement: the int8 limit (default 0.95). Lower it only for an
            untrained network, whose outputs barely depend on the image.
        seed: fixes the random initial weights of a registry name
            (``keras.utils.set_random_seed``); for a model without ``weights``.
        verbose: 0 prints nothing, 1 the verification table, 2 also the
            converters' and runtimes' own log lines and warnings, and why a
            worker process wrote the file.

    Returns:
        An :class:`ExportReport`. Raises ``ExportError`` (and writes nothing) when
        the file misses the limits of :mod:`keras_cnnclassics.export.verify`; ``ValueError`` /
        ``FileExistsError`` / ``FileNotFoundError`` for bad options.
    """
    request = validate(format, quantize, output, batch_size, calibration, int8_io, force,
                       min_agreement, seed)
    with silenced(verbose < 2):
        report = _export(name_or_path, request, weights, input_shape, classes, preprocess)
    if verbose:
        print(report.table(details=verbose >= 2))
    return report


def _export(name_or_path, request, weights, input_shape, classes, preprocess):
    """Build, write, verify and move the file into place; the report."""
    notes = []
    source, registry_name = load_source(name_or_path, weights, input_shape, classes, request.seed)
    model = float32_model(source, input_shape, notes)
    preprocess_fn = preprocess_function(preprocess, registry_name, notes)
    calib, images, labels, verified_on = datasets(request, tuple(model.input_shape[1:]), preprocess_fn)
    reference = _keras_outputs(model, images)
    with atomic_path(request.output, overwrite=request.force) as tmp:
        written_by = _write_file(model, request, tmp, calib)
        report = verify(tmp, request, images, reference, labels, verified_on, written_by, notes)
        if not report.passed:
            raise ExportError(
                f"the exported file does not reproduce the Keras model ({report.limit}); "
                f"nothing was written.\n{report.table()}",
                report,
            )
    return report


def _keras_outputs(model, images):
    """The Keras model's outputs on the verification images (refused when not finite)."""
    reference = np.asarray(model.predict(images, batch_size=32, verbose=0), "float32")
    if not np.isfinite(reference).all():
        raise ExportError(
            "the Keras model's own outputs are not finite (NaN/inf) on the verification images, so "
            "no file can be checked against them; an untrained very deep network (resnet1202, "
            "preact_resnet1001) overflows in inference mode: export trained weights (--weights)"
        )
    return reference


def _write_file(model, request, path, calibration):
    """The file at ``path``: written, then (ONNX) named and quantized; returns ``write``'s answer."""
    written_by = write(model, request, path, calibration)
    if request.format == "onnx":
        name_output(path)
        if request.quantize == "float16":
            float16_weights(path)
        elif request.quantize != "none":
            quantize_int8(path, request.quantize, calibration, request.batch)
    return written_by
