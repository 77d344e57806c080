#!/usr/bin/env python
"""How fast ``cnnclassics --help`` answers: the median of N runs of each command, as a table.

    python tools/cli_speed.py [--runs 10] [--command "cnnclassics list --names-only"]

Each run is a fresh process, timed from start to exit (Python's start-up included),
as a user's shell would time it. The console script ``cnnclassics`` is used where it
is on PATH, else ``python -m keras_cnnclassics.cli``.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import statistics
import subprocess
import sys
import time

DEFAULT_COMMANDS = ("cnnclassics --help", "cnnclassics train --help")


def executable(command: str) -> list[str]:
    """``command`` as argv, with ``cnnclassics`` resolved to the console script or ``-m``."""
    argv = shlex.split(command)
    if argv[0] == "cnnclassics":
        script = shutil.which("cnnclassics")
        argv[:1] = [script] if script else [sys.executable, "-m", "keras_cnnclassics.cli"]
    return argv


def time_runs(argv: list[str], runs: int) -> list[float]:
    """Wall-clock seconds of ``runs`` runs of ``argv`` (a failing run raises)."""
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
        seconds.append(time.perf_counter() - start)
    return seconds


def table(results: dict) -> str:
    """``{command: [seconds, ...]}`` as an aligned table of median, min and max."""
    width = max(len("command"), *map(len, results))
    lines = [f"{'command':<{width}}  runs  median s  min s  max s", "-" * (width + 30)]
    for command, seconds in results.items():
        lines.append(f"{command:<{width}}  {len(seconds):>4}  {statistics.median(seconds):>8.3f}  "
                     f"{min(seconds):>5.3f}  {max(seconds):>5.3f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="runs per command (default 10)")
    parser.add_argument("--command", action="append", dest="commands",
                        help=f"a command line to time (repeatable; default: {' and '.join(DEFAULT_COMMANDS)})")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    commands = args.commands or DEFAULT_COMMANDS
    print(table({command: time_runs(executable(command), args.runs) for command in commands}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
