"""The artifact analysis of "Vision Transformers Need Registers" (Darcet et al., ICLR 2024, arXiv 2309.16588,
Sec. 2), for our ViT and for any ViT whose blocks can be hooked.

  block_outputs            per-block output tokens through forward hooks (any model, any list of blocks)
  relative_threshold,      high-norm detection: a fixed multiple of the median norm (the paper's fixed 150 sits at
  otsu_threshold             ~3x the bulk of DINOv2 ViT-g's norms), or Otsu's split of the bimodal log-norm histogram
  outlier_fraction_by_layer, first_outlier_layer   where outliers appear (Fig. 4a)
  neighbor_cosine          cosine of each patch to its 4 neighbours after the patch embedding (Fig. 5a)
  probe_accuracy, probe_mse   linear probes (from paperzoo.engine.probes): position / class, pixels (Table 1, Fig. 5b)
  patch_pixels, patch_positions   the probe targets
  cls_attention_maps, attention_mass   last-layer [CLS] attention over patches, prefix tokens dropped (Fig. 2, 9)
Norms are measured before the final LayerNorm, as in the paper.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from paperzoo.engine.probes import probe_accuracy, probe_mse  # noqa: F401  (part of this toolkit)


def block_outputs(model: nn.Module, x: torch.Tensor, blocks: list[nn.Module] | None = None) -> list[torch.Tensor]:
    """Run `model(x)` and return the output tokens (B, N, D) of each block in `blocks` (default `model.blocks`).
    A block returning a tuple contributes its first element; a sequence-first block (N, B, D) must be transposed
    by the caller."""
    blocks = list(model.blocks if blocks is None else blocks)
    if not blocks:
        raise ValueError("no blocks to hook: pass the model's transformer blocks")
    outputs: list[torch.Tensor] = []

    def keep(_module, _inputs, output):
        outputs.append((output[0] if isinstance(output, tuple) else output).detach())

    handles = [block.register_forward_hook(keep) for block in blocks]
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def relative_threshold(norms: torch.Tensor, ratio: float = 3.0) -> float:
    """`ratio` times the median norm."""
    return float(ratio * norms.float().median())


def otsu_threshold(norms: torch.Tensor, bins: int = 256) -> float:
    """Otsu's threshold of the log-norm histogram: the split maximising the between-class variance, i.e. the
    valley of a bimodal histogram (normal tokens vs high-norm tokens)."""
    values = torch.log(norms.float().flatten().clamp_min(1e-12))
    if values.numel() < 2 or values.max() == values.min():
        raise ValueError("otsu_threshold needs at least two distinct norms")
    hist = torch.histc(values, bins=bins, min=float(values.min()), max=float(values.max())).double()
    edges = torch.linspace(float(values.min()), float(values.max()), bins + 1, dtype=torch.float64)
    centers = (edges[:-1] + edges[1:]) / 2
    weight_low = hist.cumsum(0)  # tokens at or below each bin
    weight_high = hist.sum() - weight_low
    mean_low = (hist * centers).cumsum(0) / weight_low.clamp_min(1e-12)
    mean_high = ((hist * centers).sum() - (hist * centers).cumsum(0)) / weight_high.clamp_min(1e-12)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(math.exp(edges[int(between.argmax()) + 1]))


def outlier_fraction_by_layer(layer_norms: torch.Tensor, ratio: float = 3.0) -> torch.Tensor:
    """(L, ...) norms of the patch tokens per layer -> (L,) fraction above `ratio` x that layer's median."""
    flat = layer_norms.flatten(1).float()  # (L, tokens)
    return (flat > ratio * flat.median(dim=1, keepdim=True).values).float().mean(dim=1)


def first_outlier_layer(fractions: torch.Tensor, min_fraction: float) -> int | None:
    """Index of the first layer whose outlier fraction reaches `min_fraction`, or None."""
    hits = torch.nonzero(fractions >= min_fraction)
    return int(hits[0]) if len(hits) else None


def neighbor_cosine(patch_tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, rows*cols, D) row-major patch tokens -> (B, rows*cols) mean cosine similarity of each patch to its
    up/down/left/right neighbours (border patches average over the neighbours they have)."""
    rows, cols = grid
    b, n, d = patch_tokens.shape
    if n != rows * cols:
        raise ValueError(f"{n} patch tokens do not fill a {rows}x{cols} grid")
    unit = nn.functional.normalize(patch_tokens.float(), dim=-1).reshape(b, rows, cols, d)  # (B, rows, cols, D)
    total = torch.zeros(b, rows, cols)
    count = torch.zeros(rows, cols)
    vertical = (unit[:, 1:] * unit[:, :-1]).sum(-1)  # (B, rows-1, cols): cosine of each vertical pair
    horizontal = (unit[:, :, 1:] * unit[:, :, :-1]).sum(-1)  # (B, rows, cols-1)
    total[:, 1:] += vertical
    total[:, :-1] += vertical
    total[:, :, 1:] += horizontal
    total[:, :, :-1] += horizontal
    count[1:] += 1
    count[:-1] += 1
    count[:, 1:] += 1
    count[:, :-1] += 1
    return (total / count.clamp_min(1)).reshape(b, n)


def patch_pixels(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, C*P*P) pixels of each patch, patches in row-major order (as the patch embedding)."""
    b, c, h, w = images.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {p}")
    patches = images.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)  # (B, h/p, w/p, C, p, p)
    return patches.reshape(b, (h // p) * (w // p), c * p * p)


def patch_positions(batch: int, grid: tuple[int, int]) -> torch.Tensor:
    """(B, N) index of each patch in the row-major grid: the position probe's classes."""
    return torch.arange(grid[0] * grid[1]).expand(batch, -1)


def cls_attention_maps(attention: torch.Tensor, num_prefix: int, grid: tuple[int, int]) -> torch.Tensor:
    """(B, heads, N, N) attention weights -> (B, heads, rows, cols) attention of [CLS] (token 0) to the patches.
    The [CLS] and register columns (the first `num_prefix` tokens) are dropped and each map renormalised to sum 1,
    so maps with and without registers are comparable."""
    if attention.dim() != 4 or attention.shape[-1] != attention.shape[-2]:
        raise ValueError(f"expected attention weights (B, heads, N, N), got shape {tuple(attention.shape)}")
    rows, cols = grid
    if attention.shape[-1] != num_prefix + rows * cols:
        raise ValueError(f"{attention.shape[-1]} tokens != {num_prefix} prefix tokens + {rows}x{cols} patches")
    to_patches = attention[:, :, 0, num_prefix:]  # (B, heads, rows*cols)
    to_patches = to_patches / to_patches.sum(-1, keepdim=True).clamp_min(1e-12)
    return to_patches.reshape(*to_patches.shape[:2], rows, cols)  # (B, heads, rows, cols)


def attention_mass(maps: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """(B, heads, rows, cols) normalised maps and a (B, rows, cols) boolean region -> (B,) head-averaged share of
    the attention that falls in the region."""
    return (maps.mean(1) * region.float()).flatten(1).sum(1)
