#!/usr/bin/env python
"""Our exported files beside other exporters' of the same architecture: operator counts and latency.

    python tools/export_bench.py --models squeezenet1_1 googlenet resnet18 densenet121
    python tools/export_bench.py --litert --threads 2 --models resnet50 densenet121 vgg16 resnet18

A maintainer's tool (not part of the package). For each model, torchvision's
network (random weights, random BatchNorm statistics, eval mode) is exported with
``torch.onnx.export`` (opset 17, NCHW input, TorchScript exporter); the same
weights, converted into our Keras model, are exported with ``export_model`` on
the PyTorch backend twice: the exporter's graph as written
(``CNNCLASSICS_ONNX_LEAN=0``) and the lean graph (the default, see
:mod:`keras_cnnclassics.export.onnx_lean`). The three files run in ONNX Runtime
(CPU, batch 1, interleaved rounds; the median over rounds of the mean of each
round's runs), and our lean file also in OpenCV's DNN module when installed.
Prints a markdown table with the command, date, versions and CPU.

``--litert`` compares LiteRT files instead, on the TensorFlow backend: our
float32, float16 and int8 (uint8 input/output, calibrated on random images)
``.tflite`` files of each model (random weights), and, where keras.applications
has the architecture (ResNet-50, DenseNet-121, VGG-16, Inception v3), its own
``model.export(format="litert")`` at batch 1. The files run in the LiteRT
interpreter (``ai_edge_litert``, XNNPACK, batch 1, interleaved rounds); the
table gives operator counts, the TRANSPOSE / CAST / DEQUANTIZE operators of the
float32 files (none are needed there), where the float16 file's DEQUANTIZE
operators read float16 weights, and each file's median latency with the spread
(fastest - slowest round).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import collections  # noqa: E402
import datetime  # noqa: E402
import importlib.metadata  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
MODELS = ("squeezenet1_1", "googlenet", "resnet18", "densenet121")
VERSIONS = ("keras", "torch", "torchvision", "onnx", "onnxruntime", "onnxslim", "opencv-python-headless")
LITERT_MODELS = ("resnet50", "densenet121", "vgg16", "squeezenet1_1", "googlenet", "resnet18")
LITERT_VERSIONS = ("keras", "tensorflow-cpu", "ai-edge-litert")
# keras.applications' constructor of the same architecture, where there is one.
KERAS_APPLICATIONS = {"resnet50": "ResNet50", "densenet121": "DenseNet121", "vgg16": "VGG16",
                      "inception_v3": "InceptionV3"}
PRECISIONS = ("none", "float16", "int8")
# Operators a float32 .tflite file of these networks never needs.
REDUNDANT = ("TRANSPOSE", "CAST", "DEQUANTIZE")


def torchvision_model(name):
    """torchvision's ``name`` with random weights and BatchNorm statistics, in eval mode."""
    sys.path.insert(0, TESTS)
    from support.reference import torch_reference

    from keras_cnnclassics.registry import get_spec

    spec = get_spec(name)
    return torch_reference(spec.reference, **spec.mapping().reference_kwargs)


def export_torchvision(model, size, path):
    import torch

    torch.onnx.export(model, (torch.zeros(1, 3, size, size),), path, opset_version=17, dynamo=False,
                      input_names=["images"], output_names=["logits"])


def keras_weights(name, model, folder):
    """The torchvision model's weights converted into our model's ``.weights.h5``."""
    import torch

    from keras_cnnclassics.convert import convert_checkpoint

    checkpoint, weights = os.path.join(folder, f"{name}.pth"), os.path.join(folder, f"{name}.weights.h5")
    torch.save(model.state_dict(), checkpoint)
    convert_checkpoint(name, "torchvision", checkpoint, weights, verify=False, log=None)
    return weights


def export_ours(name, weights, size, path, lean):
    """Seconds ``export_model`` takes to write (and verify) our file."""
    from keras_cnnclassics.export import export_model
    from keras_cnnclassics.export.onnx_lean import ENVIRONMENT_SWITCH

    os.environ[ENVIRONMENT_SWITCH] = "1" if lean else "0"
    start = time.perf_counter()
    export_model(name, "onnx", path, weights=weights, input_shape=(size, size, 3), verbose=0)
    return time.perf_counter() - start


