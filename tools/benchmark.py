#!/usr/bin/env python
"""Benchmarks: our models beside keras.applications and torchvision, in one run.

    python tools/benchmark.py --suite infer --models resnet50 --backends tensorflow jax torch
    python tools/benchmark.py --suite build --models resnet152 densenet201 --repeat 5 --rounds 3

A maintainer's tool (not part of the package). Each measurement runs in its own
Python process (the Keras backend is fixed at import, and a fresh process keeps
caches and thread pools from leaking between cases), warms up first, then reports
the median and spread of ``repeat`` timed runs. The driver prints one table with
ratios to keras.applications (same backend, same architecture) and to torchvision
eager (same machine; NCHW memory as it comes, and ``channels_last`` memory), the
achieved GMAC/s and its fraction of the CPU's arithmetic peak
(:func:`cpu_peak`; "peak unknown" where /proc/cpuinfo cannot be read).

Suites: ``infer`` (forward passes), ``train`` (``train_on_batch`` steps, float32
and mixed precision), ``build`` (seconds to construct a model: a process's first
build, and the median of later ones), ``export`` (file
size and latency of exported ONNX/LiteRT files, see :mod:`keras_cnnclassics.export`).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import statistics
import subprocess
import sys
import time

# Our registry name -> keras.applications constructor of the same architecture.
KERAS_APPLICATIONS = {
    "resnet50": "ResNet50",
    "resnet101": "ResNet101",
    "resnet152": "ResNet152",
    "vgg16": "VGG16",
    "vgg19": "VGG19",
    "densenet121": "DenseNet121",
    "densenet169": "DenseNet169",
    "densenet201": "DenseNet201",
    "preact_resnet50": "ResNet50V2",
}

# Options that make ours the very architecture keras.applications builds: its ResNets
# are v1 (stride on the first 1x1), ours default to torchvision's v1.5 (stride on the
# 3x3, ~5 % more multiply-adds). Such a model gets a second "ours" row for that ratio.
KERAS_APPLICATIONS_OPTIONS = {
    "resnet50": {"stride_in_1x1": True},
    "resnet101": {"stride_in_1x1": True},
    "resnet152": {"stride_in_1x1": True},
}

INFER_MODELS = (
    "resnet50", "resnet101", "resnet152", "vgg16", "vgg19", "densenet121", "densenet169",
    "densenet201", "preact_resnet50", "resnet18", "googlenet", "squeezenet1_1",
)
BUILD_MODELS = ("resnet152", "densenet201")
EXPORT_MODELS = ("squeezenet1_0", "squeezenet1_1", "googlenet", "resnet18", "resnet50", "densenet121")
# (format, quantize) of each exported file in the export suite.
EXPORT_VARIANTS = (
    ("tflite", "none"), ("tflite", "float16"), ("tflite", "int8"),
    ("onnx", "none"), ("onnx", "float16"), ("onnx", "int8"),
)
RUNTIME = {"tflite": "LiteRT", "onnx": "ONNX Runtime"}
# torchvision eager runs as it comes (NCHW memory, the usual baseline) and with
# ``model.to(memory_format=torch.channels_last)``, the layout its CPU kernels are
# fastest in (a tuned PyTorch user's figure); each row of ours gets a ratio to both.
TORCHVISION_MEMORY_FORMATS = ("channels_first", "channels_last")
BACKENDS = ("tensorflow", "jax", "torch")

# glibc malloc serves allocations above a threshold with fresh mmap()ed pages and
# gives freed memory back to the OS, so a PyTorch forward pass (whose CPU allocator
# has no cache, unlike TensorFlow's and XLA's) page-faults every large activation
# again: torchvision ResNet-50 at batch 16 ran at 19-20 img/s with the defaults and
# 34-36 img/s with these two settings on the 2-core CI machine. "retain" keeps freed
# memory in the process for every worker of a run (all backends alike).
ALLOCATORS = {
    "retain": "glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=68719476736",
    "system": "",
}


@dataclasses.dataclass
class Case:
    """One measurement: ``impl`` is "ours", "keras_applications" or "torchvision"."""

    suite: str
    model: str
    impl: str
    backend: str
    batch: int = 16
    image_size: int = 224
    precision: str = "float32"
    repeat: int = 5
    warmup: int = 2
    threads: int = 0
    data_format: str = "channels_last"
    options: dict = dataclasses.field(default_factory=dict)
    allocator: str = "retain"

    @property
    def label(self):
        """``impl`` with the model options, e.g. ``ours stride_in_1x1=True``."""
        return " ".join([self.impl, *(f"{k}={v}" for k, v in self.options.items())])


@dataclasses.dataclass
class CpuPeak:
    """The CPU's float32 arithmetic peak; ``gflops`` is None where it is unknown."""

    cores: int
    ghz: float
    simd_bits: int
    fma_units: int
    gflops: float | None
    how: str


