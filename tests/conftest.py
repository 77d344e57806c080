"""Shared test configuration: backend, sampling of the expensive cases, summaries.

The Keras backend is fixed when keras is imported, so the suite runs once per
backend in its own process (``python tests/run.py`` does that). Expensive cases are
*sampled*: each runs on one backend per run, chosen by ``sampling.py`` (a measured,
cost-balanced assignment that rotates from run to run), so across the three
processes every sampled case runs once. Which cases are sampled depends on the tier:

* default: cases marked ``heavy`` or ``slow``, or measured at ``SLOW_SECONDS`` or
  more in ``sampled_costs.json`` (never the ``CONTRACT`` tests), run on one backend
  each, every run -- except the *sweep* (``heavy(..., sweep=True)``: the per-model
  cases of the models outside ``model_cases.REPRESENTATIVES``), of which one of
  ``SWEEP_GROUPS`` cost-balanced groups runs per run;
* ``--full`` (``CNNCLASSICS_FULL=1``): every heavy case, sweep included, each on one
  backend; all other cases on every backend;
* ``--all-heavy`` (``CNNCLASSICS_ALL_HEAVY=1``): no sampling, everything runs here.

The session header says which rotation this is and what runs where; the deselection
is reported in the summary, never silent.
"""

from __future__ import annotations

import json
import math
import os
import time

try:
    import resource  # CPU time of finished child processes; not on Windows
except ImportError:
    resource = None

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Before Keras loads TensorFlow: turns oneDNN on where the user has not chosen, as the package
# does for its users, so channels_first runs on CPUs whose TensorFlow leaves oneDNN off.
import keras_cnnclassics.backend_support  # noqa: E402,F401
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from support import reference  # noqa: E402
import sampling  # noqa: E402

BACKENDS = sampling.BACKENDS
# In the default tier an unmarked case measured at this many seconds or more (on its
# slowest backend) runs on one backend per run, like a heavy one.
SLOW_SECONDS = 20.0
# The default tier runs one group of the sweep per run, cycling through all in this
# many runs; prime to 2 and 3, so a case's group and its backend (of 2 or 3) cycle
# independently.
SWEEP_GROUPS = 7
# Every model's contract runs on every backend in every tier, however long it takes.
CONTRACT = ("tests/models/test_constructor_contract.py::", "tests/models/test_every_model.py::test_parameter_count_is_exact[")
assert math.gcd(SWEEP_GROUPS, 6) == 1
SUMMARY_ENV = "CNNCLASSICS_TEST_SUMMARY"  # where tests/run.py asks for the JSON summary
STATE = pytest.StashKey[dict]()


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def pytest_addoption(parser):
    group = parser.getgroup("cnnclassics")
    group.addoption("--full", action="store_true", default=_flag("CNNCLASSICS_FULL"),
                    help="full tier: only cases marked heavy are sampled; the rest runs on every backend")
    group.addoption("--all-heavy", action="store_true", default=_flag("CNNCLASSICS_ALL_HEAVY"),
                    help="run every sampled case on this backend instead of sampling")
    group.addoption("--require-references", action="store_true", default=reference.references_required(),
                    help="a missing or broken torch/torchvision/timm fails its tests instead of skipping them")


def pytest_configure(config):
    if not config.pluginmanager.hasplugin("timeout"):
        raise pytest.UsageError('pytest-timeout is not installed (the per-test time limit): pip install -e ".[test]"')
    if config.getoption("--require-references"):
        os.environ[reference.REQUIRE_ENV] = "1"
    turn, origin = sampling.rotation()
    config.stash[STATE] = {"turn": turn, "origin": origin, "sampled": {}, "durations": {}, "cpu": {},
                           "skips": [], "start": time.time()}


def pytest_report_header(config):
    state = config.stash[STATE]
    tier = "full" if config.getoption("--full") else "default"
    mode = "none (--all-heavy)" if config.getoption("--all-heavy") else "one backend each"
    return [
        f"keras {keras.__version__}, backend {keras.backend.backend()}, tier {tier}, sampled cases: {mode}",
        f"rotation {state['turn']} ({state['origin']}); repeat it with {sampling.ROTATION_ENV}={state['turn']}",
        f"references: {reference.versions_line()}; required: {config.getoption('--require-references')}",
    ]


def sampled_choices(item, full: bool, costs: dict) -> tuple[str, tuple, str] | None:
    """``(key, backends, why)`` when ``item`` is sampled in this tier, else None; ``why``
    is "sweep", "heavy", "slow" or "measured"."""
    marker = item.get_closest_marker("heavy")
    if marker is not None:
        key = marker.args[0] if marker.args else item.nodeid
        return key, tuple(marker.kwargs.get("backends", BACKENDS)), "sweep" if marker.kwargs.get("sweep") else "heavy"
    if full:
        return None
    if item.get_closest_marker("slow") is not None:
        return item.nodeid, BACKENDS, "slow"
    if costs.get(item.nodeid, {}).get("seconds", 0.0) >= SLOW_SECONDS and not item.nodeid.startswith(CONTRACT):
        return item.nodeid, BACKENDS, "measured"
    return None


