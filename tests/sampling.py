"""Which backend runs each sampled test case, and how that changes from run to run.

A *sampled* case runs on one Keras backend per run instead of all three. The backend
is the case's place in a cost-balanced base assignment, shifted by the run's rotation
number, so that consecutive rotations (0, 1, 2, ...) move every case to the next
backend: each case meets each of its backends within three consecutive runs, and the
shift keeps the measured load of the three processes as balanced as the base one.

The rotation number comes from ``CNNCLASSICS_TEST_ROTATION`` when set (to repeat a
run), else from the number of commits in the checkout (one more per commit), else
from the UTC date. Costs are the seconds measured per case in ``sampled_costs.json``
(``python tests/run.py --full --record-costs`` rewrites it).
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
UNMEASURED_SECONDS = 10.0


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
    """``{case key: {"seconds": s, "backends": [...]}}`` from ``path`` ({} if absent)."""
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)["cases"]


def cost(key: str, costs: dict) -> float:
    return float(costs.get(key, {}).get("seconds", UNMEASURED_SECONDS))


@functools.lru_cache(maxsize=None)
def _base_assignment(path: str = COSTS_FILE) -> dict[str, str]:
    return base_assignment(measured_costs(path))


def base_assignment(costs: dict) -> dict[str, str]:
    """Greedy longest-first balance of the measured cases over their backends (rotation 0)."""
    loads = dict.fromkeys(BACKENDS, 0.0)
    base = {}
    for key in sorted(costs, key=lambda k: (-cost(k, costs), k)):
        choices = tuple(costs[key].get("backends") or BACKENDS)
        pick = min(choices, key=lambda b: (loads[b], BACKENDS.index(b)))
        loads[pick] += cost(key, costs)
        base[key] = pick
    return base


def backend_for(key: str, turn: int, choices=BACKENDS, base: dict[str, str] | None = None) -> str:
    """The backend that runs sampled case ``key`` at rotation ``turn``."""
    base = _base_assignment() if base is None else base
    choices = tuple(choices)
    start = choices.index(base[key]) if base.get(key) in choices else zlib.crc32(key.encode()) % len(choices)
    return choices[(start + turn) % len(choices)]


def loads(cases: dict[str, tuple], turn: int, costs: dict, base: dict[str, str] | None = None) -> dict[str, float]:
    """Measured seconds each backend runs at rotation ``turn``; ``cases`` maps key -> choices."""
    total = dict.fromkeys(BACKENDS, 0.0)
    for key, choices in cases.items():
        total[backend_for(key, turn, choices, base)] += cost(key, costs)
    return total
