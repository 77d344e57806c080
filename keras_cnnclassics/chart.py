"""The accuracy-vs-complexity chart of CS231n lecture 9 (after Canziani et al., 2016).

x = multiply-adds per image at the model's default input (log scale), y =
published ImageNet-1k top-1 accuracy, bubble area = parameters, one colour per
family, every point labelled. Only registry models with a published top-1
(``model_info(name)["top1"]``) appear. MACs come from the cached
``data/model_stats.json`` (see :mod:`keras_cnnclassics.stats`) or, for a model
missing there, from :func:`keras_cnnclassics.profile`.

    A. Canziani, A. Paszke, E. Culurciello. An Analysis of Deep Neural Network
    Models for Practical Applications. arXiv:1605.07678, 2016.
"""

from __future__ import annotations

import math
import os

from keras_cnnclassics.registry import all_specs, get_spec
from keras_cnnclassics.stats import load_stats

__all__ = ["complexity_chart", "chart_points"]

SOURCE_NOTE = (
    "top-1: published ImageNet-1k single-crop accuracy (torchvision's weight documentation, "
    "else the paper; see model_info(name)['top1_source']). MACs: keras_cnnclassics.profile at "
    "each model's default input (conv/dense multiply-adds). Bubble area ∝ parameters."
)
BUBBLE_POINTS2_PER_MPARAM = 6.0
SIZE_KEYS = (5_000_000, 25_000_000, 100_000_000)


def chart_points(names=None, stats=None) -> list[dict]:
    """``[{"name", "family", "params", "macs", "top1", "top1_source"}]`` of the charted models."""
    specs = all_specs() if names is None else [get_spec(n) for n in names]
    stats = load_stats() if stats is None else stats
    points = []
    for spec in specs:
        if spec.top1 is None:
            continue
        entry = stats.get(spec.name)
        if entry is None or entry["params"] != spec.params:
            from keras_cnnclassics.stats import compute_entry

            entry = compute_entry(spec.name)
        points.append(
            {
                "name": spec.name,
                "family": spec.family,
                "params": spec.params,
                "macs": entry["macs"],
                "top1": spec.top1,
                "top1_source": spec.top1_source,
            }
        )
    return points


def _bubble_area(params):
    return params / 1e6 * BUBBLE_POINTS2_PER_MPARAM


def _place_labels(ax, points, fontsize):
    """Label each point at the candidate offset that covers the fewest placed labels and bubbles.

    Works in points (1/72 inch): bubble areas are in points^2 and a label is
    about ``0.55 * fontsize`` points per character wide.
    """
    to_points = 72.0 / ax.figure.dpi
    centres = [
        tuple(v * to_points for v in ax.transData.transform((p["macs"] / 1e9, p["top1"])))
        for p in points
    ]
    radii = [math.sqrt(_bubble_area(p["params"]) / math.pi) for p in points]
    obstacles = [(x - r, y - r, x + r, y + r) for (x, y), r in zip(centres, radii)]
    directions = [(1, 0.3), (1, -0.3), (-1, 0.3), (-1, -0.3), (0, 1), (0, -1), (1, 1), (-1, 1), (1, -1),
                  (-1, -1)]
    for index in sorted(range(len(points)), key=lambda i: -points[i]["params"]):
        (x, y), radius, name = centres[index], radii[index], points[index]["name"]
        width, height = 0.55 * fontsize * len(name), fontsize
        best = None
        for gap in (3, 12, 24):
            for ux, uy in directions:
                dx, dy = ux * (radius + gap), uy * (radius * 0.7 + gap)
                left = x + dx - (width if ux < 0 else 0 if ux > 0 else width / 2)
                bottom = y + dy if dy > 0 else y + dy - height
                box = (left, bottom, left + width, bottom + height)
                others = obstacles[:index] + obstacles[index + 1 :]
                cost = sum(_overlap(box, other) for other in others)
                if best is None or cost < best[0]:
                    best = (cost, dx, dy, ux, box)
            if best[0] == 0:
                break
        _, dx, dy, ux, box = best
        obstacles.append(box)
        # A leader from the label's corner nearest the bubble to the bubble's edge.
        corner = (1.0 if ux < 0 else 0.0 if ux > 0 else 0.5, 0.0 if dy > 0 else 1.0)
        leader = dict(arrowstyle="-", linewidth=0.4, color="0.35", shrinkA=0, shrinkB=radius,
                      relpos=corner)
        ax.annotate(
            name, (points[index]["macs"] / 1e9, points[index]["top1"]), xytext=(dx, dy),
            textcoords="offset points", fontsize=fontsize, arrowprops=leader,
            ha="right" if ux < 0 else "left" if ux > 0 else "center",
            va="bottom" if dy > 0 else "top",
        )


def _overlap(a, b):
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return max(width, 0) * max(height, 0)


def complexity_chart(path, names=None, stats=None, title=None, dpi=150):
    """Draw the accuracy-vs-MACs bubble chart of ``names`` (default: all) to ``path``.

    Uses matplotlib's Agg canvas directly (no pyplot state, no display needed).
    Returns the list of charted points (see :func:`chart_points`).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    except ImportError as err:  # pragma: no cover - matplotlib is in the train/dev extras
        raise ImportError("complexity_chart needs matplotlib: pip install matplotlib") from err

    fmt = os.path.splitext(os.fspath(path))[1][1:].lower()
    if fmt not in FigureCanvasAgg.get_supported_filetypes():
        raise ValueError(
            f"complexity_chart: cannot write {os.fspath(path)!r}: its extension must be one of "
            f"{', '.join(sorted(FigureCanvasAgg.get_supported_filetypes()))}."
        )
    points = chart_points(names, stats)
    if not points:
        raise ValueError("complexity_chart: none of these models has a published top-1 accuracy.")
    fig = Figure(figsize=(13, 8), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    families = sorted({p["family"] for p in points})
    colours = {f: f"C{i % 10}" for i, f in enumerate(families)}
    for point in points:
        ax.scatter(
            point["macs"] / 1e9, point["top1"], s=_bubble_area(point["params"]),
            color=colours[point["family"]], alpha=0.45, edgecolors="black", linewidths=0.5,
        )
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("multiply-adds per image (G, log scale), default input size")
    ax.set_ylabel("ImageNet-1k top-1 accuracy (%)")
    ax.set_title(title or "Accuracy vs. operations; bubble area = parameters (CS231n lecture 9)")
    ax.grid(True, which="both", alpha=0.25)
    ax.margins(x=0.12, y=0.08)
    ax.autoscale_view()
    _place_labels(ax, points, fontsize=7)
    family_handles = [
        Line2D([], [], marker="o", linestyle="", color=colours[f], alpha=0.6, label=f) for f in families
    ]
    size_handles = [
        ax.scatter([], [], s=_bubble_area(n), color="grey", alpha=0.35, edgecolors="black",
                   label=f"{n // 1_000_000} M params")
        for n in SIZE_KEYS
    ]
    legend = ax.legend(handles=family_handles, title="family", loc="lower right", fontsize=8)
    ax.add_artist(legend)
    ax.legend(handles=size_handles, title="parameters", loc="upper left", fontsize=8,
              labelspacing=1.6, borderpad=1.0)
    fig.text(0.01, 0.005, SOURCE_NOTE, fontsize=7, wrap=True)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    from keras_cnnclassics.weights import atomic_path

    with atomic_path(path, overwrite=True) as tmp:  # a failed or killed write leaves the old chart
        fig.savefig(tmp, dpi=dpi, format=fmt)
    return points
