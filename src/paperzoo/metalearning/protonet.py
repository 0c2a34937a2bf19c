"""Prototypical Networks (Snell, Swersky, Zemel, NeurIPS 2017, arXiv 1703.05175).

A class prototype is the mean embedding of its support examples (Eq. 1); a query's class distribution is the
softmax over negative squared Euclidean distances to the prototypes (Eq. 2); training minimises its negative log
probability of the true class over episodes (Eq. 3, Algorithm 1).

A batch of T episodes goes through the encoder one episode at a time, as in the authors' code (one episode per
step): batch norm then normalises each episode with its own statistics and updates the running statistics once per
episode, so T episodes in one batch train exactly as T episodes one after another would (same loss and gradient,
averaged). One pooled forward would mix the episodes' statistics.
"""

from __future__ import annotations

import torch
from torch import nn


def prototypes(support_emb: torch.Tensor, support_y: torch.Tensor, n_way: int) -> torch.Tensor:
    """Eq. 1: (..., S, D) embeddings and (..., S) labels in 0..n_way-1 -> (..., n_way, D) class means."""
    if support_emb.shape[:-1] != support_y.shape:
        raise ValueError(f"support embeddings {tuple(support_emb.shape)} and labels {tuple(support_y.shape)} differ")
    onehot = nn.functional.one_hot(support_y, n_way).to(support_emb.dtype)  # (..., S, N)
    counts = onehot.sum(-2)  # (..., N)
    if (counts == 0).any():
        raise ValueError("every class needs at least one support example")
    return onehot.transpose(-1, -2) @ support_emb / counts[..., None]  # (..., N, D)


def protonet_logits(support_emb: torch.Tensor, support_y: torch.Tensor, query_emb: torch.Tensor,
                    n_way: int) -> torch.Tensor:
    """Eq. 2: logits (..., Q, n_way) = -||f(x) - c_k||^2."""
    protos = prototypes(support_emb, support_y, n_way)  # (..., N, D)
    diff = query_emb[..., :, None, :] - protos[..., None, :, :]  # (..., Q, N, D)
    return -(diff**2).sum(-1)


class ProtoNet(nn.Module):
    """An embedding network used metrically; `forward` takes a batch of T episodes and returns query logits."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor) -> torch.Tensor:
        """support_x (T, S, C, H, W), support_y (T, S), query_x (T, Q, C, H, W) -> logits (T, Q, N)."""
        s = support_x.shape[1]
        n_way = int(support_y.max()) + 1
        episodes = torch.cat([support_x, query_x], 1)  # (T, S + Q, C, H, W)
        emb = torch.stack([self.encoder(episode) for episode in episodes])  # (T, S + Q, D): statistics per episode
        return protonet_logits(emb[:, :s], support_y, emb[:, s:], n_way)
