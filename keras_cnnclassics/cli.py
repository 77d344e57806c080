"""The ``cnnclassics`` command line: thin subcommands over the package's functions.

Each subcommand lives in ``keras_cnnclassics/commands/<name>.py`` and exposes
``register(subparsers)``, which adds its parser and sets ``func(args) -> int``.
Errors are one readable line on stderr and a non-zero exit code (2 for a bad
input, 1 for anything unexpected); ``--debug`` shows the traceback. Usage errors
(unknown flags, bad choices) are one line too, pointing at ``--help``.

The package imports Keras when it is imported, so by the time :func:`main` runs
the backend is fixed: ``--backend X`` for another backend than the loaded one
runs the command again in a fresh interpreter with ``KERAS_BACKEND=X``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys

# Subcommand modules, in the order ``--help`` lists them.
COMMAND_MODULES = ["list", "info", "convert", "bench", "profile", "chart", "table", "train", "evaluate", "predict", "export"]


class CommandError(Exception):
    """An error whose message is shown to the user as-is (exit code 2)."""


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
    (``--backend X``, ``--debug``) first, wherever they were given, then ``command`` and the rest."""
    leading, rest, args = [], [], iter(argv)
    for arg in args:
        if arg == "--backend":
            leading += [arg, next(args, "")]
        elif arg.startswith("--backend=") or arg == "--debug":
            leading.append(arg)
        else:
            rest.append(arg)
    return [*leading, command, *rest]


def _loaded_backend():
    """The backend of the Keras already imported in this process, or None."""
    keras = sys.modules.get("keras")
    backend = getattr(keras, "backend", None)
    return backend.backend() if backend is not None and hasattr(backend, "backend") else None


def _rerun_with_backend(argv, backend):
    """Run ``cnnclassics argv`` in a fresh interpreter whose Keras uses ``backend``."""
    env = {**os.environ, "KERAS_BACKEND": backend}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return subprocess.call([sys.executable, "-m", "keras_cnnclassics.cli", *argv], env=env)
    except KeyboardInterrupt:
        print("cnnclassics: interrupted", file=sys.stderr)
        return 130


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Quiets TensorFlow's Python-side logging where Keras is not imported yet (worker
    # processes inherit it). The C++ lines printed when TensorFlow's libraries load
    # ("All log messages before absl::InitializeLog()", oneDNN) ignore it.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.backend:
        loaded = _loaded_backend()
        if loaded is not None and loaded != args.backend:
            return _rerun_with_backend(argv, args.backend)
        os.environ["KERAS_BACKEND"] = args.backend
    try:
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
