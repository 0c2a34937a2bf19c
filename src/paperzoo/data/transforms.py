"""Tensor-only augmentations (no torchvision), drawn from torch's global RNG so a resumed run repeats them."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(images: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Translate each image of (B, C, H, W) by its own integer offset in [-max_shift, max_shift] on both axes,
    filling with zeros (the shift augmentation of the CapsNet paper, Sec. 5)."""
    if max_shift == 0:
        return images
    b, _, h, w = images.shape
    padded = F.pad(images, (max_shift,) * 4)  # (B, C, H + 2s, W + 2s)
    offsets = torch.randint(0, 2 * max_shift + 1, (b, 2), device=images.device)
    rows = (offsets[:, 0, None] + torch.arange(h, device=images.device))  # (B, H)
    cols = (offsets[:, 1, None] + torch.arange(w, device=images.device))  # (B, W)
    batch = torch.arange(b, device=images.device)[:, None, None]
    # advanced indexing over (batch, row, col) keeps the channel axis: (B, H, W, C) -> (B, C, H, W)
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
