"""Capsule layers of "Dynamic Routing Between Capsules" (Sabour, Frosst & Hinton, NeurIPS 2017, arXiv 1710.09829).

  squash          Eq. 1: v = |s|^2 / (1 + |s|^2) * s / |s|, guarded so that s = 0 gives 0 with a finite gradient
  margin_loss     Eq. 4: L_k = T_k max(0, m+ - |v_k|)^2 + lambda (1 - T_k) max(0, |v_k| - m-)^2
  dynamic_routing Procedure 1 (Eq. 2-3): coupling c = softmax over the parents of logits b (zero per example),
                  s_j = sum_i c_ij u_hat_j|i, v_j = squash(s_j), b_ij += u_hat_j|i . v_j
  PrimaryCaps     Sec. 4: a convolution whose channels are grouped into 8D capsules, squashed
  DigitCaps       Sec. 4: u_hat_j|i = W_ij u_i for every child i and parent j (one einsum), then routing
  Decoder         Sec. 4.1 / Fig. 2: the parent capsules, all but one masked to zero, -> FC 512-1024-H*W sigmoid
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def squash(s: torch.Tensor, dim: int = -1, eps: float = 1e-8) -> torch.Tensor:
    """Eq. 1 along `dim`. Written as s * |s| / (1 + |s|^2) with |s| = sqrt(|s|^2 + eps): no NaN at s = 0."""
    squared = (s * s).sum(dim, keepdim=True)
    norm = torch.sqrt(squared + eps)
    return s * (norm / (1.0 + squared))


def margin_loss(lengths: torch.Tensor, targets: torch.Tensor, m_plus: float = 0.9, m_minus: float = 0.1,
                lambda_: float = 0.5) -> torch.Tensor:
    """Eq. 4 summed over classes, averaged over the batch.

    lengths: (B, J) capsule lengths; targets: (B,) class indices or (B, J) 0/1 presence (several digits at once).
    """
    if targets.dim() == 1:
        targets = F.one_hot(targets, lengths.shape[1]).to(lengths.dtype)  # (B, J)
    if targets.shape != lengths.shape:
        raise ValueError(f"targets {tuple(targets.shape)} do not match lengths {tuple(lengths.shape)}")
    present = targets * F.relu(m_plus - lengths) ** 2
    absent = lambda_ * (1.0 - targets) * F.relu(lengths - m_minus) ** 2
    return (present + absent).sum(1).mean()


def dynamic_routing(u_hat: torch.Tensor, iterations: int = 3, return_coupling: bool = False):
    """Routing by agreement (Procedure 1). u_hat: (B, N_children, J_parents, D) predictions.

    Returns v (B, J, D), and with `return_coupling` also the coupling coefficients c (B, N, J) of every iteration
    as a list. The softmax runs over the parents (dim 2): each child distributes itself among the parents.
    """
    if u_hat.dim() != 4:
        raise ValueError(f"u_hat must be (batch, children, parents, dim), got shape {tuple(u_hat.shape)}")
    if iterations < 1:
        raise ValueError(f"routing needs at least 1 iteration, got {iterations}")
    logits = u_hat.new_zeros(u_hat.shape[:3])  # (B, N, J): b_ij = 0 for every example
    couplings = []
    for r in range(iterations):
        c = logits.softmax(dim=2)  # (B, N, J), sums to 1 over the parents
        couplings.append(c)
        v = squash(torch.einsum("bnj,bnjd->bjd", c, u_hat))  # (B, J, D)
        if r < iterations - 1:
            logits = logits + torch.einsum("bnjd,bjd->bnj", u_hat, v)  # agreement u_hat . v
    return (v, couplings) if return_coupling else v


class PrimaryCaps(nn.Module):
    """Conv (kernel 9, stride 2) with `types * dim` channels -> (B, types*H'*W', dim) squashed capsules."""

    def __init__(self, in_channels: int = 256, types: int = 32, dim: int = 8, kernel: int = 9, stride: int = 2):
        super().__init__()
        self.types, self.dim = types, dim
        self.conv = nn.Conv2d(in_channels, types * dim, kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)  # (B, types*dim, H', W')
        b, _, h, w = out.shape
        out = out.view(b, self.types, self.dim, h, w).permute(0, 1, 3, 4, 2)  # (B, types, H', W', dim)
        return squash(out.reshape(b, self.types * h * w, self.dim))  # (B, N, dim)


class DigitCaps(nn.Module):
    """One weight matrix W_ij (out_dim x in_dim) per child i and parent j; routing between them."""

    def __init__(self, children: int = 1152, in_dim: int = 8, parents: int = 10, out_dim: int = 16,
                 iterations: int = 3):
        super().__init__()
        self.children_count, self.iterations = children, iterations
        self.weight = nn.Parameter(0.01 * torch.randn(children, parents, out_dim, in_dim))

    def predictions(self, u: torch.Tensor) -> torch.Tensor:
        """u_hat_j|i = W_ij u_i: (B, N, in_dim) -> (B, N, J, out_dim), one batched contraction."""
        if u.dim() != 3 or u.shape[1] != self.children_count or u.shape[2] != self.weight.shape[3]:
            raise ValueError(f"DigitCaps expects (batch, {self.children_count}, {self.weight.shape[3]}) capsules, "
                             f"got {tuple(u.shape)}")
        return torch.einsum("bni,njoi->bnjo", u, self.weight)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return dynamic_routing(self.predictions(u), self.iterations)  # (B, J, out_dim)


class Decoder(nn.Module):
    """Reconstructs the image from the parent capsules with every capsule but `labels`' masked out (Fig. 2)."""

    def __init__(self, parents: int = 10, dim: int = 16, hidden: tuple[int, int] = (512, 1024),
                 image_shape: tuple[int, int, int] = (1, 28, 28)):
        super().__init__()
        self.image_shape = tuple(image_shape)
        out = image_shape[0] * image_shape[1] * image_shape[2]
        self.net = nn.Sequential(nn.Linear(parents * dim, hidden[0]), nn.ReLU(), nn.Linear(hidden[0], hidden[1]),
                                 nn.ReLU(), nn.Linear(hidden[1], out), nn.Sigmoid())

    def forward(self, v: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """v: (B, J, D) capsules, labels: (B,) the capsule kept per example -> (B, C, H, W) in [0, 1]."""
        mask = F.one_hot(labels, v.shape[1]).to(v.dtype)  # (B, J)
        flat = (v * mask[:, :, None]).flatten(1)  # (B, J*D)
        return self.net(flat).view(-1, *self.image_shape)  # (B, C, H, W)
