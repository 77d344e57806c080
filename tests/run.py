"""Run the test suite once per Keras backend (the backend is fixed at import).

    python tests/run.py                        # default tier: tensorflow, jax, torch in turn
    python tests/run.py --require-references   # as CI runs it: a missing reference fails
    python tests/run.py --full                 # full tier: every heavy case once
    python tests/run.py --backends jax         # one backend
    python tests/run.py -- -k vgg -x           # arguments after -- go to pytest

Tiers (tests/conftest.py): the default tier runs every case on every backend except the
expensive ones (marked heavy or slow, or measured at 20 s or more), which run on one
backend each, rotating from run to run; --full runs only the heavy ones that way.

Before anything runs it checks that everything the tests import is installed (the "test"
extra) and says what is missing. At the end it prints a table per backend (passed, failed,
errors, skipped, deselected, time) and one closing line; it exits non-zero when a backend
failed or did not run, when a required reference was missing, or when more tests skipped
than the suite declares (see ALLOWED_OTHER_SKIPS).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

BACKENDS = ("tensorflow", "jax", "torch")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
INSTALL_TEST = 'pip install -e ".[test]"'
INSTALL_REFERENCES = "pip install --no-deps -r tests/requirements-reference.txt"
# Skips that are neither declared by a skip/skipif mark (a case that does not apply to a
# backend) nor a missing reference: a rise beyond this, per backend, fails the run.
ALLOWED_OTHER_SKIPS = 0
REFERENCE_WORDS = re.compile(r"\b(torch|torchvision|timm)\b")
COUNTS = ("passed", "failed", "error", "skipped", "deselected")
# Names of distributions that provide another's modules (tensorflow-cpu vs tensorflow).
ALTERNATIVES = {"tensorflow-cpu": ("tensorflow", "tf-nightly", "tensorflow-macos"),
                "tensorflow": ("tensorflow-cpu", "tf-nightly", "tensorflow-macos")}


# ------------------------------------------------------------------ requirements
def extras(pyproject: str) -> dict[str, list[str]]:
    """``[project.optional-dependencies]`` of ``pyproject`` (no TOML parser needed)."""
    with open(pyproject, encoding="utf-8") as handle:
        text = handle.read()
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    found = re.findall(r"^([\w-]+)\s*=\s*\[(.*?)\]\s*$", section, flags=re.M | re.S)
    return {name: re.findall(r'"([^"]+)"', body) for name, body in found}


def requirement_names(extra: str, table: dict[str, list[str]], platform: str = sys.platform) -> list[str]:
    """Distribution names ``extra`` installs on ``platform``, self-references expanded."""
    names = []
    for requirement in table[extra]:
        spec, _, marker = requirement.partition(";")
        name = re.match(r"[A-Za-z0-9_.-]+", spec.strip()).group(0)
        if not _marker_holds(marker, platform):
            continue
        if name == "keras-cnnclassics":
            for inner in re.search(r"\[(.*)\]", spec).group(1).split(","):
                names += requirement_names(inner.strip(), table, platform)
        else:
            names.append(name)
    return list(dict.fromkeys(names))


def _marker_holds(marker: str, platform: str) -> bool:
    """Evaluates the ``sys_platform == / != '...'`` markers used in pyproject.toml."""
    match = re.search(r"sys_platform\s*(==|!=)\s*['\"]([\w.-]+)['\"]", marker)
    if match is None:
        return True
    return (platform == match.group(2)) == (match.group(1) == "==")


def installed(name: str) -> bool:
    for candidate in (name, *ALTERNATIVES.get(name, ())):
        try:
            importlib.metadata.distribution(candidate)
            return True
        except importlib.metadata.PackageNotFoundError:
            continue
    return False


def reference_problems() -> list[str]:
    """Pinned references (tests/requirements-reference.txt) missing or at another version."""
    with open(os.path.join(TESTS, "requirements-reference.txt"), encoding="utf-8") as handle:
        pins = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", handle.read(), flags=re.M)
    problems = []
    for name, version in pins:
        try:
            found = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed (pinned {version})")
            continue
        if found != version:
            problems.append(f"{name} {found} is installed, pinned {version}")
    return problems


def check_requirements(require_references: bool) -> bool:
    """Print what is missing and how to install it; False when the tests cannot run."""
    missing = [name for name in requirement_names("test", extras(os.path.join(ROOT, "pyproject.toml")))
               if not installed(name)]
    if importlib.util.find_spec("keras_cnnclassics") is None:
        missing.insert(0, "keras-cnnclassics (this package)")
    if missing:
        print(f"cannot run the tests: not installed: {', '.join(missing)}\n"
              f"install what the tests need (in this environment, {sys.executable}):\n    {INSTALL_TEST}\n"
              "(on a machine without a GPU, install torch's CPU wheel first: see README)", file=sys.stderr)
        return False
    problems = reference_problems()
    if problems and require_references:
        print(f"references required but {'; '.join(problems)}\ninstall the pinned ones:\n    {INSTALL_REFERENCES}",
              file=sys.stderr)
        return False
    if problems:
        print(f"note: {'; '.join(problems)}: the parity checks that need them skip "
              f"(install: {INSTALL_REFERENCES})", flush=True)
    return True


# ------------------------------------------------------------------ one backend
def run_backend(backend: str, args, extra_args: list[str]) -> dict:
    """Run pytest for ``backend``; returns its summary (``ran`` False if it did not finish)."""
    basetemp = tempfile.mkdtemp(prefix=f"cnnclassics-tests-{backend}-")
    summary_path = os.path.join(basetemp, "summary.json")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1",
           "MPLBACKEND": os.environ.get("MPLBACKEND", "Agg"), "CNNCLASSICS_TEST_SUMMARY": summary_path}
    if args.require_references:
        env["CNNCLASSICS_REQUIRE_REFERENCES"] = "1"
    tier = ["--full"] if args.full else []
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--basetemp={basetemp}/t",
               "--durations=25", *tier, *(["--all-heavy"] if args.all_heavy else []), *extra_args]
    print(f"\n===== backend: {backend} =====\n{' '.join(command)}", flush=True)
    start = time.time()
    code = subprocess.call(command, cwd=ROOT, env=env)
    summary = {"backend": backend, "exit": code, "wall": time.time() - start, "ran": False}
    if os.path.exists(summary_path):
        with open(summary_path, encoding="utf-8") as handle:
            summary.update(json.load(handle), ran=code in (0, 1, 5))
    print(f"===== {backend}: pytest exit {code} in {_minutes(summary['wall'])} =====", flush=True)
    if code == 0:
        shutil.rmtree(basetemp, ignore_errors=True)
    else:
        print(f"temporary files of the failed tests kept in {basetemp}", flush=True)
    return summary


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


# ------------------------------------------------------------------ verdict
def skip_problems(summary: dict, require_references: bool) -> list[str]:
    """Why this backend's skips fail the run (empty when they do not)."""
    skips = summary.get("skips") or []
    other = [s for s in skips if s["kind"] == "other"]
    problems = []
    if len(other) > ALLOWED_OTHER_SKIPS:
        shown = "; ".join(f"{s['nodeid']}: {s['reason']}" for s in other[:5])
        problems.append(f"{len(other)} skips not declared by a skip mark (allowed {ALLOWED_OTHER_SKIPS}): {shown}")
    if require_references:
        ref = [s for s in skips if s["kind"] == "reference" or REFERENCE_WORDS.search(s["reason"])]
        if ref:
            problems.append(f"{len(ref)} skips for a reference although references are required: "
                            f"{ref[0]['nodeid']}: {ref[0]['reason']}")
    return problems


