"""Figures of the artifact analysis of Darcet et al. (arXiv 2309.16588, Sec. 2): norm histograms per layer, outlier
maps and [CLS] attention maps over images, neighbour-similarity histograms and the probes table as bars. Every
figure's `title` names the images it was measured on and how many."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from paperzoo import plotting


def norm_histograms(path: Path, studies: dict, title: str) -> Path:
    """One panel per layer, one histogram per model (log counts), patch-token norms before the final norm."""
    layers = next(iter(studies.values())).layer_norms.shape[0]
    cols = min(layers, 4)
    rows = math.ceil(layers / cols)
    fig, axes = plotting.figure(3 * cols, 2.3 * rows, ncols=cols, nrows=rows)
    axes = np.atleast_1d(axes).ravel()
    for layer in range(layers):
        ax = axes[layer]
        for name, s in studies.items():
            ax.hist(s.layer_norms[layer].flatten().numpy(), bins=60, alpha=0.55, label=name, log=True)
        ax.set(title=f"layer {layer + 1}", xlabel="token norm")
    for ax in axes[layers:]:
        ax.axis("off")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"patch-token norms per layer ({title})")
    return plotting.save(fig, path)


def outlier_fraction_curve(path: Path, studies: dict, title: str) -> Path:
    series = {name: (list(range(1, len(s.layer_fraction) + 1)), s.layer_fraction.tolist())
              for name, s in studies.items()}
    return plotting.curves(path, series, "layer", "fraction of patch tokens > 3x median norm",
                           f"high-norm tokens per layer ({title})")


def neighbor_cosine_hist(path: Path, s, title: str) -> Path:
    fig, ax = plotting.figure()
    ax.hist(s.neighbor_cos[~s.outliers].numpy(), bins=40, alpha=0.6, density=True, label="normal patches")
    if s.outliers.any():
        ax.hist(s.neighbor_cos[s.outliers].numpy(), bins=40, alpha=0.6, density=True, label="high-norm patches")
    ax.set(xlabel="cosine to the 4 neighbours after the patch embedding", ylabel="density",
           title=f"redundancy of high-norm patches ({title})")
    ax.legend()
    return plotting.save(fig, path)


def probe_bars(path: Path, values: dict, title: str) -> Path:
    panels = [("position_acc", "position probe accuracy"), ("pixel_mse", "pixel probe MSE"),
              ("class_acc", "class probe accuracy (1 token)")]
    fig, axes = plotting.figure(10, 3, ncols=3)
    for ax, (key, panel) in zip(axes[0], panels):
        names = [n for n in ("cls", "normal", "outlier") if f"{key}_{n}" in values]
        heights = [values[f"{key}_{n}"] for n in names]
        ax.bar(names, [0 if math.isnan(h) else h for h in heights], color=["C2", "C0", "C3"][-len(names):])
        for i, h in enumerate(heights):
            ax.text(i, 0 if math.isnan(h) else h, "n/a" if math.isnan(h) else f"{h:.3g}", ha="center", va="bottom")
        ax.set(title=panel)
    fig.suptitle(f"linear probes per token type ({title})")
    return plotting.save(fig, path)


def image_maps(path: Path, images: torch.Tensor, maps: dict[str, torch.Tensor], title: str) -> Path:
    """Rows = images; first column the image, then one heat map per named (B, rows, cols) map, upsampled and laid
    over the image; `title` says what was measured on how many images."""
    n = len(images)
    fig, axes = plotting.figure(2.1 * (1 + len(maps)), 2.1 * n, ncols=1 + len(maps), nrows=n)
    axes = np.atleast_2d(axes)
    for i in range(n):
        img = images[i].permute(1, 2, 0).numpy()
        img = img[..., 0] if img.shape[-1] == 1 else np.clip(img, 0, 1)
        h, w = img.shape[:2]
        axes[i, 0].imshow(img, cmap="gray", extent=(0, w, h, 0))
        axes[i, 0].set_title("image" if i == 0 else "")
        for j, (name, m) in enumerate(maps.items(), start=1):
            axes[i, j].imshow(img, cmap="gray", extent=(0, w, h, 0))
            axes[i, j].imshow(m[i].float().numpy(), cmap="inferno", alpha=0.6, extent=(0, w, h, 0),
                              interpolation="nearest")
            axes[i, j].set_title(name if i == 0 else "", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle(title, fontsize=8)
    return plotting.save(fig, path)
