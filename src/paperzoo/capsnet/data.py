"""Test conditions of Sabour et al. 2017 (arXiv 1710.09829, Sec. 6) built from real digits, on tensors.

  multimnist     Sec. 6: two digits of different classes, each shifted by up to 4 px inside a 36x36 canvas,
                 overlaid (pixel sum clipped at 1); labels are the two classes

The affNIST-style condition of Sec. 5.2 (`random_affine`) is shared and lives in `paperzoo.data.transforms`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from paperzoo.data.transforms import random_shift


def multimnist(images: torch.Tensor, labels: torch.Tensor, size: int = 36, max_shift: int = 4):
    """Pairs every image with a later one of a different class (random partner from torch's global RNG).

    images: (B, 1, H, W), labels: (B,). Returns (overlay (M, 1, size, size), pair labels (M, 2), the two shifted
    digits (M, 2, 1, size, size)) with M <= B: an image whose partner has the same class is dropped.
    """
    b, _, h, w = images.shape
    if h > size or w > size:
        raise ValueError(f"digits of {h}x{w} do not fit a {size}x{size} canvas")
    top, left = (size - h) // 2, (size - w) // 2
    canvas = F.pad(images, (left, size - w - left, top, size - h - top))  # (B, 1, size, size)
    partner = torch.randperm(b, device=images.device)
    keep = labels != labels[partner]
    first, second = random_shift(canvas[keep], max_shift), random_shift(canvas[partner][keep], max_shift)
    pair_labels = torch.stack([labels[keep], labels[partner][keep]], 1)  # (M, 2)
    return (first + second).clamp(max=1.0), pair_labels, torch.stack([first, second], 1)
