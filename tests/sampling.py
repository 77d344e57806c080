"""Which backend runs each sampled test case, and how that changes from run to run.

A *sampled* case runs on one Keras backend per run instead of all three. Each case has
a place in a base plan, balanced by the seconds measured per case
(``sampled_costs.json``): a backend and, for *sweep* cases, one of ``groups``
groups. A run's rotation number ``turn`` shifts every case to the backend ``turn``
places further along its list, so consecutive rotations (0, 1, 2, ...) take each case
to each of its backends within three runs, and the shift keeps the measured load as
balanced as the base plan. Every sampled case but the sweep runs in every run of the
default tier, so it meets each of its backends within three runs; the sweep runs
group ``turn % groups`` only, so it meets every sweep case once in ``groups`` runs
(and each of its backends within ``3 * groups``: ``groups`` is prime to 2 and 3).

The rotation number comes from ``CNNCLASSICS_TEST_ROTATION`` when set (to repeat a
run), else from the number of commits in the checkout (one more per commit), else
from the UTC date. ``python tests/run.py --full --record-costs`` rewrites the costs.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import subprocess
import zlib

BACKENDS = ("tensorflow", "jax", "torch")
ROTATION_ENV = "CNNCLASSICS_TEST_ROTATION"
HERE = os.path.dirname(os.path.abspath(__file__))
COSTS_FILE = os.path.join(HERE, "sampled_costs.json")
# A case without a measured cost counts as this many seconds in the balance.
UNMEASURED_SECONDS = 15.0


def rotation() -> tuple[int, str]:
    """The run's rotation number and where it came from (for the session header)."""
    value = os.environ.get(ROTATION_ENV, "").strip()
    if value:
        if not value.lstrip("-").isdigit():
            raise ValueError(f"{ROTATION_ENV}={value!r} is not a whole number; set it to the rotation "
                             "printed in the header of the run to repeat, e.g. 74")
        return int(value), f"from {ROTATION_ENV}"
    commits = _git("rev-list", "--count", "HEAD")
    if commits and commits.isdigit():
        return int(commits), f"commits in HEAD {_git('rev-parse', '--short=12', 'HEAD')}"
    today = datetime.datetime.now(datetime.timezone.utc).date()
    return today.toordinal(), f"UTC day {today.isoformat()}"


def _git(*args) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


@functools.lru_cache(maxsize=None)
def measured_costs(path: str = COSTS_FILE) -> dict:
    """``{case key: {"seconds": s, "backends": [...], "heavy": bool, "sweep": bool}}`` ({} if no file)."""
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)["cases"]


def cost(key: str, costs: dict) -> float:
    return float(costs.get(key, {}).get("seconds", UNMEASURED_SECONDS))


def _choices(entry: dict) -> tuple:
    return tuple(entry.get("backends") or BACKENDS)


def base_plan(costs: dict, groups: int) -> dict[str, tuple[int | None, str]]:
    """Greedy longest-first balance at rotation 0: ``{key: (group or None, backend)}``.

    Every case but the sweep (group None) runs in every run of the default tier; each
    sweep case goes to the least-loaded group. Backends are balanced among the cases of
    a group that share a list of backends, then among all that share it: such a set
    moves together at each rotation, so its load stays as balanced in every rotation
    as in this plan.
    """
    by_group = [0.0] * groups
    by_set = {}  # (backend list, group or "all", backend) -> seconds
    plan = {}
    for key in sorted(costs, key=lambda k: (-cost(k, costs), k)):
        choices, seconds = _choices(costs[key]), cost(key, costs)
        group = min(range(groups), key=lambda g: (by_group[g], g)) if costs[key].get("sweep") else None
        backend = min(choices, key=lambda b: (by_set.get((choices, group, b), 0.0),
                                              by_set.get((choices, "all", b), 0.0), BACKENDS.index(b)))
        for scope in (group, "all"):
            by_set[(choices, scope, backend)] = by_set.get((choices, scope, backend), 0.0) + seconds
        if group is not None:
            by_group[group] += seconds
        plan[key] = (group, backend)
    return plan


@functools.lru_cache(maxsize=None)
def _default_plan(groups: int) -> dict:
    return base_plan(measured_costs(), groups)


def placement(key: str, turn: int, groups: int, choices=BACKENDS, plan: dict | None = None) -> tuple[int, str]:
    """``(group, backend)`` of sampled case ``key`` at rotation ``turn``."""
    plan = _default_plan(groups) if plan is None else plan
    choices = tuple(choices)
    group, backend = plan.get(key, (None, None))
    digest = zlib.crc32(key.encode())
    start = choices.index(backend) if backend in choices else digest % len(choices)
    return (digest % groups if group is None else group), choices[(start + turn) % len(choices)]


def runs_on(key: str, turn: int, groups: int, choices=BACKENDS, sweep: bool = False,
            plan: dict | None = None) -> str:
    """The backend that runs sampled case ``key`` at rotation ``turn`` in a run that takes
    one group of the sweep (a sweep case of another group says which run takes it)."""
    group, backend = placement(key, turn, groups, choices, plan)
    if sweep and group != turn % groups:
        return f"another run (sweep group {group + 1} of {groups})"
    return backend


def loads(cases: dict[str, tuple], turn: int, groups: int, costs: dict, plan: dict,
          sweep_group: int | None = None) -> dict[str, float]:
    """Measured seconds per backend at rotation ``turn``; ``cases`` maps key -> choices.
    With ``sweep_group``, sweep cases of other groups are left out (the default tier)."""
    total = dict.fromkeys(BACKENDS, 0.0)
    for key, choices in cases.items():
        group, backend = placement(key, turn, groups, choices, plan)
        if sweep_group is None or not costs.get(key, {}).get("sweep") or group == sweep_group:
            total[backend] += cost(key, costs)
    return total
