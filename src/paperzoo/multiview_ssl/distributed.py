"""Contrastive negatives from the whole global batch under data parallelism (DDP, torchrun).

The contrastive objective of Tsai et al., "Self-supervised Learning from a Multi-view Perspective" (ICLR 2021,
arXiv:2006.05576, Eq. 1; InfoNCE in the SimCLR form, Chen et al. 2020, arXiv 2002.05709, Sec. 2.1) scores each
view against every other view of the batch. With W ranks each holding B pairs, the batch is the global W*B pairs, so
each rank needs the other ranks' embeddings, and their gradients must flow back to the ranks that computed them.

`dist.all_gather` returns tensors without an autograd history: a loss built on them sends no gradient to the other
ranks' embeddings, so every rank misses the part of the gradient that comes from being a negative (or a positive)
in the other ranks' losses. `gather_with_grad` keeps that path: its backward sums the gradient of the gathered
tensor over all ranks and gives each rank its own slice.

Why the scaling is right. Let L = (1 / 2N) sum_i l_i be the InfoNCE of the global batch (N = W*B pairs, 2N views)
and L_r = (1 / 2B) sum_{i in rank r} l_i the loss of rank r's anchors against all views (`info_nce_global`). Then
mean_r L_r = L. For an embedding z_j computed on rank q, dL/dz_j = (1/W) sum_r dL_r/dz_j. Rank r's autograd graph
holds dL_r/d(gathered); the all-reduce in the backward makes rank q receive sum_r dL_r/dz_j for its own rows, so
its local backward yields g_q = sum_{j on q} (sum_r dL_r/dz_j) dz_j/dtheta. DDP then averages g_q over the W
ranks: (1/W) sum_q g_q = sum_j dL/dz_j dz_j/dtheta = dL/dtheta, the single-process gradient of L on the global
batch. (Without the all-reduce, g_q would hold only dL_q/dz_j, and the average would miss the cross-rank terms.)
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from paperzoo.multiview_ssl.losses import _check_pair, info_nce


def _world() -> tuple[int, int]:
    """(rank, world size) of the default process group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _GatherWithGrad(torch.autograd.Function):
    """(B, ...) on every rank -> (W*B, ...) in rank order; backward: all-reduce (sum), then this rank's slice."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        rank, world = _world()
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = slice(rank * x.shape[0], (rank + 1) * x.shape[0])
        return torch.cat(parts, 0)  # (W*B, ...)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()  # all_reduce works in place; autograd's buffer is not ours to change
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rows]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All ranks' (B, ...) tensors concatenated in rank order, (W*B, ...), with gradients flowing back to every
    rank; `x` itself without a process group (or with one rank). Every rank must pass the same shape."""
    _, world = _world()
    if world == 1:
        return x
    shape = torch.tensor(x.shape, device=x.device)
    parts = [torch.empty_like(shape) for _ in range(world)]
    dist.all_gather(parts, shape)  # a tensor, not all_gather_object: no pickling in every step
    shapes = [tuple(p.tolist()) for p in parts]
    if len(set(shapes)) > 1:
        raise ValueError(f"gather_with_grad needs the same shape on every rank, got {shapes} (rank order); "
                         "use equal per-rank batches (train.drop_last=true)")
    return _GatherWithGrad.apply(x)


def info_nce_global(z_x: torch.Tensor, z_s: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """This rank's share of the SimCLR InfoNCE of the global batch: its B pairs' 2B views as anchors, against all
    2*W*B views of all ranks. The mean over ranks equals `info_nce` of the global batch, and under DDP (which
    averages gradients over ranks) the gradients equal the single-process ones (see the module docstring).
    Without a process group, or with one rank, it is `info_nce(z_x, z_s, temperature)`."""
    rank, world = _world()
    if world == 1:
        return info_nce(z_x, z_s, temperature)
    if z_x.dim() != 2 or z_x.shape != z_s.shape:
        _check_pair(z_x, z_s)  # raises the shape error
    b, d = z_x.shape
    both = gather_with_grad(torch.cat([z_x, z_s], 1))  # (W*B, 2D): one collective for the two views
    all_x, all_s = both[:, :d], both[:, d:]  # (W*B, D) each
    return info_nce(all_x, all_s, temperature, anchors=range(rank * b, (rank + 1) * b))
