"""Quiet exports: the converters' and runtimes' own log lines are shown only when asked for.

TensorFlow's converter, ONNX Runtime's quantizer and the LiteRT interpreter
write to the process's file descriptors from C++ (and Python warnings and
logging besides), so an export silences descriptors 1 and 2 and Python's
streams, warnings and logging while it runs; ``verbose=2`` / ``--verbose``
lets them through.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
import warnings


def _flush_streams():
    """Flush Python's and C's standard streams (so nothing buffered crosses a redirect)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def _descriptors_to(sink):
    """Descriptors 1 and 2 point at ``sink`` inside the block (left alone where they cannot be)."""
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:
        yield
        return
    _flush_streams()
    os.dup2(sink.fileno(), 1)
    os.dup2(sink.fileno(), 2)
    try:
        yield
    finally:
        _flush_streams()
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)


@contextlib.contextmanager
def silenced(enabled=True):
    """Nothing printed inside the block (when ``enabled``): no log lines, warnings or messages."""
    if not enabled:
        yield
        return
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with open(os.devnull, "w") as sink, warnings.catch_warnings(), _descriptors_to(sink), \
                contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)
