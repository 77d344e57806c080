"""Data parallelism across processes on this machine: throughput and dead-process time.

    KERAS_BACKEND=jax python tools/multiprocess_bench.py --model lenet5 --timeouts 10 60

Prints two tables:

* training images/s of one process (``--distribute none``) and of N processes on
  127.0.0.1 (``--distribute data-parallel``, :mod:`keras_cnnclassics.training.launch`'s
  variables), the same global batch; timed from the end of each epoch's first
  step to the end of its last, over every epoch after the first (compilation);
* the seconds from SIGKILL of process 1 (while training) until process 0 has
  stopped, for each ``CNNCLASSICS_PROCESS_TIMEOUT`` of ``--timeouts``.

On a backend where Keras cannot train across processes, the refusal is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

# One process of the run: trains, and writes its training images/s to a JSON file.
WORKER = textwrap.dedent(
    """
    import json, sys, time
    import keras
    from keras_cnnclassics.training import TrainConfig, train

    output, report, run = sys.argv[1:4]
    run = json.loads(run)

    class Clock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.spans, self.first, self.last = [], None, None

        def on_epoch_begin(self, epoch, logs=None):
            self.first = self.last = None

        def on_train_batch_end(self, batch, logs=None):
            self.last = time.perf_counter()
            self.first = self.first or self.last

        def on_epoch_end(self, epoch, logs=None):
            if epoch > 0:
                self.spans.append(self.last - self.first)

    clock = Clock()
    train(TrainConfig(output=output, **run), verbose=0, callbacks=[clock])
    steps = run["limit"] // run["batch_size"] - 1
    rate = steps * run["batch_size"] * len(clock.spans) / sum(clock.spans)
    json.dump({"images_per_s": rate}, open(report, "w"))
    """
)


def process_env(index, addresses, **extra):
    from keras_cnnclassics.training.distribute import ADDRESSES_ENV, COUNT_ENV, INDEX_ENV

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}
    if addresses:
        env.update({ADDRESSES_ENV: ",".join(addresses), COUNT_ENV: str(len(addresses)),
                    INDEX_ENV: str(index)})
    return env


def start(folder, run, count, **extra):
    """``count`` WORKER processes of one run (one process, undistributed, for 1)."""
    from keras_cnnclassics.training.launch import free_ports

    addresses = [f"127.0.0.1:{p}" for p in free_ports(count)] if count > 1 else []
    run = dict(run, distribute="data-parallel" if count > 1 else "none")
    procs = []
    for index in range(count):
        log = open(os.path.join(folder, f"log-{index}.txt"), "w", encoding="utf-8")
        argv = [os.path.join(folder, "run"), os.path.join(folder, f"report-{index}.json"), json.dumps(run)]
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, *argv], stdout=log,
                                      stderr=subprocess.STDOUT, env=process_env(index, addresses, **extra)))
        log.close()
    return procs


def read(folder, name):
    with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as handle:
        return handle.read()


def throughput(run, count) -> float:
    with tempfile.TemporaryDirectory() as folder:
        codes = [proc.wait() for proc in start(folder, run, count)]
        if any(codes):
            raise SystemExit(f"{count} process(es) failed:\n{read(folder, 'log-0.txt')[-3000:]}")
        return json.loads(read(folder, "report-0.json"))["images_per_s"]


def seconds_to_stop(run, timeout) -> float:
    """SIGKILL process 1 once the run is in its second epoch; seconds until process 0 stops."""
    with tempfile.TemporaryDirectory() as folder:
        procs = start(folder, dict(run, epochs=10_000), 2, CNNCLASSICS_PROCESS_TIMEOUT=str(timeout))
        history = os.path.join(folder, "run", "history.csv")
        while not os.path.exists(history) and procs[0].poll() is None:
            time.sleep(0.2)  # process 0 writes it after the first epoch
        procs[1].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        try:
            procs[0].wait(timeout + 300)
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
        return time.monotonic() - killed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64, help="global batch")
    parser.add_argument("--limit", type=int, default=1024, help="training images per epoch")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--timeouts", type=int, nargs="*", default=[10, 60])
    args = parser.parse_args(argv)
    import keras

    from keras_cnnclassics.training.distribute import check_processes

    try:
        check_processes(args.processes)
    except ValueError as err:
        print(f"{keras.backend.backend()}: {err}")
        return 0
    run = dict(model=args.model, epochs=args.epochs, limit=args.limit, batch_size=args.batch_size,
               seed=0, warmup_epochs=0)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{args.model}, backend {keras.backend.backend()}, {cpus} CPU cores, global batch "
          f"{args.batch_size}, {args.limit} images/epoch, epochs 2..{args.epochs} timed")
    print("| processes | training images/s |\n| ---: | ---: |")
    for count in (1, args.processes):
        print(f"| {count} | {throughput(run, count):.0f} |", flush=True)
    print("\n| CNNCLASSICS_PROCESS_TIMEOUT | seconds from SIGKILL of process 1 until process 0 stops |")
    print("| ---: | ---: |")
    for timeout in args.timeouts:
        print(f"| {timeout} | {seconds_to_stop(run, timeout):.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
