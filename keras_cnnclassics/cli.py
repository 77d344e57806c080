"""The ``cnnclassics`` command line: thin subcommands over the package's functions.

Each subcommand lives in ``keras_cnnclassics/commands/<name>.py`` and exposes
``register(subparsers)``, which adds its parser and sets ``func(args) -> int``.
Errors are one readable line on stderr and a non-zero exit code; ``--debug``
shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Subcommand modules, in the order ``--help`` lists them.
COMMAND_MODULES = ["list", "info", "convert", "bench", "profile", "chart", "table", "train", "evaluate", "predict", "export"]


class CommandError(Exception):
    """An error whose message is shown to the user as-is (exit code 2)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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


def _select_backend(argv):
    """Honour ``--backend`` before Keras is imported (the backend is fixed at import)."""
    for i, arg in enumerate(argv):
        if arg == "--backend" and i + 1 < len(argv):
            os.environ["KERAS_BACKEND"] = argv[i + 1]
        elif arg.startswith("--backend="):
            os.environ["KERAS_BACKEND"] = arg.split("=", 1)[1]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _select_backend(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("cnnclassics: interrupted", file=sys.stderr)
        return 130
    except (CommandError, ValueError, FileNotFoundError, FileExistsError, PermissionError, OSError) as err:
        if args.debug:
            raise
        message = " ".join(str(err).split())
        print(f"cnnclassics {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