def usable_cores() -> int:
    """Cores this process may run on: its affinity mask where the OS has one (Linux),
    else every core (``os.process_cpu_count`` on Python 3.13+, ``os.cpu_count``)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    count = getattr(os, "process_cpu_count", os.cpu_count)()
    return count or 1


def read_cpuinfo(path="/proc/cpuinfo") -> dict:
    """Each key of ``path`` with its first value (the first core's ``flags``, ``cpu MHz``, ...)."""
    fields = {}
    with open(path, encoding="utf-8", errors="replace") as info:
        for line in info:
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    return fields


def unknown_peak(cores, reason) -> CpuPeak:
    """A :class:`CpuPeak` without figures; ``how`` says why."""
    return CpuPeak(cores, 0.0, 0, 0, None, f"peak unknown: {reason}")


def cpu_peak() -> CpuPeak:
    """The CPU's float32 arithmetic peak from /proc/cpuinfo, with the formula used.

    peak FLOP/s = cores x clock x FMA units x (SIMD bits / 32) lanes x 2 (an FMA is
    a multiply and an add). Two FMA pipes per core is the figure for current x86
    server cores; AMD cores before Zen 5 (CPU family 26) execute AVX-512 as two
    256-bit halves, so their effective width is 256 bits. Without a readable
    /proc/cpuinfo that names a clock (macOS, Windows, many ARM kernels) the peak is
    unknown: ``gflops`` is None and ``how`` says why.
    """
    cores = usable_cores()
    try:
        fields = read_cpuinfo()
    except OSError as err:
        return unknown_peak(cores, f"cannot read /proc/cpuinfo ({err.strerror or err})")
    try:
        ghz = float(fields.get("cpu MHz", 0)) / 1000
    except ValueError:
        ghz = 0.0
    if ghz <= 0:
        return unknown_peak(cores, "/proc/cpuinfo names no clock (cpu MHz)")
    flags, vendor = set(fields.get("flags", "").split()), fields.get("vendor_id", "")
    family = int(fields["cpu family"]) if fields.get("cpu family", "").isdigit() else 0
    simd = 512 if "avx512f" in flags else 256 if "avx2" in flags else 128
    note = ""
    if simd == 512 and vendor == "AuthenticAMD" and family < 26:
        simd, note = 256, " (AMD Zen 4: AVX-512 runs as 2x256-bit)"
    elif simd == 512 and vendor == "AuthenticAMD":
        note = " (AMD Zen 5: full-width AVX-512)"
    fma_units = 2 if "fma" in flags else 1
    gflops = cores * ghz * fma_units * (simd // 32) * 2
    how = (
        f"{cores} cores x {ghz:.2f} GHz x {fma_units} FMA units x {simd // 32} fp32 lanes "
        f"({simd}-bit{note}) x 2 FLOP/FMA = {gflops:.0f} GFLOP/s = {gflops / 2:.0f} GMAC/s"
    )
    return CpuPeak(cores, ghz, simd, fma_units, gflops, how)


# ---------------------------------------------------------------- worker side


def _input_shape(case):
    size = case.image_size
    return (3, size, size) if case.data_format == "channels_first" else (size, size, 3)


def _build_keras_model(case):
    import keras

    keras.config.set_image_data_format(case.data_format)
    if case.precision != "float32":
        keras.config.set_dtype_policy(f"mixed_{case.precision}")
    shape = _input_shape(case)
    if case.impl == "keras_applications":
        constructor = getattr(keras.applications, KERAS_APPLICATIONS[case.model])
        return constructor(weights=None, input_shape=shape)
    from keras_cnnclassics import get_model

    return get_model(case.model, input_shape=shape, **case.options)


def _time_runs(step, case):
    for _ in range(case.warmup):
        step()
    times = []
    for _ in range(case.repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def _torchvision_step(case):
    import torch

    if case.threads:
        torch.set_num_threads(case.threads)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
    from support.reference import torch_reference

    from keras_cnnclassics.registry import get_spec

    model = torch_reference(get_spec(case.model).reference)
    x = torch.randn(case.batch, 3, case.image_size, case.image_size)
    if case.data_format == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def step():
        with torch.inference_mode():
            model(x)

    return step


def _keras_step(case):
    import numpy as np

    model = _build_keras_model(case)
    x = np.random.default_rng(0).uniform(size=(case.batch, *_input_shape(case)))
    x = x.astype("float32")
    if case.suite == "train":
        import keras

        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
        y = np.zeros((case.batch,), "int32")
        return lambda: model.train_on_batch(x, y)
    return lambda: model.predict_on_batch(x)


def _wait_for_weights(model):
    """Block until every weight holds its value: JAX dispatches the initialisers'
    random draws asynchronously, so a build would otherwise stop the clock early."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        jax.block_until_ready([weight.value for weight in model.weights])


def _time_builds(case):
    """Seconds from calling the constructor to a model whose weights are all drawn: the
    first build of this fresh process (what a script pays; on JAX it includes compiling
    the initialisers) and the median and spread of the later ones. Each build starts
    after ``keras.backend.clear_session()`` and drops the previous model."""
    import keras

    times = []
    for _ in range(case.repeat):
        keras.backend.clear_session()
        start = time.perf_counter()
        model = _build_keras_model(case)
        _wait_for_weights(model)
        times.append(time.perf_counter() - start)
        del model
    later = times[1:] or times
    return {"first_s": times[0], "seconds": statistics.median(later), "spread": max(later) - min(later)}


def run_case(case: Case) -> dict:
    """Measure one case in this process (the backend is already chosen)."""
    if case.threads and os.environ.get("KERAS_BACKEND") == "torch":
        import torch

        torch.set_num_threads(case.threads)
    if case.suite == "build":
        return _time_builds(case)
    step = _torchvision_step(case) if case.impl == "torchvision" else _keras_step(case)
    times = _time_runs(step, case)
    rates = [case.batch / t for t in times]
    return {"img_s": statistics.median(rates), "spread": max(rates) - min(rates)}


def run_in_subprocess(case: Case, timeout=1800) -> dict:
    """Run ``case`` in a fresh interpreter with its backend; returns the result dict."""
    env = {**os.environ, "KERAS_BACKEND": case.backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if case.threads:
        env.update(OMP_NUM_THREADS=str(case.threads), TF_NUM_INTRAOP_THREADS=str(case.threads),
                   TF_NUM_INTEROP_THREADS="1")
    if ALLOCATORS[case.allocator]:
        env["GLIBC_TUNABLES"] = ":".join(filter(None, [env.get("GLIBC_TUNABLES"), ALLOCATORS[case.allocator]]))
    if case.threads == 1:
        env["XLA_FLAGS"] = " ".join([env.get("XLA_FLAGS", ""), "--xla_cpu_multi_thread_eigen=false"]).strip()
    cmd = [sys.executable, os.path.abspath(__file__), "--case", json.dumps(dataclasses.asdict(case))]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"error": tail[0][:200]}


# ---------------------------------------------------------------- driver side


def plan(suite, models, backends, batch, image_size, repeat, threads, data_formats=("channels_last",),
         allocator="retain"):
    """The cases of a suite: ours and the comparisons, per backend and Keras data format."""
    cases = []
    for model in models:
        for backend, data_format in itertools.product(backends, data_formats):
            common = dict(model=model, backend=backend, batch=batch, image_size=image_size,
                          repeat=repeat, threads=threads, data_format=data_format, allocator=allocator)
            if suite == "train":
                for precision in ("float32", "bfloat16"):
                    cases.append(Case("train", impl="ours", precision=precision, **common))
                continue
            cases.append(Case(suite, impl="ours", **common))
            if model in KERAS_APPLICATIONS_OPTIONS:
                cases.append(Case(suite, impl="ours", options=KERAS_APPLICATIONS_OPTIONS[model], **common))
            if model in KERAS_APPLICATIONS:
                cases.append(Case(suite, impl="keras_applications", **common))
        if suite == "infer" and _has_torchvision(model):
            cases += [Case("infer", model=model, impl="torchvision", backend="torch", batch=batch,
                           image_size=image_size, repeat=repeat, threads=threads, allocator=allocator,
                           data_format=memory_format) for memory_format in TORCHVISION_MEMORY_FORMATS]
    return cases


def _has_torchvision(model):
    from keras_cnnclassics.registry import get_spec

    reference = get_spec(model).reference or ""
    return reference.startswith("torchvision:")


def _macs(case):
    """Multiply-adds per image of the architecture ``case`` runs (keras.applications'
    own model for its rows; ours with the case's options otherwise)."""
    try:
        from keras_cnnclassics.profiler import profile
    except ImportError:
        return None
    shape = (case.image_size, case.image_size, 3)
    if case.impl == "keras_applications":
        import keras

        constructor = getattr(keras.applications, KERAS_APPLICATIONS[case.model])
        return profile(constructor(weights=None, input_shape=shape)).total_macs
    return profile(case.model, input_shape=shape, **case.options).total_macs


def summarize(cases, results, peak: CpuPeak):
    """Rows with ratios: ours vs keras.applications (same backend) and vs torchvision."""
    index = {(c.model, c.impl, c.backend, c.precision, c.data_format): r for c, r in zip(cases, results)}
    torch_eager = {(c.model, c.data_format): r.get("img_s") for c, r in zip(cases, results)
                   if c.impl == "torchvision"}
    macs_cache = {}
    rows = []
    for case, result in zip(cases, results):
        row = {
            "model": case.model,
            "impl": case.label,
            "backend": case.backend if case.impl != "torchvision" else "torch eager",
            "layout": "NCHW" if case.data_format == "channels_first" else "NHWC",
            "batch": case.batch,
            "precision": case.precision,
        }
        if "error" in result:
            rows.append({**row, "error": result["error"]})
            continue
        if case.suite == "build":
            ref = index.get((case.model, "keras_applications", case.backend, case.precision, case.data_format), {})
            same = _same_architecture(case)
            rows.append({**row, "first_s": result["first_s"], "seconds": result["seconds"],
                         "spread": result["spread"],
                         "vs_keras_app_first": _ratio(ref.get("first_s"), result["first_s"]) if same else None,
                         "vs_keras_app": _ratio(ref.get("seconds"), result["seconds"]) if same else None})
            continue
        rate = result["img_s"]
        architecture = (case.model, case.impl == "keras_applications", tuple(sorted(case.options.items())))
        if architecture not in macs_cache:
            macs_cache[architecture] = _macs(case)
        macs = macs_cache[architecture]
        factor = 3 if case.suite == "train" else 1  # forward + two backward matmuls
        gmacs = rate * macs * factor / 1e9 if macs else None
        ref = index.get((case.model, "keras_applications", case.backend, case.precision, case.data_format), {})
        row.update(
            img_s=rate,
            spread=result["spread"],
            vs_keras_app=_ratio(rate, ref.get("img_s")) if _same_architecture(case) else None,
            vs_torchvision=_ratio(rate, torch_eager.get((case.model, "channels_first")))
            if case.impl == "ours" and not case.options else None,
            vs_torchvision_nhwc=_ratio(rate, torch_eager.get((case.model, "channels_last")))
            if case.impl == "ours" and not case.options else None,
            gmac_s=gmacs,
            peak_pct=100 * gmacs / (peak.gflops / 2) if gmacs and peak.gflops else None,
        )
        rows.append(row)
    return rows


def _same_architecture(case):
    """Whether ``case`` is ours built as keras.applications builds that model."""
    return case.impl == "ours" and case.options == KERAS_APPLICATIONS_OPTIONS.get(case.model, {})


def _ratio(a, b):
    return a / b if a and b else None


def format_rows(rows, fmt="table"):
    """Render rows as an aligned table, CSV or JSON."""
    if fmt == "json":
        return json.dumps(rows, indent=2)
    columns = [k for k in ("model", "impl", "backend", "runtime", "layout", "batch", "precision", "img_s",
                           "first_s", "seconds", "size_mb", "ms_1_thread", "ms_all_threads", "max_diff",
                           "top1_agreement", "spread", "vs_keras_app_first", "vs_keras_app", "vs_torchvision",
                           "vs_torchvision_nhwc",
                           "vs_fastest_keras", "gmac_s", "peak_pct", "error")
               if any(k in r for r in rows)]
    cells = [[_cell(r.get(k)) for k in columns] for r in rows]
    if fmt == "csv":
        return "\n".join(",".join(line) for line in [columns] + cells)
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(columns)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in cells]
    return "\n".join(lines)


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2e}" if 0 < abs(value) < 0.01 else f"{value:.2f}"
    return str(value)


# ---------------------------------------------------------------- export suite


def _keras_latency_rows(model, backends, image_size, repeat, progress):
    """ms per image at batch 1 of the Keras model on each backend, 1 thread and all."""
    rows = []
    for backend in backends:
        ms = {}
        for threads in (1, 0):
            progress(f"export suite: {model} Keras {backend} threads={threads or 'all'}")
            case = Case("infer", model=model, impl="ours", backend=backend, batch=1,
                        image_size=image_size, repeat=repeat, threads=threads)
            result = run_in_subprocess(case)
            ms[threads] = 1000 / result["img_s"] if "img_s" in result else None
        rows.append({"model": model, "runtime": f"Keras {backend}", "precision": "float32",
                     "ms_1_thread": ms[1], "ms_all_threads": ms[0]})
    return rows


def _exported_file_row(model, fmt, quantize, image_size, folder, repeat):
    """Export ``model`` (random weights), verify it, and time the file."""
    from keras_cnnclassics.export import export_model, measure_file

    path = os.path.join(folder, f"{model}-{quantize}.{fmt}")
    row = {"model": model, "runtime": RUNTIME[fmt], "precision": quantize.replace("none", "float32")}
    try:
        report = export_model(model, fmt, path, input_shape=(image_size, image_size, 3), verbose=False,
                              quantize=quantize, calibration="random" if quantize == "int8" else None,
                              int8_io="uint8" if fmt == "tflite" else "float", min_agreement=0.0)
    except ValueError as err:
        return {**row, "error": " ".join(str(err).split())[:120]}
    measured = measure_file(path, max_runs=20 * repeat)
    return {**row, "size_mb": measured["size_mb"], "ms_1_thread": measured["latency_ms"]["1"],
            "ms_all_threads": measured["latency_ms"]["all"], "max_diff": report.max_abs_diff,
            "top1_agreement": report.top1_agreement}


def export_rows(models, backends, image_size, repeat, progress=print):
    """The export suite: Keras at batch 1 on each backend beside its exported files."""
    import tempfile

    rows = []
    for model in models:
        keras_rows = _keras_latency_rows(model, backends, image_size, repeat, progress)
        fastest = min((r["ms_all_threads"] for r in keras_rows if r["ms_all_threads"]), default=None)
        with tempfile.TemporaryDirectory(prefix="cnnclassics-bench-") as folder:
            for fmt, quantize in EXPORT_VARIANTS:
                progress(f"export suite: {model} {fmt} {quantize}")
                keras_rows.append(_exported_file_row(model, fmt, quantize, image_size, folder, repeat))
        for row in keras_rows:
            row["vs_fastest_keras"] = _ratio(fastest, row.get("ms_all_threads"))
        rows += keras_rows
    return rows


def combine_rounds(results):
    """One result from the same case measured in several processes: the median of each
    figure over the processes, and the range of the headline figure as the spread (when
    two builds of one graph are compared, process-to-process variation dominates)."""
    measured = [r for r in results if "error" not in r]
    if len(measured) <= 1:
        return measured[0] if measured else results[0]
    headline = "img_s" if "img_s" in measured[0] else "seconds"
    combined = {key: statistics.median(r[key] for r in measured) for key in measured[0] if key != "spread"}
    values = [r[headline] for r in measured]
    return {**combined, "spread": max(values) - min(values)}


def run_suite(suite="infer", models=None, backends=BACKENDS, batch=16, image_size=224, repeat=5,
              threads=0, fmt="table", progress=print, data_formats=("channels_last",), allocator="retain",
              rounds=1):
    """Run a whole suite (one subprocess per case and round) and return the formatted table.

    With ``rounds`` > 1 every case runs in that many processes, the cases interleaved
    round by round, and each row reports :func:`combine_rounds` of its processes.
    """
    if suite == "export":
        rows = export_rows(models or EXPORT_MODELS, backends, image_size, repeat, progress)
        return (f"{format_rows(rows, fmt)}\n\nms per image at batch 1; vs_fastest_keras = the fastest "
                "Keras backend's ms / this file's ms (all threads). Random weights: int8 files are "
                "calibrated on random images and their top-1 agreement is shown, not enforced.")
    models = models or (BUILD_MODELS if suite == "build" else INFER_MODELS)
    cases = plan(suite, models, backends, batch, image_size, repeat, threads, data_formats, allocator)
    measured = [[] for _ in cases]
    for round_number in range(1, rounds + 1):
        for i, case in enumerate(cases):
            where = "torch eager" if case.impl == "torchvision" else f"{case.backend} {case.data_format}"
            progress(f"[{i + 1}/{len(cases)}, round {round_number}/{rounds}] {case.suite} {case.model} "
                     f"{case.label} {where} {case.precision}")
            measured[i].append(run_in_subprocess(case))
    peak = cpu_peak()
    table = format_rows(summarize(cases, [combine_rounds(m) for m in measured], peak), fmt)
    memory = f"GLIBC_TUNABLES={ALLOCATORS[allocator]}" if ALLOCATORS[allocator] else "glibc defaults"
    footer = f"CPU peak: {peak.how}\nAllocator ({allocator}): {memory}"
    if rounds > 1:
        footer += (f"\nRounds: {rounds} processes per case, interleaved; each figure is the median over "
                   "the processes, spread = their range")
    return f"{table}\n\n{footer}"


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=("infer", "train", "build", "export", "all"), default="infer")
    parser.add_argument("--models", nargs="+", help="registry names (default: the suite's list)")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=0, help="threads per process (0: all cores)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per case (median reported)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="processes per case, interleaved with the other cases; rows report the "
                             "median over processes and their range (for near-equal comparisons)")
    parser.add_argument("--data-format", nargs="+", choices=("channels_last", "channels_first"),
                        default=["channels_last"], dest="data_formats",
                        help="Keras image data format(s) of ours and keras.applications")
    parser.add_argument("--allocator", choices=tuple(ALLOCATORS), default="retain",
                        help="retain: glibc malloc keeps freed memory in every worker process, so "
                             "PyTorch does not page-fault its activations anew each pass (see "
                             "ALLOCATORS); system: glibc defaults")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # a worker process: measure this one case
    return parser