def op_counts(path):
    import onnx

    return collections.Counter(node.op_type for node in onnx.load(path).graph.node)


def session(path, threads):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def latencies_ms(paths, inputs, rounds, runs, threads):
    """Median over ``rounds`` of each file's mean ms per run; the files take turns in each round."""
    sessions = {key: session(path, threads) for key, path in paths.items()}
    for key, sess in sessions.items():
        sess.run(None, {"images": inputs[key]})  # warm-up
    times = {key: [] for key in paths}
    for _ in range(rounds):
        for key, sess in sessions.items():
            start = time.perf_counter()
            for _ in range(runs):
                sess.run(None, {"images": inputs[key]})
            times[key].append(1000 * (time.perf_counter() - start) / runs)
    return {key: statistics.median(values) for key, values in times.items()}


def softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def opencv_difference(path, x, expected):
    """max |diff| of our lean file in OpenCV's DNN module against ONNX Runtime ("-" without OpenCV)."""
    try:
        from keras_cnnclassics.export.runtimes import load_runtime

        return f"{np.max(np.abs(load_runtime(path, runtime='opencv')(x) - expected)):.1e}"
    except ImportError:
        return "-"


def measure(name, size, folder, rounds, runs, threads):
    """One table row: nodes, export seconds and latencies of the three files of ``name``."""
    reference = torchvision_model(name)
    paths = {key: os.path.join(folder, f"{name}-{key}.onnx") for key in ("theirs", "written", "lean")}
    export_torchvision(reference, size, paths["theirs"])
    weights = keras_weights(name, reference, folder)
    seconds = {key: export_ours(name, weights, size, paths[key], key == "lean") for key in ("written", "lean")}
    x = np.random.default_rng(0).normal(size=(1, size, size, 3)).astype("float32")
    inputs = {"theirs": np.ascontiguousarray(x.transpose(0, 3, 1, 2)), "written": x, "lean": x}
    ms = latencies_ms(paths, inputs, rounds, runs, threads)
    outputs = {key: session(paths[key], threads).run(None, {"images": inputs[key]})[0] for key in paths}
    counts = {key: op_counts(path) for key, path in paths.items()}
    return {
        "model": name, "counts": counts, "seconds": seconds, "ms": ms,
        "diff": float(np.max(np.abs(outputs["lean"] - softmax(outputs["theirs"])))),
        "opencv": opencv_difference(paths["lean"], x, outputs["lean"]),
    }


def top_ops(counts, n=4):
    return ", ".join(f"{op} {count}" for op, count in counts.most_common(n))


