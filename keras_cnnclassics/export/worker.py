"""The export worker: a Python process on another Keras backend that writes export files.

Requests and replies are JSON lines on two private pipes; the model travels as
a ``.keras`` file (custom layers and weights kept exactly) and the calibration
images as a ``.npy`` file.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from keras_cnnclassics.export.native import write_native
from keras_cnnclassics.export.report import ExportError


class Worker:
    """A long-lived Python process on another Keras backend that writes export files.

    Started on first use and reused (one per backend), so the cost of importing
    the other backend is paid once per session. Requests and replies are JSON
    lines on two private pipes; the worker's own output goes to a log file whose
    tail is shown when it fails.
    """

    def __init__(self, backend):
        self.backend = backend
        to_child, self._child_in = os.pipe()
        self._child_out, from_child = os.pipe()
        self.log = tempfile.TemporaryFile(mode="w+")
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
               "CNNCLASSICS_EXPORT_PIPES": f"{to_child},{from_child}"}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from keras_cnnclassics.export.worker import main; main()"],
            pass_fds=(to_child, from_child), stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=subprocess.STDOUT, env=env,
        )
        os.close(to_child)
        os.close(from_child)
        self.send = os.fdopen(self._child_in, "w")
        self.receive = os.fdopen(self._child_out, "r")

    def alive(self):
        return self.proc.poll() is None

    def write(self, model, fmt, path, batch, quantize, calibration, int8_io, lean=True):
        with tempfile.TemporaryDirectory(prefix="cnnclassics-export-") as tmp:
            model_path = os.path.join(tmp, "model.keras")
            model.save(model_path)
            calib_path = None
            if calibration is not None:
                calib_path = os.path.join(tmp, "calibration.npy")
                np.save(calib_path, calibration)
            job = {"model": model_path, "format": fmt, "path": path, "batch": batch,
                   "quantize": quantize, "calibration": calib_path, "int8_io": int8_io, "lean": lean}
            try:
                self.send.write(json.dumps(job) + "\n")
                self.send.flush()
                reply = self.receive.readline()
            except BrokenPipeError:
                reply = ""
        if not reply:
            self.close()
            raise ExportError(f"the {self.backend} export worker died:\n{self._log_tail()}")
        reply = json.loads(reply)
        if not reply["ok"]:
            raise ExportError(f"{fmt} export on the {self.backend} backend failed: {reply['error']}")

    def _log_tail(self, lines=15):
        self.log.seek(0)
        return "".join(self.log.readlines()[-lines:])

    def close(self):
        with contextlib.suppress(OSError):
            self.send.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


_WORKERS: dict = {}


def worker(backend):
    worker = _WORKERS.get(backend)
    if worker is None or not worker.alive():
        worker = _WORKERS[backend] = Worker(backend)
    return worker


@atexit.register
def close_workers():
    for worker in list(_WORKERS.values()):
        worker.close()
    _WORKERS.clear()


def main():
    """The worker's loop: load the .keras model, write the file, reply; until EOF."""
    import gc
    import traceback

    import keras

    from keras_cnnclassics.applications import deep_graph_recursion
    from keras_cnnclassics.weights import load_model_file  # registers the package's layers

    receive_fd, send_fd = (int(fd) for fd in os.environ["CNNCLASSICS_EXPORT_PIPES"].split(","))
    with os.fdopen(receive_fd, "r") as receive, os.fdopen(send_fd, "w") as send:
        for line in receive:
            job = json.loads(line)
            try:
                model = load_model_file(job["model"])
                calibration = np.load(job["calibration"]) if job["calibration"] else None
                with deep_graph_recursion():  # tracing a 1,000-layer network recurses as deep
                    write_native(model, job["format"], job["path"], job["batch"], job["quantize"],
                                 calibration, job["int8_io"], job["lean"])
                reply = {"ok": True}
            except Exception as err:  # reported to the parent, which raises
                traceback.print_exc()
                reply = {"ok": False, "error": f"{type(err).__name__}: {err}"}
            send.write(json.dumps(reply) + "\n")
            send.flush()
            keras.utils.clear_session()
            gc.collect()