def check_arguments(args):
    """One-line ``ValueError`` for a bad number or an unknown model name."""
    if min(args.batch_size, args.repeat, args.image_size, args.rounds) <= 0 or args.threads < 0:
        raise ValueError("--batch-size, --image-size, --repeat and --rounds must be positive, --threads >= 0.")
    if args.models:
        from keras_cnnclassics.registry import get_spec

        for name in args.models:
            get_spec(name)  # an unknown name: ValueError with the closest names


def run(args):
    """Print each suite's table (progress on stderr)."""
    suites = ("infer", "train", "build", "export") if args.suite == "all" else (args.suite,)
    for suite in suites:
        print(f"## {suite}", flush=True)
        print(
            run_suite(
                suite, models=args.models, backends=args.backends, batch=args.batch_size,
                image_size=args.image_size, repeat=args.repeat, threads=args.threads,
                fmt=args.format, data_formats=tuple(args.data_formats), allocator=args.allocator,
                rounds=args.rounds,
                progress=lambda m: print(m, file=sys.stderr, flush=True),
            ),
            flush=True,
        )
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.case:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        print(json.dumps(run_case(Case(**json.loads(args.case)))), flush=True)
        return 0
    from keras_cnnclassics.cli import import_backend

    try:
        import_backend()  # Keras without TensorFlow's load-time log lines
        check_arguments(args)
    except ValueError as err:
        print(f"benchmark.py: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
