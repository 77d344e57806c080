"""Cached per-model statistics (params, MACs) and the model table of docs/models.md.

Profiling all registry models takes minutes (several have more than 100 M
parameters), so their MACs at the default input are cached in
``keras_cnnclassics/data/model_stats.json``, written by ``python tools/model_table.py
--update-stats``. The cache cannot drift unnoticed: tests check that every
registry model has an entry whose params equal the registry's, that the cached
MACs equal :func:`keras_cnnclassics.profile`'s (heavy models sampled per
backend), and that docs/models.md's table is exactly :func:`model_table_markdown`.

Published accuracies are not cached here: they live in each model's registry
entry (``top1``, ``top1_source``) next to the family code.
"""

from __future__ import annotations

import json
import os
import re
import shutil

from keras_cnnclassics.registry import all_specs, get_spec

__all__ = [
    "STATS_PATH",
    "load_stats",
    "compute_entry",
    "stale_names",
    "update_stats",
    "model_table_markdown",
    "update_readme",
    "short_citation",
]

STATS_PATH = os.path.join(os.path.dirname(__file__), "data", "model_stats.json")
TABLE_START = "<!-- model-table:start -->"
TABLE_END = "<!-- model-table:end -->"
CONVENTION = (
    "macs: multiply-adds of conv/dense layers at the default input_shape, batch 1 "
    "(keras_cnnclassics.profile); params: PyTorch's count"
)


def load_stats(path=STATS_PATH) -> dict:
    """``{name: {"params", "macs", "input_shape"}}`` from the cache (empty if absent)."""
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)["models"]


def compute_entry(name) -> dict:
    """Profile ``name`` at its default input; the cache entry."""
    from keras_cnnclassics.profiler import profile

    spec = get_spec(name)
    result = profile(name)
    return {
        "params": result.total_params,
        "macs": result.total_macs,
        "input_shape": list(spec.input_shape),
    }


def stale_names(stats) -> list[str]:
    """Registry models whose cache entry is missing or disagrees with the registry."""
    return [
        spec.name
        for spec in all_specs()
        if spec.name not in stats
        or stats[spec.name]["params"] != spec.params
        or tuple(stats[spec.name]["input_shape"]) != tuple(spec.input_shape)
    ]


def update_stats(names=None, path=STATS_PATH, force=False, log=None) -> list[str]:
    """Recompute stale (or ``names``, or with ``force`` all) entries; returns those updated.

    Entries of models no longer in the registry are dropped. The file is written
    atomically with sorted keys, so its diff shows exactly what changed.
    """
    stats = load_stats(path)
    registered = {spec.name for spec in all_specs()}
    if names is None:
        names = sorted(registered) if force else stale_names(stats)
    else:
        names = [get_spec(n).name for n in names]
    failures = []
    for name in names:
        if log:
            log(f"profiling {name} ...")
        try:
            stats[name] = compute_entry(name)
        except ValueError as err:  # keep going; report every failing model at the end
            failures.append(f"{name}: {err}")
    _write_stats(path, {n: stats[n] for n in sorted(stats) if n in registered})
    if failures:
        raise ValueError("could not profile " + " | ".join(failures))
    return list(names)


def _write_stats(path, stats):
    """One model per line, sorted, so the file's diff shows exactly what changed."""
    entries = ",\n".join(f"  {json.dumps(n)}: {json.dumps(stats[n], sort_keys=True)}" for n in stats)
    _write_text(path, f'{{\n "convention": {json.dumps(CONVENTION)},\n "models": {{\n{entries}\n }}\n}}\n')


def _write_text(path, text):
    """Atomically replace ``path`` with ``text``, keeping a readable mode (0644 or the old one)."""
    from keras_cnnclassics.weights import atomic_path

    with atomic_path(path, overwrite=True) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        if os.path.exists(path):
            shutil.copymode(path, tmp)
        else:
            os.chmod(tmp, 0o644)


_AUTHOR = re.compile(r"^(?:[A-Z]\.(?:-?[A-Z]\.)*\s)+(?P<surname>[^\s,][^,]*)$")


def short_citation(paper: str) -> str:
    """"Simonyan & Zisserman", "Krizhevsky et al.", or the source's first words."""
    text = paper.split(" After ")[0]
    match = re.search(r"(?<=\w\w)\.\s", text)
    head = text[: match.start()] if match else text
    authors = [a.strip() for a in head.split(",")]
    surnames = [m.group("surname") for m in map(_AUTHOR.match, authors) if m]
    if len(surnames) != len(authors):
        return re.split(r"\s\(|,", head)[0].strip()
    if len(surnames) == 1:
        return surnames[0]
    if len(surnames) == 2:
        return " & ".join(surnames)
    return f"{surnames[0]} et al."


def _human(value) -> str:
    """4 significant digits with a G/M/K suffix: 15.47 G, 714.2 M."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if value >= scale:
            return f"{value / scale:#.4g}".rstrip(".") + f" {suffix}"
    return str(value)


def _shape(shape) -> str:
    return "x".join(str(d) for d in shape)


def model_table_markdown(stats=None) -> str:
    """The model table of docs/models.md: every registry model, from the registry and the cache."""
    stats = load_stats() if stats is None else stats
    missing = stale_names(stats)
    if missing:
        raise ValueError(
            "model_stats.json lacks or disagrees with the registry for "
            f"{', '.join(missing)}; run `python tools/model_table.py --update-stats`."
        )
    lines = [
        "| model | paper | year | params | MACs | input | reference | top-1 (%) |",
        "|---|---|---:|---:|---:|---|---|---:|",
    ]
    for spec in all_specs():
        entry = stats[spec.name]
        reference = f"`{spec.reference}`" if spec.reference else "-"
        top1 = f"{spec.top1:.2f}" if spec.top1 is not None else "-"
        lines.append(
            f"| `{spec.name}` | {short_citation(spec.paper)} | {spec.year} | {spec.params:,} | "
            f"{_human(entry['macs'])} | {_shape(spec.input_shape)} | {reference} | {top1} |"
        )
    lines += [
        "",
        f"{len(lines) - 2} models. MACs: multiply-adds of conv/dense layers at the default input "
        "(`kc.profile(name)`; what torchvision and the papers call FLOPs). Top-1: published "
        "single-crop ImageNet-1k accuracy, each with its source in "
        "`kc.model_info(name)['top1_source']`. Printed by `cnnclassics table`.",
    ]
    return "\n".join(lines) + "\n"


def _table_span(text, path):
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"{path}: no {TABLE_START} ... {TABLE_END} markers.")
    return start + len(TABLE_START), end


def readme_table(path) -> str:
    """The text between the model-table markers of ``path`` (markers excluded)."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    start, end = _table_span(text, path)
    return text[start:end].strip("\n") + "\n"


def update_readme(path, stats=None, check=False) -> bool:
    """Replace the table between the model-table markers of ``path``.

    Returns True if the file changed (with ``check``: would change; nothing is
    written).
    """
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    start, end = _table_span(text, path)
    new = text[:start] + "\n" + model_table_markdown(stats) + text[end:]
    if new != text and not check:
        _write_text(path, new)
    return new != text
