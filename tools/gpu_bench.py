#!/usr/bin/env python
"""Throughput on one GPU: our ResNet-50 beside torchvision's, float32 and mixed precision.

    python tools/gpu_bench.py [--batch 128] [--steps 20] [--backends torch jax] [--model resnet50]

A maintainer's tool (not part of the package). Each (backend, precision) case runs in its
own process (the Keras backend and dtype policy are fixed at import). Training is
``train_on_batch`` on a synthetic batch (SGD, sparse cross-entropy), inference is
``predict_on_batch``; both return host values, so every timed step is complete. The
reference is torchvision's model of the same architecture in eager PyTorch on the same
GPU (NCHW, ``torch.autocast`` for the mixed cases). Images per second are the median of
``--repeat`` timings of ``--steps`` steps, after warm-up; the first-step time (compilation
or autotuning included) is printed too. Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

PRECISIONS = ("float32", "bfloat16", "float16")


def _timed(step, steps, repeat):
    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    for _ in range(3):
        step()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        times.append((time.perf_counter() - start) / steps)
    return first, statistics.median(times)


def keras_case(args, precision):
    """``{"train": img/s, "infer": img/s, ...}`` of our model on this process's backend."""
    import keras
    import numpy as np

    from keras_cnnclassics import get_model

    if precision != "float32":
        keras.config.set_dtype_policy(f"mixed_{precision}")
    model = get_model(args.model, classifier_activation=None)
    size = model.input_shape[1]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, size, size, 3)).astype("float32")
    y = rng.integers(0, 1000, args.batch)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=args.jit_compile)
    first_train, train = _timed(lambda: model.train_on_batch(x, y), args.steps, args.repeat)
    first_infer, infer = _timed(lambda: model.predict_on_batch(x), args.steps, args.repeat)
    logits = np.asarray(model.predict_on_batch(x[:8]), dtype="float32")
    return {"train": args.batch / train, "infer": args.batch / infer, "first_train_s": first_train,
            "first_infer_s": first_infer, "finite": bool(np.isfinite(logits).all())}


def torchvision_case(args, precision):
    import torch
    import torchvision

    model = getattr(torchvision.models, args.model)().cuda()
    x = torch.randn(args.batch, 3, 224, 224, device="cuda")
    y = torch.randint(0, 1000, (args.batch,), device="cuda")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "float16")

    def train_step():
        model.train()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        loss.item()  # waits for the step, as train_on_batch does

    def infer_step():
        model.eval()
        with torch.inference_mode(), torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            model(x).float().cpu()

    first_train, train = _timed(train_step, args.steps, args.repeat)
    first_infer, infer = _timed(infer_step, args.steps, args.repeat)
    return {"train": args.batch / train, "infer": args.batch / infer, "first_train_s": first_train,
            "first_infer_s": first_infer, "finite": True}


def run_case(args, impl, backend, precision):
    """Measure one case in a fresh process; its result dict (or {"error": ...})."""
    command = [sys.executable, os.path.abspath(__file__), "--case", json.dumps([impl, backend, precision]),
               "--batch", str(args.batch), "--steps", str(args.steps), "--repeat", str(args.repeat),
               "--model", args.model, "--jit-compile", args.jit_compile]
    env = {**os.environ, "KERAS_BACKEND": backend}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=args.timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]}
    return json.loads(lines[-1][len("RESULT "):])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--backends", nargs="+", default=["torch", "jax"])
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--jit-compile", default="auto", choices=("auto", "true", "false"),
                        help="model.compile(jit_compile=...) of our cases (torch: torch.compile)")
    parser.add_argument("--no-reference", action="store_true", help="leave torchvision out")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    if args.case:
        args.jit_compile = jit
        impl, _, precision = json.loads(args.case)
        result = (keras_case if impl == "ours" else torchvision_case)(args, precision)
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    cases = [("ours", b, p) for b in args.backends for p in args.precisions]
    cases += [] if args.no_reference else [("torchvision", "torch", p) for p in args.precisions]
    print(f"| {args.model}, batch {args.batch}, jit_compile={args.jit_compile} | precision | train img/s | inference img/s | "
          "first train step s | first inference s |\n|---|---|---|---|---|---|", flush=True)
    for impl, backend, precision in cases:
        r = run_case(args, impl, backend, precision)
        name = f"{impl} ({backend})" if impl == "ours" else "torchvision eager"
        if "error" in r:
            print(f"| {name} | {precision} | error: {r['error']} | | | |", flush=True)
            continue
        finite = "" if r["finite"] else " (non-finite logits)"
        print(f"| {name} | {precision} | {r['train']:.0f} | {r['infer']:.0f}{finite} | "
              f"{r['first_train_s']:.1f} | {r['first_infer_s']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
