"""Transformer feed-forward blocks with DINOv2's parameter names.

`Mlp`: Linear -> GELU -> Linear (`fc1`, `fc2`), the ViT MLP (arXiv 2010.11929, Eq. 3).
`SwiGLUFFN`: W3(SiLU(x W1) * x W2) with W1 and W2 packed into one matrix `w12` (Shazeer, "GLU Variants Improve
Transformer", arXiv 2002.05202, Eq. 6), the FFN of DINOv2's ViT-g/14.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, bias: bool = True):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, bias=bias)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def swiglu_hidden(hidden: int, align: int = 8) -> int:
    """DINOv2's SwiGLU width for an MLP of width `hidden`: 2/3 of it (same parameter count as the MLP),
    rounded up to a multiple of `align`. ViT-g/14: 4 * 1536 = 6144 -> 4096."""
    return (int(hidden * 2 / 3) + align - 1) // align * align


class SwiGLUFFN(nn.Module):
    def __init__(self, dim: int, hidden: int, bias: bool = True):
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden, bias=bias)
        self.w3 = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.w12(x).chunk(2, dim=-1)  # each (..., hidden)
        return self.w3(F.silu(gate) * value)
