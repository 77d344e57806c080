#!/usr/bin/env python
"""Our ONNX files beside torchvision's own ``torch.onnx.export``: node counts and ONNX Runtime latency.

    python tools/export_bench.py --models squeezenet1_1 googlenet resnet18 densenet121

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
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "torch"  # ONNX files are written on PyTorch: no worker process
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


def cpu_name():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
        return f"{names[0]} ({len(names)} logical cores)" if names else platform.processor()
    except OSError:
        return platform.processor() or platform.machine()


def versions():
    found = []
    for name in VERSIONS:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} -")
    return ", ".join(found)


def header(argv, args):
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    return "\n".join([
        f"`{shlex.join(['python', 'tools/export_bench.py', *argv])}`",
        "",
        f"{datetime.date.today().isoformat()}; {cpu_name()}; load average at start {load}; "
        f"Python {platform.python_version()}; {versions()}.",
        f"Input {args.image_size}x{args.image_size}, batch 1; ONNX Runtime CPU with "
        f"{args.threads or 'all'} thread(s), median of {args.rounds} rounds x {args.runs} runs; speed "
        "= torchvision file's ms / our lean file's ms (above 1: ours faster). Our files end in a "
        "softmax; theirs give logits (compared after a softmax).",
        "",
    ])


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="registry names with a torchvision reference")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=10, help="runs per round")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: all cores)")
    return parser


def check_arguments(args):
    """One-line ``ValueError`` for a bad number or a model without a torchvision reference."""
    from keras_cnnclassics.registry import get_spec

    if min(args.image_size, args.rounds, args.runs) <= 0 or args.threads < 0:
        raise ValueError("--image-size, --rounds and --runs must be positive, --threads >= 0.")
    for name in args.models:
        if not (get_spec(name).reference or "").startswith("torchvision:"):
            raise ValueError(f"{name} has no torchvision reference to compare with; choose e.g. {', '.join(MODELS)}.")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
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
                rows.append(measure(name, args.image_size, folder, args.rounds, args.runs, args.threads))
            print(f"{name}: measured", file=sys.stderr, flush=True)
    print(table(rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
