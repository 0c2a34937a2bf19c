"""The pre-norm transformer block of ViT with LayerScale, with DINOv2's parameter names
(`norm1`, `attn`, `ls1.gamma`, `norm2`, `mlp`, `ls2.gamma`).

x = x + ls1(attn(norm1(x)));  x = x + ls2(mlp(norm2(x)))  (ViT, arXiv 2010.11929, Eq. 2-3; LayerScale: Touvron et
al., "Going deeper with Image Transformers", arXiv 2103.17239, Sec. 3, a learnable per-channel scale `gamma`).
"""

from __future__ import annotations

import torch
from torch import nn

from paperzoo.layers.attention import Attention
from paperzoo.layers.mlp import Mlp, SwiGLUFFN, swiglu_hidden


class LayerScale(nn.Module):
    def __init__(self, dim: int, init_value: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """`ffn`: "mlp" (GELU MLP of width mlp_ratio * dim) or "swiglu" (DINOv2's width rule, `swiglu_hidden`);
    `init_values`: LayerScale init, None or 0 for no LayerScale."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 ffn: str = "mlp", init_values: float | None = None, eps: float = 1e-6):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        if ffn == "mlp":
            mlp = Mlp(dim, hidden)
        elif ffn == "swiglu":
            mlp = SwiGLUFFN(dim, swiglu_hidden(hidden))
        else:
            raise ValueError(f"unknown ffn {ffn!r}; choose 'mlp' or 'swiglu'")
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = mlp
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        """(B, N, D) -> (B, N, D); with `return_attention` also the (B, heads, N, N) attention weights."""
        if return_attention:
            out, weights = self.attn(self.norm1(x), return_attention=True)
            x = x + self.ls1(out)
            return x + self.ls2(self.mlp(self.norm2(x))), weights
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))