def pytest_collection_modifyitems(config, items):
    state, costs = config.stash[STATE], sampling.measured_costs()
    full, everything = config.getoption("--full"), config.getoption("--all-heavy")
    backend, keep, drop = keras.backend.backend(), [], []
    for item in items:
        sampled = sampled_choices(item, full, costs)
        if sampled is None:
            keep.append(item)
            continue
        key, choices, why = sampled
        runs_on = backend if everything else sampling.runs_on(
            key, state["turn"], SWEEP_GROUPS, choices, sweep=why == "sweep" and not full)
        state["sampled"][item.nodeid] = {"key": key, "backends": list(choices), "runs_on": runs_on, "why": why}
        (keep if runs_on == backend else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_collection_finish(session):
    """Print, under the header, how the sampled cases are spread over the backends."""
    state, costs = session.config.stash[STATE], sampling.measured_costs()
    if not state["sampled"]:
        return
    where = {}
    for case in state["sampled"].values():
        where.setdefault(case["runs_on"], {})[case["key"]] = sampling.cost(case["key"], costs)
    here = keras.backend.backend()
    group = "" if session.config.getoption("--full") else f", sweep group {state['turn'] % SWEEP_GROUPS + 1} of {SWEEP_GROUPS}"
    lines = [f"sampled cases (rotation {state['turn']}{group}; seconds as measured in sampled_costs.json):"]
    for name, cases in sorted(where.items(), key=lambda kv: (kv[0] not in BACKENDS, kv[0])):
        lines.append(f"  {name}: {len(cases)} cases, ~{sum(cases.values()):.0f} s" + (" <- this run" if name == here else ""))
    lines.append(f"  here: {', '.join(sorted(where.get(here, {}))) or 'none'}")
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("\n".join(lines))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Measure each test's wall and CPU seconds (this process and its waited-for children)."""
    start_wall, start_cpu = time.perf_counter(), _cpu_seconds()
    try:
        return (yield)
    finally:
        state = item.config.stash[STATE]
        state["durations"][item.nodeid] = round(time.perf_counter() - start_wall, 3)
        state["cpu"][item.nodeid] = round(_cpu_seconds() - start_cpu, 3)


def _cpu_seconds() -> float:
    if resource is None:
        return time.process_time()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Record every skip with its reason and kind (declared by a mark, missing reference, other)."""
    report = yield
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        item.config.stash[STATE]["skips"].append(
            {"nodeid": item.nodeid, "reason": reason, "kind": skip_kind(item, reason)})
    return report


def skip_kind(item, reason: str) -> str:
    if reference.MISSING in reason:
        return "reference"
    declared = [m.kwargs.get("reason", m.args[1] if len(m.args) > 1 else "") for m in item.iter_markers("skipif")]
    declared += [m.kwargs.get("reason", m.args[0] if m.args else "") for m in item.iter_markers("skip")]
    return "declared" if any(text and text in reason for text in declared) else "other"


def pytest_sessionfinish(session, exitstatus):
    """Write the JSON summary tests/run.py reads (only when it asks for one)."""
    path = os.environ.get(SUMMARY_ENV)
    if not path:
        return
    state = session.config.stash.get(STATE, None) or {}
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    stats = reporter.stats if reporter is not None else {}
    counts = {kind: len(stats.get(kind, [])) for kind in
              ("passed", "failed", "error", "skipped", "deselected", "xfailed", "xpassed")}
    summary = {"backend": keras.backend.backend(), "exitstatus": int(exitstatus), "counts": counts,
               "seconds": round(time.time() - state.get("start", time.time()), 1),
               **{k: state.get(k) for k in ("turn", "origin", "sampled", "durations", "cpu", "skips")}}
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(summary, handle)
    os.replace(path + ".tmp", path)


@pytest.fixture(autouse=True, scope="module")
def _release_memory_between_modules():
    """Free what a test module's models leave behind: on JAX the process grows by a few
    hundred MB per compiled model within a module (tests/tools/test_convert.py: about 8 GB)."""
    yield
    keras.utils.clear_session(free_memory=True)
    if keras.backend.backend() == "jax":
        import jax

        jax.clear_caches()


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    keras.config.set_dtype_policy("float32")
    keras.config.set_image_data_format("channels_last")
    keras.utils.clear_session(free_memory=False)
    yield
    keras.config.set_dtype_policy("float32")
    keras.config.set_image_data_format("channels_last")


@pytest.fixture
def rng():
    return np.random.default_rng(0)
