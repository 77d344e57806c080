"""``cnnclassics train ... --distribute data-parallel --processes N``: one training
in N processes on this machine, for trying multi-process data parallelism out.

The launcher picks free ports on 127.0.0.1, starts ``cnnclassics train`` N times
with ``KERAS_DISTRIBUTION_JOB_ADDRESSES`` (every process's ``127.0.0.1:port``,
process 0's first), ``KERAS_DISTRIBUTION_NUM_PROCESSES`` and
``KERAS_DISTRIBUTION_PROCESS_ID`` set (see :mod:`.distribute`), shows process
0's output as it is and the others' lines prefixed with ``[process i]``, and waits:

* a process that fails (an error, a signal) stops the others at once; the
  launcher exits with its code (1 for a signal) and a line naming it;
* once one process has finished, the others get ``CNNCLASSICS_PROCESS_TIMEOUT``
  seconds (default 60) more before they are stopped as hung.

On several machines, start ``cnnclassics train`` yourself on each with those
variables (the same ``--output``, a folder every machine can read for
``--resume``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

from keras_cnnclassics.training.distribute import (
    ADDRESSES_ENV,
    COUNT_ENV,
    INDEX_ENV,
    check_processes,
    processes_from_env,
)

__all__ = ["free_ports", "launch_local", "train_arguments"]

HOST = "127.0.0.1"
POLL_SECONDS = 0.2
STOP_GRACE_SECONDS = 5


def free_ports(count) -> list:
    """``count`` distinct TCP ports free on 127.0.0.1 now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def train_arguments(args, flags, output) -> list:
    """The ``cnnclassics train`` arguments that ``args`` were parsed from, with ``output``."""
    argv = [args.model]
    for flag, (dest, _) in flags.items():
        value = output if dest == "output" else getattr(args, dest)
        if value is not None:
            argv += [flag, str(value)]
    if args.freeze_backbone:
        argv.append("--freeze-backbone")
    for option in args.options:
        argv += ["--option", option]
    argv += [flag for flag, on in (("--resume", args.resume), ("--force", args.force)) if on]
    return argv


def _check(args, count):
    if count < 1:
        raise ValueError(f"--processes must be an integer >= 1; got {count}.")
    if _distribute(args) != "data-parallel":
        raise ValueError(f"--processes {count} trains one model in {count} processes: add "
                         "--distribute data-parallel.")
    if processes_from_env().count > 1:
        raise ValueError(f"--processes starts the processes itself; unset {COUNT_ENV} (or start "
                         "each process yourself without --processes).")
    check_processes(count)


def _distribute(args):
    """``--distribute`` as given, or as the run to resume recorded it."""
    stored = os.path.join(args.output or "", "config.json")
    if args.distribute is None and args.resume and os.path.isfile(stored):
        from keras_cnnclassics.training.runfolder import RunFolder

        return RunFolder(args.output).read_config().distribute
    return args.distribute


def _forward(stream, prefix):
    for line in stream:
        sys.stderr.write(f"{prefix}{line}")
        sys.stderr.flush()


def _start(argv, index, addresses, backend):
    env = {**os.environ, "KERAS_BACKEND": backend, ADDRESSES_ENV: ",".join(addresses),
           COUNT_ENV: str(len(addresses)), INDEX_ENV: str(index)}
    command = [sys.executable, "-m", "keras_cnnclassics.cli", *argv]
    if index == 0:
        return subprocess.Popen(command, env=env), None
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace")
    reader = threading.Thread(target=_forward, args=(proc.stdout, f"[process {index}] "), daemon=True)
    reader.start()
    return proc, reader


def _stop(procs):
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _how(code) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def wait_all(procs, timeout) -> tuple:
    """``(index, code)`` of the first process that failed, or of one that outlived the
    others by ``timeout`` seconds (code None); ``(None, 0)`` when all succeeded."""
    finished_at = None
    while True:
        codes = [proc.poll() for proc in procs]
        failed = next((i for i, code in enumerate(codes) if code not in (None, 0)), None)
        if failed is not None:
            return failed, codes[failed]
        if all(code == 0 for code in codes):
            return None, 0
        if finished_at is None and 0 in codes:
            finished_at = time.monotonic()
        if finished_at is not None and time.monotonic() - finished_at > timeout:
            return codes.index(None), None
        time.sleep(POLL_SECONDS)


def launch_local(args, flags, count) -> int:
    """Run ``cnnclassics train`` (``args``, parsed with ``flags``) in ``count``
    processes on 127.0.0.1; the exit code of the run (see the module docstring)."""
    import keras

    from keras_cnnclassics.registry import get_spec
    from keras_cnnclassics.training.engine import default_output

    _check(args, count)
    output = args.output or default_output(get_spec(args.model).name)
    shared = [flag for flag, on in (("--debug", args.debug), ("--verbose", args.show_logs)) if on]
    argv = [*shared, "train", *train_arguments(args, flags, output)]
    addresses = [f"{HOST}:{port}" for port in free_ports(count)]
    timeout = processes_from_env().timeout
    started = [_start(argv, i, addresses, keras.backend.backend()) for i in range(count)]
    procs = [proc for proc, _ in started]
    try:
        index, code = wait_all(procs, timeout)
    except KeyboardInterrupt:
        _stop(procs)
        print("cnnclassics train: interrupted; stopped every process", file=sys.stderr)
        return 130
    _stop(procs)
    for _, reader in started:
        if reader is not None:
            reader.join(timeout=STOP_GRACE_SECONDS)
    if index is None:
        return 0
    what = (f"did not finish within {timeout} s after another process had"
            if code is None else _how(code))
    print(f"cnnclassics train: process {index} of {count} {what}; stopped the other "
          f"process(es) (see its lines above{'' if index == 0 else f', prefixed [process {index}]'})",
          file=sys.stderr)
    return code if code and code > 0 else 1
