"""The report's evidence figures, drawn from the tests of each claim's criterion (see `paperzoo.criteria`):
- `seed_figure`: one claim's per-seed values, their interval and the criterion's threshold, one row per test;
- `forest_plot`: the overview, every test of every claim as one row (its measured effect with its interval against
  its threshold, coloured by verdict), each row on its own scale because the effects have different units.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.ticker import FuncFormatter, MaxNLocator

from paperzoo import plotting

# darker shades of the report's verdict colours, for marks on a white background
VERDICT_INK = {"reproduced": "#2e8b3d", "not_reproduced": "#d9731a", "inconclusive": "#6a5acd", "skipped": "#888888",
               "error": "#c0392b"}


def _limits(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    low, high = min(finite), max(finite)
    pad = 0.12 * (high - low) if high > low else 0.1 * max(abs(high), 1e-12)
    return low - pad, high + pad


def _draw_test(ax, test: dict, colour: str, show_seeds: bool) -> None:
    """One test on one axis: the interval as a bar, the estimate as a dot, the threshold as a dashed line and, where
    it lies elsewhere, the smallest effect of interest (`refute_at`) as a dotted one: a bar wholly short of it
    refutes the test."""
    interval = test["interval"]
    estimate, low, high = interval["estimate"], interval["low"], interval["high"]
    seeds = test["per_seed"] if show_seeds else []
    refute_at = test.get("refute_at")
    refute_at = None if refute_at is None or refute_at == test["threshold"] else refute_at
    ax.set_xlim(*_limits([estimate, low, high, test["threshold"], *seeds, *([refute_at] if refute_at is not None else [])]))
    if low is not None and high is not None:
        ax.plot([low, high], [0, 0], color=colour, lw=3, solid_capstyle="butt", alpha=0.6)
    else:
        ax.annotate("no interval", (estimate, 0), xytext=(6, 4), textcoords="offset points", fontsize=6, color="grey")
    if seeds:
        ax.scatter(seeds, [0.25] * len(seeds), s=12, color="black", zorder=3, label="one seed")
    ax.plot([estimate], [0], "o", color=colour, markersize=5, zorder=4)
    ax.axvline(test["threshold"], color="crimson", ls="--", lw=1)
    if refute_at is not None:
        ax.axvline(refute_at, color="dimgrey", ls=":", lw=1.2)
    ax.set_ylim(-0.5, 0.6)
    ax.set_yticks([])
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))  # 1e-05, not 1.0 with a lost offset
    ax.tick_params(axis="x", labelsize=6, pad=1)
    ax.grid(False)


def seed_figure(claim: dict, path: Path) -> Path:
    """Per-seed values (black dots), interval (bar) and threshold (red dashed line) of each test of one claim."""
    tests = claim["tests"]
    fig, axes = plotting.plt.subplots(len(tests), 1, figsize=(5.5, 0.75 * len(tests) + 0.5), squeeze=False)
    for ax, test in zip((row[0] for row in axes), tests):
        _draw_test(ax, test, VERDICT_INK[claim["verdict"]], show_seeds=True)
        ax.set_title(f"{test['label']} {test['direction']} {test['threshold']:.4g} "
                     f"({len(test['per_seed'])} seeds, {test['interval']['method']} interval)", fontsize=7, loc="left")
    return plotting.save(fig, path)


def forest_plot(claims: list[dict], path: Path) -> Path | None:
    """Every decided test of every claim, one row each; None when no claim has a test."""
    rows = [(c, t) for c in claims for t in c.get("tests", [])]
    if not rows:
        return None
    fig, axes = plotting.plt.subplots(len(rows), 1, figsize=(9.5, 0.3 * len(rows) + 0.9), squeeze=False)
    for ax, (claim, test) in zip((row[0] for row in axes), rows):
        _draw_test(ax, test, VERDICT_INK[claim["verdict"]], show_seeds=False)
        label = f"{claim['id']}: {test['label']} {test['direction']} {test['threshold']:.3g}"
        ax.text(-0.02, 0.5, label if len(label) < 78 else label[:76] + "…", transform=ax.transAxes, ha="right",
                va="center", fontsize=6.5, color=VERDICT_INK[claim["verdict"]])
    handles = [axes[0][0].plot([], [], "o", color=ink)[0] for ink in VERDICT_INK.values()]
    fig.legend(handles, [v.replace("_", " ") for v in VERDICT_INK], loc="upper center", ncol=5, fontsize=7,
               frameon=False)
    fig.subplots_adjust(left=0.5, right=0.98, top=1 - 0.55 / fig.get_figheight(), bottom=0.3 / fig.get_figheight(),
                        hspace=1.1)
    fig.savefig(path)
    plotting.plt.close(fig)
    return Path(path)