def table(rows):
    lines = [
        "| model | torchvision export: nodes | ours as written: nodes | ours lean: nodes (most frequent) "
        "| ORT ms: theirs / written / lean | speed lean vs theirs | export s: written / lean "
        "| lean vs theirs: max abs diff (probabilities) | OpenCV vs ORT: max abs diff |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        counts, ms, seconds = row["counts"], row["ms"], row["seconds"]
        lines.append(
            f"| {row['model']} | {sum(counts['theirs'].values())} | {sum(counts['written'].values())} "
            f"| {sum(counts['lean'].values())} ({top_ops(counts['lean'])}) "
            f"| {ms['theirs']:.2f} / {ms['written']:.2f} / {ms['lean']:.2f} | {ms['theirs'] / ms['lean']:.2f}x "
            f"| {seconds['written']:.1f} / {seconds['lean']:.1f} | {row['diff']:.1e} | {row['opencv']} |"
        )
    return "\n".join(lines)

# ------------------------------------------------------------------ LiteRT


def export_ours_tflite(name, size, path, quantize):
    """Our .tflite file of ``name`` (random weights, seed 0); int8 calibrated on random images."""
    from keras_cnnclassics.export import export_model

    options = {"calibration": "random", "min_agreement": 0.0} if quantize == "int8" else {}
    export_model(name, "tflite", path, input_shape=(size, size, 3), quantize=quantize, seed=0,
                 verbose=0, **options)


def export_keras_applications(name, size, path):
    """keras.applications' network (random weights) through its own ``model.export(format="litert")``, batch 1."""
    import keras
    import tensorflow as tf

    model = getattr(keras.applications, KERAS_APPLICATIONS[name])(weights=None, input_shape=(size, size, 3))
    model.export(path, format="litert", verbose=False,
                 input_signature=[tf.TensorSpec((1, size, size, 3), tf.float32)])


def interpreter(path, threads):
    """A LiteRT interpreter (default delegates: XNNPACK) on ``path`` and one random input of its type."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=path, num_threads=threads or os.cpu_count())
    runner.allocate_tensors()
    spec = runner.get_input_details()[0]
    rng = np.random.default_rng(0)
    if np.issubdtype(spec["dtype"], np.integer):
        info = np.iinfo(spec["dtype"])
        x = rng.integers(info.min, info.max, spec["shape"], endpoint=True).astype(spec["dtype"])
    else:
        x = rng.normal(size=spec["shape"]).astype(spec["dtype"])
    runner.set_tensor(spec["index"], x)
    runner.invoke()  # warm-up (XNNPACK packs the weights on the first run)
    return runner


def litert_latencies_ms(paths, rounds, runs, threads):
    """Per file: (median, fastest, slowest) over ``rounds`` of the mean ms per run; the files take turns."""
    runners = {key: interpreter(path, threads) for key, path in paths.items()}
    times = {key: [] for key in paths}
    for _ in range(rounds):
        for key, runner in runners.items():
            start = time.perf_counter()
            for _ in range(runs):
                runner.invoke()
            times[key].append(1000 * (time.perf_counter() - start) / runs)
    return {key: (statistics.median(v), min(v), max(v)) for key, v in times.items()}


def measure_litert(name, size, folder, rounds, runs, threads):
    """One LiteRT table row: operators and latencies of our three files (and keras.applications')."""
    from keras_cnnclassics.export.tflite_graph import float16_weights, float32_activations, op_counts

    paths = {q: os.path.join(folder, f"{name}-{q}.tflite") for q in PRECISIONS}
    for quantize, path in paths.items():
        export_ours_tflite(name, size, path, quantize)
    if name in KERAS_APPLICATIONS:
        paths["theirs"] = os.path.join(folder, f"{name}-keras-applications.tflite")
        export_keras_applications(name, size, paths["theirs"])
    return {
        "model": name, "counts": {key: op_counts(path) for key, path in paths.items()},
        "ms": litert_latencies_ms(paths, rounds, runs, threads),
        "float16": float16_weights(paths["float16"]),
        "int8_float32_activations": float32_activations(paths["int8"]),
        "mb": {key: os.path.getsize(path) / 1e6 for key, path in paths.items()},
    }


def ops_cell(counts):
    """``total (TRANSPOSE n, ...)`` of a float32 file: the redundant operators it holds, or none."""
    flagged = ", ".join(f"{op} {counts[op]}" for op in REDUNDANT if counts[op])
    return f"{sum(counts.values())} ({flagged or 'no ' + '/'.join(REDUNDANT)})"


def ms_cell(ms):
    median, fastest, slowest = ms
    return f"{median:.1f} ({fastest:.1f}-{slowest:.1f})"


def litert_table(rows):
    lines = [
        "| model | keras.applications float32: ops | ours float32: ops | ours float16: DEQUANTIZE of float16 "
        "weights / all, float32 weights | ms keras.applications float32 | ms ours float32 | speed ours vs "
        "keras.applications | ms ours float16 | ms ours int8 | int8 speed-up vs float32 | int8: float32 "
        "activations | MB float32 / float16 / int8 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        counts, ms, half, mb = row["counts"], row["ms"], row["float16"], row["mb"]
        theirs = "theirs" in ms
        speed = f"{ms['theirs'][0] / ms['none'][0]:.2f}x" if theirs else "-"
        lines.append(
            f"| {row['model']} | {ops_cell(counts['theirs']) if theirs else '-'} | {ops_cell(counts['none'])} "
            f"| {half['dequantize_of_float16_constants']} / {half['dequantize']}, {half['float32_constants']} "
            f"| {ms_cell(ms['theirs']) if theirs else '-'} | {ms_cell(ms['none'])} "
            f"| {speed} | {ms_cell(ms['float16'])} "
            f"| {ms_cell(ms['int8'])} | {ms['none'][0] / ms['int8'][0]:.2f}x | {row['int8_float32_activations']} "
            f"| {mb['none']:.1f} / {mb['float16']:.1f} / {mb['int8']:.1f} |"
        )
    return "\n".join(lines)


def cpu_name():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
        return f"{names[0]} ({len(names)} logical cores)" if names else platform.processor()
    except OSError:
        return platform.processor() or platform.machine()


def versions(names=VERSIONS):
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} -")
    return ", ".join(found)


def header(argv, args):
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    if args.litert:
        setup = (
            f"LiteRT interpreter (XNNPACK) with {args.threads or os.cpu_count()} thread(s), median (fastest-"
            f"slowest) of {args.rounds} interleaved rounds x {args.runs} runs; random weights; int8: uint8 "
            "input/output, calibrated on random images; speed = keras.applications file's ms / ours "
            "(above 1: ours faster); int8 speed-up = our float32 ms / our int8 ms."
        )
    else:
        setup = (
            f"ONNX Runtime CPU with {args.threads or 'all'} thread(s), median of {args.rounds} rounds x "
            f"{args.runs} runs; speed = torchvision file's ms / our lean file's ms (above 1: ours faster). "
            "Our files end in a softmax; theirs give logits (compared after a softmax)."
        )
    return "\n".join([
        f"`{shlex.join(['python', 'tools/export_bench.py', *argv])}`",
        "",
        f"{datetime.date.today().isoformat()}; {cpu_name()}; load average at start {load}; "
        f"Python {platform.python_version()}; {versions(LITERT_VERSIONS if args.litert else VERSIONS)}.",
        f"Input {args.image_size}x{args.image_size}, batch 1; {setup}",
        "",
    ])


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", help="registry names (with a torchvision reference for ONNX); "
                        f"default {' '.join(MODELS)}, with --litert {' '.join(LITERT_MODELS)}")
    parser.add_argument("--litert", action="store_true",
                        help="compare .tflite files in the LiteRT interpreter (against keras.applications')")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=10, help="runs per round")
    parser.add_argument("--threads", type=int, default=0, help="runtime threads (0: all cores)")
    return parser


