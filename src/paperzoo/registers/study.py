"""One pass of the artifact analysis (Darcet et al., arXiv 2309.16588, Sec. 2) over a set of images: norms per
layer, high-norm tokens, neighbour similarity, local/global information probes and [CLS] attention maps.

`study(model, images, ...)` works on our `VisionTransformer` (it needs `forward_with_attention`, `patch_embed`,
`blocks`, `num_prefix`); the building blocks in `analysis.py` work on any hookable ViT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from paperzoo.registers import analysis as A
from paperzoo.registers.model import VisionTransformer

MIN_TOKENS = 20  # fewer outlier tokens than this: too few to compare, the outlier numbers are NaN


@dataclass
class Study:
    """Everything measured on one model; tensors are kept for the figures."""

    grid: tuple[int, int]
    layer_norms: torch.Tensor  # (L, B, N) patch-token norms after each block, before the final norm
    norms: torch.Tensor  # (B, N) last block
    outliers: torch.Tensor  # (B, N) bool, norm > ratio x median
    threshold: float
    otsu: float
    layer_fraction: torch.Tensor  # (L,)
    neighbor_cos: torch.Tensor  # (B, N) after the patch embedding
    cls_maps: torch.Tensor  # (B, heads, rows, cols)
    values: dict[str, float] = field(default_factory=dict)


def _nan_if_few(n: int, compute) -> float:
    return compute() if n >= MIN_TOKENS else math.nan


def _probe_pair(tokens, targets, is_type, train_img, kind: str) -> tuple[float, int]:
    """Probe trained on tokens of one type in the training images, tested on that type in the test images.
    tokens (B, N, D), targets (B, N, ...) -> (score, number of test tokens)."""
    tr, te = is_type & train_img[:, None], is_type & ~train_img[:, None]
    xtr, ytr, xte, yte = tokens[tr], targets[tr], tokens[te], targets[te]
    if len(xtr) < MIN_TOKENS or len(xte) < MIN_TOKENS:
        return math.nan, len(xte)
    if kind == "position":
        return A.probe_accuracy(xtr, ytr, xte, yte), len(xte)
    return A.probe_mse(xtr, ytr, xte, yte), len(xte)


def _balanced(mask: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """A random subset of `count` True entries of `mask` (all of them if fewer)."""
    idx = torch.nonzero(mask.flatten()).squeeze(1)
    keep = idx[torch.randperm(len(idx), generator=torch.Generator().manual_seed(seed))[:count]]
    out = torch.zeros(mask.numel(), dtype=torch.bool)
    out[keep] = True
    return out.reshape(mask.shape)


def _probe(values: dict, tokens: torch.Tensor, cls: torch.Tensor, norms: torch.Tensor, outliers: torch.Tensor,
           pixels: torch.Tensor, labels: torch.Tensor | None, grid: tuple[int, int], max_probe_tokens: int,
           seed: int) -> None:
    """The linear probes, added to `values`: tokens (B, N, D), cls (B, D), norms and outliers (B, N), pixels
    (B, N, C*P*P), labels (B,) or None."""
    b, n = norms.shape
    has = outliers.any(1)  # (B,) the images with a high-norm token: both token types are probed on these only
    normal = ~outliers & has[:, None]
    n_out = int(outliers.sum())
    # local information (Table 1): probes per token type on equal numbers of tokens
    train_img = torch.arange(b) < b // 2
    count = min(max_probe_tokens, n_out) if n_out >= MIN_TOKENS else max_probe_tokens
    sample_normal = _balanced(normal, count, seed)
    positions = A.patch_positions(b, grid)
    for name, mask in (("normal", sample_normal), ("outlier", _balanced(outliers, count, seed))):
        values[f"position_acc_{name}"], _ = _probe_pair(tokens, positions, mask, train_img, "position")
        values[f"pixel_mse_{name}"], _ = _probe_pair(tokens, pixels, mask, train_img, "pixels")
    # global information (Fig. 5b): one token per image -> class, on the same images for every token type
    if labels is not None:
        gen = torch.Generator().manual_seed(seed)
        scores = torch.where(~outliers, torch.rand(b, n, generator=gen), torch.tensor(-1.0))
        normal_pick = tokens[torch.arange(b), scores.argmax(1)]  # a random normal token per image
        top_pick = tokens[torch.arange(b), norms.argmax(1)]  # the highest-norm token per image
        for name, feats in (("cls", cls), ("normal", normal_pick), ("outlier", top_pick)):
            tr, te = has & train_img, has & ~train_img
            values[f"class_acc_{name}"] = (A.probe_accuracy(feats[tr], labels[tr], feats[te], labels[te])
                                           if min(int(tr.sum()), int(te.sum())) >= MIN_TOKENS else math.nan)
        values["class_acc_topnorm"] = A.probe_accuracy(top_pick[train_img], labels[train_img],
                                                       top_pick[~train_img], labels[~train_img])


@torch.no_grad()
def study(model: VisionTransformer, images: torch.Tensor, raw: torch.Tensor | None = None,
          labels: torch.Tensor | None = None, ratio: float = 3.0, threshold: float | None = None,
          background_below: float = 0.02, probes: bool = True,
          max_probe_tokens: int = 3000, seed: int = 0, batch: int = 250) -> Study:
    """`images`: model inputs (B, C, H, W); `raw`: the same images in [0, 1] for the pixel probe and the
    background mask (default `images`); `labels`: (B,) classes for the single-token class probe (optional);
    `probes=False` leaves the linear probes (most of the cost) out.
    High-norm tokens: norm > `threshold` when given (the paper uses 150 for DINOv2 ViT-g), else > `ratio` x the
    median norm of the same layer."""
    model.eval()
    raw = images if raw is None else raw
    grid = model.patch_grid(images)
    p = model.num_prefix
    layer_norms, last, cls, embedded, maps = [], [], [], [], []
    for i in range(0, len(images), batch):
        x = images[i:i + batch]
        outs = A.block_outputs(model, x)
        layer_norms.append(torch.stack([o[:, p:].norm(dim=-1) for o in outs]))  # (L, b, N)
        feats, weights = model.forward_with_attention(x)
        last.append(feats["x_prenorm"][:, p:])  # (b, N, D)
        cls.append(feats["x_prenorm"][:, 0])
        embedded.append(model.patch_embed(x))  # (b, N, D) right after the patch embedding
        maps.append(A.cls_attention_maps(weights, p, grid))
    layer_norms = torch.cat(layer_norms, dim=1)  # (L, B, N)
    tokens, cls, embedded, maps = torch.cat(last), torch.cat(cls), torch.cat(embedded), torch.cat(maps)
    norms = tokens.norm(dim=-1)  # (B, N)
    if threshold is None:
        threshold = A.relative_threshold(norms, ratio)
        fractions = A.outlier_fraction_by_layer(layer_norms, ratio)
    else:
        fractions = (layer_norms > threshold).flatten(1).float().mean(1)
    outliers = norms > threshold
    normal = ~outliers
    cos = A.neighbor_cosine(embedded, grid)
    b, n = norms.shape
    n_out = int(outliers.sum())
    first = A.first_outlier_layer(fractions, 0.01)
    values = {
        "outlier_fraction": n_out / (b * n),
        "outlier_tokens": n_out,
        "images_with_outlier": int(outliers.any(1).sum()),
        "first_outlier_layer": -1 if first is None else first + 1,  # 1-based; -1 = none
        "norm_median": float(norms.median()),
        "norm_max": float(norms.max()),
        "max_over_median": float(norms.max() / norms.median()),
        "threshold": threshold,
        "otsu_threshold": A.otsu_threshold(norms),
        "neighbor_cos_normal": float(cos[normal].mean()),
        "neighbor_cos_outlier": _nan_if_few(n_out, lambda: float(cos[outliers].mean())),
    }
    pixels = A.patch_pixels(raw, model.patch_size)
    if probes:
        _probe(values, tokens, cls, norms, outliers, pixels, labels, grid, max_probe_tokens, seed)
    # [CLS] attention (Fig. 9): share on background patches and on high-norm patches
    background = pixels.mean(-1) < background_below  # (B, N)
    values["background_fraction"] = float(background.float().mean())
    if background.any():
        values["cls_attention_background"] = float(A.attention_mass(maps, background.reshape(b, *grid)).mean())
    values["cls_attention_outliers"] = float(A.attention_mass(maps, outliers.reshape(b, *grid)).mean())
    values["cls_attention_max"] = float(maps.mean(1).flatten(1).max(1).values.mean())
    return Study(grid, layer_norms, norms, outliers, threshold, values["otsu_threshold"], fractions, cos, maps,
                 values)
