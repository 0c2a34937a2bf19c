"""Figures for reports: matplotlib on the Agg backend (no screen), one consistent look."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams.update({"figure.dpi": 110, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
                     "axes.spines.right": False, "font.size": 9})


def figure(width: float = 5.0, height: float = 3.2, ncols: int = 1, nrows: int = 1):
    """(fig, axes) sized in inches."""
    return plt.subplots(nrows, ncols, figsize=(width, height), squeeze=nrows * ncols == 1)


def save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def curves(path: Path, series: dict[str, tuple[list, list]], xlabel: str, ylabel: str, title: str = "",
           logy: bool = False) -> Path:
    """One line per named (x, y) series."""
    fig, ax = figure()
    for name, (x, y) in series.items():
        ax.plot(x, y, label=name, marker="o" if len(x) < 12 else None, markersize=3)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if logy:
        ax.set_yscale("log")
    if len(series) > 1:
        ax.legend()
    return save(fig, path)
