"""Run the test suite once per Keras backend (the backend is fixed at import).

    python tests/run.py                 # tensorflow, jax, torch in turn
    python tests/run.py --backends jax  # one backend
    python tests/run.py -- -k vgg -x    # arguments after -- go to pytest

Prints each backend's pytest output, then one closing line with the totals.
Exits non-zero if any backend failed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

BACKENDS = ("tensorflow", "jax", "torch")
COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|deselected|xfailed|xpassed)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated backends")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()
    totals, failed_backends = {}, []
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for backend in args.backends.split(","):
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
        start = time.time()
        print(f"\n===== backend: {backend} =====", flush=True)
        # One temporary folder per backend, deleted when that backend passed: saved
        # models and exports of every registry model must not pile up across the three runs.
        basetemp = tempfile.mkdtemp(prefix=f"cnnclassics-tests-{backend}-")
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={basetemp}",
             *args.pytest_args],
            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        last_lines = []
        for line in proc.stdout:
            print(line, end="", flush=True)
            last_lines = (last_lines + [line])[-5:]
        code = proc.wait()
        for count, kind in COUNT.findall("".join(last_lines)):
            kind = "errors" if kind.startswith("error") else kind
            totals[kind] = totals.get(kind, 0) + int(count)
        print(f"===== {backend}: exit {code} in {time.time() - start:.0f} s =====", flush=True)
        if code != 0:
            failed_backends.append(backend)
            print(f"temporary files of the failed tests kept in {basetemp}")
        else:
            shutil.rmtree(basetemp, ignore_errors=True)
    failed = totals.get("failed", 0) + totals.get("errors", 0)
    if failed_backends:
        print(f"backends with failures: {', '.join(failed_backends)}")
    print(f"sampled out on the other backends: {totals.get('deselected', 0)} heavy cases")
    skipped = f", {totals['skipped']} skipped" if totals.get("skipped") else ""
    print(f"{totals.get('passed', 0)} passed, {failed} failed{skipped}")
    return 1 if failed_backends else 0


if __name__ == "__main__":
    sys.exit(main())
