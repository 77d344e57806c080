"""Export options: the accepted values, and their validation before anything is built."""

from __future__ import annotations

import dataclasses
import os

from keras_cnnclassics.export.calibration import CALIBRATION_SOURCES, calibration_files
from keras_cnnclassics.weights import check_output_path

FORMATS = ("onnx", "tflite")
SUFFIXES = {"onnx": ".onnx", "tflite": ".tflite"}
QUANTIZATIONS = ("none", "float16", "dynamic-int8", "int8")
INT8_IO = ("uint8", "float")
# The input/output of an int8 file when int8_io is not given: ONNX Runtime's quantized
# models keep float input and output; a LiteRT file is uint8 in, uint8 out.
DEFAULT_INT8_IO = {"onnx": "float", "tflite": "uint8"}
INT8_MIN_AGREEMENT = 0.95
# The names of the exported files' input and output.
INPUT_NAME = "images"
OUTPUT_NAME = "predictions"


@dataclasses.dataclass(frozen=True)
class Request:
    """A validated export request (see :func:`validate`)."""

    format: str
    quantize: str
    output: str
    batch: int | None
    calibration: str | None
    int8_io: str
    force: bool
    min_agreement: float
    seed: int | None = None


def validate(format, quantize, output, batch_size, calibration, int8_io, force,
             min_agreement=INT8_MIN_AGREEMENT, seed=None) -> Request:
    """Check every export option before anything is built (ValueError stating the rule)."""
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}.")
    if quantize not in QUANTIZATIONS:
        raise ValueError(
            f"unknown quantization {quantize!r} for {format}; choose one of "
            f"{', '.join(QUANTIZATIONS)}."
        )
    int8_io = validate_int8_io(int8_io, format, quantize)
    if isinstance(min_agreement, bool) or not isinstance(min_agreement, (int, float)) or not 0 <= min_agreement <= 1:
        raise ValueError(f"min_agreement must be a fraction in [0, 1]; got {min_agreement!r}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}.")
    batch = validate_batch(batch_size)
    validate_calibration(calibration, quantize)
    output = validate_output(output, format, force)
    return Request(format, quantize, output, batch, calibration, int8_io, bool(force),
                   float(min_agreement), seed)


def validate_int8_io(int8_io, format, quantize):
    """``int8_io`` checked against the format (None: the format's default)."""
    if int8_io is None:
        return DEFAULT_INT8_IO[format]
    if int8_io not in INT8_IO:
        raise ValueError(f"int8_io must be one of {', '.join(INT8_IO)}; got {int8_io!r}.")
    if format == "onnx" and quantize == "int8" and int8_io == "uint8":
        raise ValueError(
            "quantization int8 with uint8 input/output is not supported for onnx: ONNX "
            "Runtime's quantized models keep float input and output (int8_io='float', the "
            "default); use --format tflite for a uint8-in/uint8-out file."
        )
    return int8_io


def validate_batch(batch_size):
    if batch_size == "dynamic" or batch_size is None:
        return None
    if isinstance(batch_size, str) and batch_size.isdigit():
        batch_size = int(batch_size)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer or 'dynamic'; got {batch_size!r}.")
    return batch_size


def validate_calibration(calibration, quantize):
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
    calibration_files(calibration)  # raises when the folder holds no images


def validate_output(output, format, force):
    if output is None:
        raise ValueError("an output file is required (e.g. model.onnx / model.tflite).")
    output = os.path.abspath(os.fspath(output))
    if not output.endswith(SUFFIXES[format]):
        raise ValueError(f"the output of a {format} export must end in {SUFFIXES[format]}; got {output!r}.")
    check_output_path(output, force, "pass force=True / --force to replace it")
    return output