def verdict(summaries: list[dict], require_references: bool) -> tuple[bool, list[str]]:
    """(passed, lines): the table per backend and the closing line."""
    lines = [f"{'backend':<11}{'passed':>8}{'failed':>8}{'errors':>8}{'skipped':>9}{'deselected':>12}   time"]
    problems, totals = [], dict.fromkeys(COUNTS, 0)
    for s in summaries:
        if not s["ran"]:
            lines.append(f"{s['backend']:<11}{'did not run to the end (pytest exit ' + str(s['exit']) + ')':>45}"
                         f"   {_minutes(s['wall'])}")
            problems.append(f"{s['backend']} did not run to the end (pytest exit {s['exit']}, see its output)")
            continue
        counts = s["counts"]
        lines.append(f"{s['backend']:<11}" + "".join(f"{counts[k]:>{w}}" for k, w in zip(COUNTS, (8, 8, 8, 9, 12)))
                     + f"   {_minutes(s['wall'])}")
        for k in COUNTS:
            totals[k] += counts[k]
        if counts["failed"] or counts["error"]:
            problems.append(f"{s['backend']}: {counts['failed']} failed, {counts['error']} errors")
        problems += [f"{s['backend']}: {p}" for p in skip_problems(s, require_references)]
    ran = [s for s in summaries if s["ran"]]
    if ran and sum(totals[k] for k in ("passed", "failed", "error", "skipped")) == 0:
        problems.append("no test was selected on any backend")
    kinds = {}
    for s in ran:
        for skip in s.get("skips") or []:
            kinds[skip["kind"]] = kinds.get(skip["kind"], 0) + 1
    lines.append("skips: " + (", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "none")
                 + " (declared: a skip mark says the case does not apply to that backend)")
    elapsed = _minutes(sum(s["wall"] for s in summaries))
    names = ", ".join(s["backend"] for s in ran) or "no backend"
    if problems:
        lines += [f"problem: {p}" for p in problems]
        lines.append(f"FAILED: {len(problems)} problem(s) above; of what ran on {names}: {totals['passed']} passed, "
                     f"{totals['failed']} failed, {totals['error']} errors, {totals['skipped']} skipped in {elapsed}")
        return False, lines
    lines.append(f"PASSED: {totals['passed']} passed, 0 failed, {totals['skipped']} skipped, "
                 f"{totals['deselected']} deselected (sampled elsewhere or -k) on {names} in {elapsed}")
    return True, lines


# ------------------------------------------------------------------ costs
def record_costs(summaries: list[dict], path: str) -> None:
    """Rewrite the measured seconds of sampled and slow cases (tests/sampled_costs.json)."""
    sys.path.insert(0, TESTS)
    import sampling
    from conftest import SLOW_SECONDS

    cases = dict(sampling.measured_costs(path))
    measured: dict[str, dict] = {}
    for s in summaries:
        sampled = s.get("sampled") or {}
        for nodeid, seconds in (s.get("durations") or {}).items():
            case = sampled.get(nodeid, {"key": nodeid, "backends": list(BACKENDS), "why": ""})
            entry = measured.setdefault(case["key"], {"backends": case["backends"], "by_backend": {},
                                                      "heavy": case["why"] in ("heavy", "sweep"),
                                                      "sweep": case["why"] == "sweep"})
            entry["by_backend"][s["backend"]] = entry["by_backend"].get(s["backend"], 0.0) + seconds
    for key, entry in measured.items():
        seconds = max(entry["by_backend"].values())
        if key in cases or entry["heavy"] or seconds >= SLOW_SECONDS:
            cases[key] = {"seconds": round(seconds, 1), "backends": entry["backends"], "heavy": entry["heavy"],
                          "sweep": entry["sweep"]}
    payload = {"about": "seconds per sampled or slow test case on its slowest backend, written by "
                        "python tests/run.py --record-costs; read by tests/sampling.py",
               "cases": dict(sorted(cases.items()))}
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=1)
        handle.write("\n")
    os.replace(path + ".tmp", path)
    print(f"measured seconds of {len(cases)} cases written to {path}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated backends")
    parser.add_argument("--full", action="store_true", help="the full tier: every heavy case once (on one backend)")
    parser.add_argument("--all-heavy", action="store_true", help="run every sampled case on every backend")
    parser.add_argument("--require-references", action="store_true",
                        help="a missing torch/torchvision/timm fails instead of skipping (CI)")
    parser.add_argument("--record-costs", action="store_true",
                        help="write the measured seconds per case to tests/sampled_costs.json")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
    if not check_requirements(args.require_references):
        print("NOT RUN: no test ran (missing requirements above)")
        return 2
    summaries = [run_backend(b, args, args.pytest_args) for b in backends]
    ok, lines = verdict(summaries, args.require_references)
    print("\n===== summary =====\n" + "\n".join(lines), flush=True)
    if args.record_costs:
        record_costs([s for s in summaries if s["ran"]], os.path.join(TESTS, "sampled_costs.json"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