def check_arguments(args):
    """One-line ``ValueError`` for a bad number or a model without a torchvision reference."""
    from keras_cnnclassics.registry import get_spec

    if min(args.image_size, args.rounds, args.runs) <= 0 or args.threads < 0:
        raise ValueError("--image-size, --rounds and --runs must be positive, --threads >= 0.")
    for name in args.models:
        spec = get_spec(name)  # ValueError with the closest names
        if not args.litert and not (spec.reference or "").startswith("torchvision:"):
            raise ValueError(f"{name} has no torchvision reference to compare with; choose e.g. {', '.join(MODELS)}.")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.models = args.models or list(LITERT_MODELS if args.litert else MODELS)
    # LiteRT files are written on TensorFlow, ONNX files on PyTorch: no worker process either way.
    os.environ["KERAS_BACKEND"] = "tensorflow" if args.litert else "torch"
    try:
        check_arguments(args)
    except ValueError as err:
        print(f"export_bench.py: error: {err}", file=sys.stderr)
        return 2
    from keras_cnnclassics.export.quiet import silenced

    print(header(argv, args), flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="export-bench-") as folder:
        for name in args.models:
            with silenced():  # the exporters' and converters' own lines
                rows.append((measure_litert if args.litert else measure)(
                    name, args.image_size, folder, args.rounds, args.runs, args.threads))
            print(f"{name}: measured", file=sys.stderr, flush=True)
    print((litert_table if args.litert else table)(rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
