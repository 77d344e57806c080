"""``cnnclassics export``: a model to ONNX or TFLite/LiteRT, verified against Keras.

    cnnclassics export NAME_OR_PATH --format tflite|onnx --output FILE [--weights W]
        [--input-shape 224,224,3] [--batch-size 1|dynamic]
        [--quantize none|float16|dynamic-int8|int8 --calibration DIR|digits|random]
        [--int8-io uint8|float] [--classes N] [--preprocess NAME|none]
        [--min-agreement 0.95] [--seed N] [--force] [--json] [--verbose]

A thin wrapper over :func:`keras_cnnclassics.export.export_model`: prints the
verification table (``--verbose``: also the converters' own log lines and
warnings); bad options and failed verification are one line (plus the table) on
stderr, exit code 2, and no file written.
"""

from __future__ import annotations

def input_shape(text):
    """``"224,224,3"`` -> ``(224, 224, 3)``."""
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"--input-shape must be H,W,C with 3 positive integers, e.g. 224,224,3; got {text!r}.")
    return shape


def add_arguments(parser, fixed_format=None):
    """The exporter's options (shared by ``tools/export_onnx.py`` / ``tools/export_tflite.py``)."""
    parser.add_argument("model", metavar="NAME_OR_PATH", help="registry name (e.g. squeezenet1_1) or a .keras file")
    if fixed_format is None:
        # Checked by export_model (not argparse choices) so a wrong value gets the package's message.
        parser.add_argument("--format", required=True, help="onnx or tflite")
    else:
        parser.set_defaults(format=fixed_format)
    parser.add_argument("--output", required=True, help="file to write (.onnx / .tflite); its folder must exist")
    parser.add_argument("--weights", help="weights file for a registry name (.weights.h5/.keras/.h5)")
    parser.add_argument("--input-shape", help="H,W,C of the exported input (NHWC), e.g. 224,224,3")
    parser.add_argument("--batch-size", default="1", help="fixed batch size of the input, or 'dynamic' (default 1)")
    parser.add_argument("--quantize", default="none", help="none, float16, dynamic-int8 or int8 (default none)")
    parser.add_argument("--calibration", help="int8 representative images: a folder, 'digits' or 'random'")
    parser.add_argument("--int8-io", help="uint8 or float input/output of an int8 file "
                        "(default: uint8 for tflite, float for onnx, the only one ONNX Runtime takes)")
    parser.add_argument("--classes", type=int, help="head size of a registry model (to match --weights)")
    parser.add_argument("--preprocess", help="registry name whose preprocess_input to use, or 'none'")
    parser.add_argument("--min-agreement", type=float, default=0.95,
                        help="int8 limit: top-1 agreement with the Keras model (default 0.95)")
    parser.add_argument("--seed", type=int, help="fixes the random initial weights of a model exported without --weights")
    parser.add_argument("--force", action="store_true", help="replace an existing output file")
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    parser.add_argument("--verbose", action="store_true",
                        help="also show the converters' and runtimes' log lines and warnings")


def register(subparsers):
    parser = subparsers.add_parser("export", help="export to ONNX / TFLite (float32, float16, int8), verified")
    add_arguments(parser)
    parser.set_defaults(func=run)


def tool_main(argv, fmt, prog):
    """``tools/export_<fmt>.py``: its own ``--help`` (no ``--format``), else ``cnnclassics export``."""
    import argparse

    from keras_cnnclassics.cli import main

    if {"-h", "--help"} & set(argv):
        parser = argparse.ArgumentParser(
            prog=prog, description=f"Export a model to {fmt}, verified against Keras (= cnnclassics export "
            f"--format {fmt}); --backend tensorflow|jax|torch picks the Keras backend.")
        add_arguments(parser, fixed_format=fmt)
        parser.print_help()
        return 0
    return main(tool_argv(argv, fmt))


def tool_argv(argv, fmt):
    """``cnnclassics`` arguments for ``tools/export_<fmt>.py``: global flags first, then ``export``."""
    from keras_cnnclassics.cli import subcommand_argv

    return [*subcommand_argv("export", argv), "--format", fmt]


def run(args):
    import json
    import sys

    from keras_cnnclassics.commands import CommandError
    from keras_cnnclassics.export.quiet import silenced

    with silenced(not args.verbose):  # TensorFlow's import-time log lines ignore TF_CPP_MIN_LOG_LEVEL
        from keras_cnnclassics.export import ExportError, export_model

    try:
        report = _export(args, export_model)
    except ExportError as err:
        if err.report is not None:
            print(err.report.table(), file=sys.stderr)
        raise CommandError(str(err).splitlines()[0]) from None
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    return 0


def _export(args, export_model):
    return export_model(
        args.model,
        args.format,
        args.output,
        weights=args.weights,
        input_shape=input_shape(args.input_shape) if args.input_shape else None,
        batch_size=args.batch_size,
        quantize=args.quantize,
        calibration=args.calibration,
        int8_io=args.int8_io,
        force=args.force,
        classes=args.classes,
        preprocess=args.preprocess,
        min_agreement=args.min_agreement,
        seed=args.seed,
        verbose=_verbosity(args),
    )


def _verbosity(args):
    """export_model's ``verbose``: 0 with --json (the JSON only), 2 with --verbose, else 1."""
    if args.json:
        return 0
    return 2 if args.verbose else 1
