"""Patch embedding of ViT (Dosovitskiy et al., arXiv 2010.11929, Eq. 1): a strided convolution that maps each
non-overlapping P x P patch to a D-dimensional token (DINOv2's name for it: `patch_embed.proj`)."""

from __future__ import annotations

import torch
from torch import nn


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Patch grid (rows, cols) of an image; a clear error when the size is not a multiple of the patch."""
        p = self.patch_size
        if height % p or width % p:
            raise ValueError(f"image size {height}x{width} is not a multiple of the patch size {p}; resize or crop "
                             f"it to e.g. {height // p * p or p}x{width // p * p or p}")
        return height // p, width // p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, H/P * W/P, D), patches in row-major order."""
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"expected images (B, {self.in_chans}, H, W), got shape {tuple(x.shape)}")
        self.grid(x.shape[2], x.shape[3])
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, D, h, w) -> (B, h*w, D)
