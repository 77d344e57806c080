"""Size and CPU latency of exported files (the export report and the benchmark)."""

from __future__ import annotations

import os
import time

import numpy as np

from keras_cnnclassics.export.runtimes import load_runtime


def latency_ms(runtime, image, budget_s=1.0, max_runs=50):
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
            image = np.random.default_rng(0).normal(size=runtime.image_shape).astype("float32")
        latency["all" if count is None else str(count)] = latency_ms(runtime, image, budget_s, max_runs)
    size = os.path.getsize(path)
    return {"path": path, "format": "onnx" if path.endswith(".onnx") else "tflite",
            "size_bytes": size, "size_mb": size / 1e6, "latency_ms": latency}
