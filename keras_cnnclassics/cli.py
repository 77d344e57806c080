"""The ``cnnclassics`` command line: thin subcommands over the package's functions.

Each subcommand lives in ``keras_cnnclassics/commands/<name>.py`` and exposes
``register(subparsers)``, which adds its parser and sets ``func(args) -> int``.
Those modules import only the standard library and light package modules;
Keras and its backend are imported after the arguments are parsed, so
``--help`` answers without them and ``--backend X`` only has to set
``KERAS_BACKEND``. Errors are one readable line on stderr and a non-zero exit
code (2 for a bad input, 1 for anything unexpected); ``--debug`` shows the
traceback. Usage errors (unknown flags, bad choices) are one line too, pointing
at ``--help``.

Quiet by default: ``TF_CPP_MIN_LOG_LEVEL`` defaults to 2 (a value the user set is
kept), and the C++ log lines TensorFlow prints while its libraries load, which
that variable does not reach (absl's "All log messages before
absl::InitializeLog()" notice, oneDNN's ``port.cc`` line), are held back by the
same level. ``--verbose`` shows everything.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import re
import subprocess
import sys
import tempfile

from keras_cnnclassics.commands import CommandError  # noqa: F401 (re-exported)

# Subcommand modules, in the order ``--help`` lists them.
COMMAND_MODULES = ["list", "info", "weights", "convert", "profile", "chart", "table", "train", "evaluate",
                   "predict", "show", "export"]

LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
DEFAULT_LOG_LEVEL = "2"  # TensorFlow's C++ errors only, no INFO or WARNING lines
# A C++ log line (absl/glog format): severity, date, time, thread, file:line].
CPP_LOG_LINE = re.compile(r"([IWEF])\d{4} \d+:\d+:\d+\.\d+\s+\d+ \S+:\d+\] ")
SEVERITIES = "IWEF"  # TF_CPP_MIN_LOG_LEVEL n hides the first n of these
ABSL_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


# Errors a user provokes with a bad argument or file: one line, exit code 2.
USER_ERRORS = (CommandError, ValueError, OSError, EOFError, ImportError)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (the subcommands' parsers are made of this class too)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def one_line(err) -> str:
    """An exception as one line: its message with every run of whitespace made one space."""
    text = " ".join(str(err).split())
    return text or type(err).__name__


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cnnclassics",
        description="Classic CNNs (LeNet-5 .. DenseNet) for Keras 3: list, inspect, "
        "profile, train, convert and export them.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    # Its own dest: a subcommand's --verbose (export) must not reset this one.
    parser.add_argument("--verbose", action="store_true", dest="show_logs",
                        help="show the backends' own log lines (TensorFlow's C++ logging)")
    parser.add_argument(
        "--backend",
        choices=("tensorflow", "jax", "torch"),
        help="Keras backend to use (default: $KERAS_BACKEND or tensorflow)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(f"keras_cnnclassics.commands.{module_name}")
        module.register(subparsers)
    return parser


def subcommand_argv(command, argv):
    """``cnnclassics`` arguments for a ``tools/*.py`` script: its global flags
    (``--backend X``, ``--debug``, ``--verbose``) first, wherever they were given,
    then ``command`` and the rest."""
    leading, rest, args = [], [], iter(argv)
    for arg in args:
        if arg == "--backend":
            leading += [arg, next(args, "")]
        elif arg.startswith("--backend=") or arg in ("--debug", "--verbose"):
            leading.append(arg)
        else:
            rest.append(arg)
    return [*leading, command, *rest]


# ------------------------------------------------------------------ quiet backend import


def log_level() -> int:
    """``TF_CPP_MIN_LOG_LEVEL`` as a number (0, showing everything, when unset or not a number)."""
    try:
        return int(os.environ.get(LOG_LEVEL_VARIABLE, "0"))
    except ValueError:
        return 0


def hidden_log_line(line: str, level: int) -> bool:
    """Whether ``line`` is a C++ log line (or absl's notice before one) below ``level``."""
    if line.startswith(ABSL_NOTICE):
        return level > 0
    match = CPP_LOG_LINE.match(line)
    return match is not None and SEVERITIES.index(match[1]) < level


def _stderr_holder():
    """A temporary file and a copy of descriptor 2, or None where either cannot be had."""
    try:
        held = tempfile.TemporaryFile()
    except OSError:
        return None
    try:
        return held, os.dup(2)
    except OSError:
        held.close()
        return None


@contextlib.contextmanager
def held_stderr(level: int):
    """Hold back file descriptor 2 inside the block, then write what it got minus the
    log lines :func:`hidden_log_line` hides at ``level`` (Python's own warnings and
    errors pass, in order). Where there is no descriptor 2 or temporary folder, nothing is held."""
    holder = _stderr_holder()
    if holder is None:
        yield
        return
    held, saved = holder
    sys.stderr.flush()
    os.dup2(held.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        held.seek(0)
        lines = held.read().decode(errors="replace").splitlines(keepends=True)
        held.close()
        sys.stderr.write("".join(line for line in lines if not hidden_log_line(line, level)))
        sys.stderr.flush()


def import_backend(modules=("keras",), verbose=False):
    """Import ``modules`` (Keras, and so its backend, first) with the backends' load-time
    log lines held back unless ``verbose``; installed ones only, each once."""
    missing = [m for m in modules if m not in sys.modules and importlib.util.find_spec(m) is not None]
    if not missing:
        return
    if not verbose:
        os.environ.setdefault(LOG_LEVEL_VARIABLE, DEFAULT_LOG_LEVEL)
    with contextlib.nullcontext() if verbose else held_stderr(log_level()):
        for module in missing:
            importlib.import_module(module)


# ------------------------------------------------------------------ backend choice


def _loaded_backend():
    """The backend of the Keras already imported in this process, or None."""
    keras = sys.modules.get("keras")
    backend = getattr(keras, "backend", None)
    return backend.backend() if backend is not None and hasattr(backend, "backend") else None


def _rerun_with_backend(argv, backend):
    """Run ``cnnclassics argv`` in a fresh interpreter whose Keras uses ``backend`` (only
    needed when :func:`main` is called in a process that imported another backend)."""
    env = {**os.environ, "KERAS_BACKEND": backend}
    try:
        return subprocess.call([sys.executable, "-m", "keras_cnnclassics.cli", *argv], env=env)
    except KeyboardInterrupt:
        print("cnnclassics: interrupted", file=sys.stderr)
        return 130


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.verbose = args.show_logs or getattr(args, "verbose", False)
    if args.backend:
        loaded = _loaded_backend()
        if loaded is not None and loaded != args.backend:
            return _rerun_with_backend(argv, args.backend)
        os.environ["KERAS_BACKEND"] = args.backend
    try:
        import_backend(("keras", *getattr(args, "backend_modules", lambda _: ())(args)), args.verbose)
        # Every command needs the models; importing them also registers the package's
        # layers for keras.saving.load_model (the package itself was imported before Keras).
        importlib.import_module("keras_cnnclassics.models")
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("cnnclassics: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - every error becomes one line unless --debug
        if args.debug:
            raise
        if isinstance(err, USER_ERRORS):
            print(f"cnnclassics {args.command}: error: {one_line(err)}", file=sys.stderr)
            return 2
        print(
            f"cnnclassics {args.command}: error: {type(err).__name__}: {one_line(err)} "
            "(unexpected; run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
