"""Multi-head self-attention with fused qkv, as in ViT (Dosovitskiy et al., arXiv 2010.11929, Eq. 2-3) and with
DINOv2's parameter names (`qkv`, `proj`).

The fast path calls `torch.nn.functional.scaled_dot_product_attention`; the softmax weights are formed
explicitly only when `return_attention=True` (for attention maps), because the fused kernels never materialise them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, proj_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embedding dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        """(B, N, D) -> (B, N, D), or ((B, N, D), (B, heads, N, N) softmax weights) when `return_attention`."""
        if x.dim() != 3:
            raise ValueError(f"Attention expects tokens (B, N, D), got shape {tuple(x.shape)}")
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (3, B, H, N, hd)
        q, k, v = qkv.unbind(0)  # each (B, H, N, hd)
        if return_attention:
            weights = torch.softmax((q * self.head_dim ** -0.5) @ k.transpose(-2, -1), dim=-1)  # (B, H, N, N)
            out = weights @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, hd)
        out = self.proj(out.transpose(1, 2).reshape(b, n, d))  # (B, N, D)
        return (out, weights) if return_attention else out
