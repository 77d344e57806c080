"""The test runner itself: rotation of sampled cases, the verdict, missing requirements."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv

import keras
import pytest

import run
import sampling
from conftest import SWEEP_GROUPS
from support.model_cases import REPRESENTATIVES

COSTS = sampling.measured_costs()
PLAN = sampling.base_plan(COSTS, SWEEP_GROUPS)
CHOICES = {key: tuple(entry.get("backends") or sampling.BACKENDS) for key, entry in COSTS.items()}
SWEEP = {key for key, entry in COSTS.items() if entry.get("sweep")}
UNMEASURED = {"a-case-without-a-measured-cost": sampling.BACKENDS, "another-one": ("torch", "tensorflow")}


def _where(key, turns, sweep):
    choices = CHOICES.get(key, UNMEASURED.get(key, sampling.BACKENDS))
    return [sampling.runs_on(key, turn, SWEEP_GROUPS, choices, sweep, PLAN) for turn in turns], set(choices)


def test_every_sampled_case_but_the_sweep_meets_each_of_its_backends_within_three_runs():
    assert len(set(CHOICES) - SWEEP) > 20, "tests/sampled_costs.json holds the measured sampled cases"
    for start in (0, 1, 177, 739_949):
        for key in [*(set(CHOICES) - SWEEP), *UNMEASURED]:
            where, choices = _where(key, range(start, start + 3), sweep=False)
            assert set(where) == choices, (key, start, where)


def test_the_sweep_meets_each_case_once_in_a_group_of_runs_and_each_backend_in_three_groups():
    assert len(SWEEP) > 20
    for start in (0, 178):
        for key in [*SWEEP, *UNMEASURED]:
            where, choices = _where(key, range(start, start + 3 * SWEEP_GROUPS), sweep=True)
            here = [w for w in where if w in sampling.BACKENDS]
            assert set(here) == choices and len(here) == 3, (key, where)
            for window in range(3):  # once in every SWEEP_GROUPS consecutive runs
                runs = where[window * SWEEP_GROUPS:(window + 1) * SWEEP_GROUPS]
                assert sum(w in sampling.BACKENDS for w in runs) == 1, (key, runs)
            assert all(w.startswith("another run (sweep group ") for w in where if w not in sampling.BACKENDS)


def test_the_measured_load_stays_balanced_in_every_rotation():
    heavy = {key for key, entry in COSTS.items() if entry.get("heavy")}
    for turn in range(6):  # 2- and 3-backend cases repeat together every 6 runs
        full = {key: CHOICES[key] for key in heavy}  # in the full tier only heavy cases are sampled
        # Even is 1/3 each. One 1,000-layer export (two backends only) is a large share of a
        # group, and the backends run one after the other, so the total matters more.
        for cases, group in ((full, None), (CHOICES, turn % SWEEP_GROUPS)):  # full tier, default tier
            loads = sampling.loads(cases, turn, SWEEP_GROUPS, COSTS, PLAN, group)
            assert max(loads.values()) < 0.5 * sum(loads.values()), (turn, group, loads)


def _collect(turn, tmp_path):
    """What ``pytest --collect-only`` selects and samples on this backend at rotation ``turn``."""
    summary = tmp_path / f"summary-{turn}.json"
    env = {**os.environ, sampling.ROTATION_ENV: str(turn), "CNNCLASSICS_TEST_SUMMARY": str(summary)}
    env.pop("CNNCLASSICS_ALL_HEAVY", None), env.pop("CNNCLASSICS_FULL", None)
    subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
                    "tests/api/test_features.py"], cwd=run.ROOT, env=env, capture_output=True, timeout=300, check=True)
    with open(summary, encoding="utf-8") as handle:
        return json.load(handle)["sampled"]


def test_collection_runs_every_case_but_the_sweep_here_once_in_three_rotations(tmp_path):
    """The default tier as collected: each non-sweep case of a file lands on this backend in
    exactly one of three consecutive rotations; a sweep case in at most one."""
    here = keras.backend.backend()
    rotations = [_collect(turn, tmp_path) for turn in (176, 177, 178)]
    kinds = {case["why"] for case in rotations[0].values()}
    assert kinds == {"heavy", "sweep"}, kinds
    for nodeid, case in rotations[0].items():
        times_here = sum(r[nodeid]["runs_on"] == here for r in rotations)
        if case["why"] == "heavy":
            assert times_here == 1 and all(r[nodeid]["runs_on"] in sampling.BACKENDS for r in rotations), nodeid
        else:
            assert times_here <= 1, nodeid


def test_docs_name_exactly_the_representatives():
    with open(os.path.join(run.ROOT, "docs", "testing.md"), encoding="utf-8") as handle:
        text = handle.read()
    listed = text.split("<!-- representatives:", 1)[1].split("-->", 1)[1].split("<!-- /representatives -->")[0]
    assert sorted(name.strip() for name in listed.split(",")) == sorted(REPRESENTATIVES)


def test_the_rotation_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv(sampling.ROTATION_ENV, "74")
    assert sampling.rotation() == (74, f"from {sampling.ROTATION_ENV}")
    monkeypatch.setenv(sampling.ROTATION_ENV, "yesterday")
    with pytest.raises(ValueError, match="is not a whole number"):
        sampling.rotation()
    monkeypatch.delenv(sampling.ROTATION_ENV)
    turn, origin = sampling.rotation()
    assert turn > 0 and ("commits in HEAD" in origin or "UTC day" in origin)


def _summary(backend, ran=True, failed=0, skips=(), exit_code=0):
    counts = {"passed": 10, "failed": failed, "error": 0, "skipped": len(skips), "deselected": 3}
    return {"backend": backend, "ran": ran, "exit": exit_code, "wall": 61.0, "counts": counts,
            "skips": [{"nodeid": f"tests/t.py::{i}", "reason": reason, "kind": kind}
                      for i, (kind, reason) in enumerate(skips)]}


def test_a_backend_that_did_not_run_fails_the_run_and_is_never_counted_as_passed():
    ok, lines = run.verdict([_summary("tensorflow"), _summary("jax", ran=False, exit_code=4)], False)
    assert not ok
    assert "jax did not run to the end (pytest exit 4" in "\n".join(lines)
    assert lines[-1].startswith("FAILED") and "on tensorflow:" in lines[-1]


def test_the_closing_line_reports_counts_and_time():
    ok, lines = run.verdict([_summary(b) for b in run.BACKENDS], False)
    assert ok and lines[-1] == ("PASSED: 30 passed, 0 failed, 0 skipped, 9 deselected (sampled elsewhere or -k) "
                                "on tensorflow, jax, torch in 3 min 03 s")
    assert lines[1].split() == ["tensorflow", "10", "0", "0", "0", "3", "1", "min", "01", "s"]


def test_skips_fail_the_run_unless_declared_or_an_optional_reference():
    declared = ("declared", "Skipped: the PyTorch backend's bypass")
    missing = ("reference", "Skipped: reference missing: timm (ModuleNotFoundError: No module named 'timm')")
    other = ("other", "Skipped: something was not there")
    assert run.verdict([_summary("jax", skips=[declared, missing])], False)[0]
    assert not run.verdict([_summary("jax", skips=[declared, missing])], True)[0]
    ok, lines = run.verdict([_summary("jax", skips=[other])], False)
    assert not ok and "1 skips not declared by a skip mark (allowed 0)" in "\n".join(lines)


def test_the_test_extra_is_expanded_with_its_platform_markers():
    table = run.extras(os.path.join(run.ROOT, "pyproject.toml"))
    linux, mac = run.requirement_names("test", table, "linux"), run.requirement_names("test", table, "darwin")
    for name in ("pytest", "pytest-timeout", "hypothesis", "torch", "jax", "onnxruntime", "scikit-learn"):
        assert name in linux and name in mac
    assert "tensorflow-cpu" in linux and "tensorflow" not in linux
    assert "tensorflow" in mac and "tensorflow-cpu" not in mac


def test_without_pytest_the_runner_names_what_is_missing_and_runs_nothing(tmp_path):
    bare = tmp_path / "bare"
    venv.create(bare, with_pip=False)
    python = bare / ("Scripts" if os.name == "nt" else "bin") / "python"
    proc = subprocess.run([str(python), os.path.join(run.TESTS, "run.py")], capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 2
    assert "not installed: keras-cnnclassics (this package), " in proc.stderr and "pytest, " in proc.stderr
    assert 'pip install -e ".[test]"' in proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "NOT RUN: no test ran (missing requirements above)"
    assert "passed" not in proc.stdout + proc.stderr


def test_a_required_reference_that_is_missing_fails_instead_of_skipping():
    code = ("import sys; sys.path.insert(0, {tests!r}); from support import reference; import pytest\n"
            "try:\n    reference.require('no_such_reference_library')\n"
            "except BaseException as err:\n    print(type(err).__name__, err)\n")
    env = {**os.environ, "CNNCLASSICS_REQUIRE_REFERENCES": "1"}
    for required, outcome in (("1", "Failed"), ("", "Skipped")):
        env["CNNCLASSICS_REQUIRE_REFERENCES"] = required
        out = subprocess.run([sys.executable, "-c", code.format(tests=run.TESTS)], env=env,
                             capture_output=True, text=True, timeout=120).stdout
        assert out.startswith(f"{outcome} reference missing: no_such_reference_library (ModuleNotFoundError"), out
