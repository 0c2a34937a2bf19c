"""Test conditions of Sabour et al. 2017 (arXiv 1710.09829, Sec. 5-6) built from real digits, on tensors.

  multimnist     Sec. 6: two digits of different classes, each shifted by up to 4 px inside a 36x36 canvas,
                 overlaid (pixel sum clipped at 1); labels are the two classes
  random_affine  Sec. 5.2 (affNIST-style): random rotation, shear and scale of each digit
"""

from __future__ import annotations

import math

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


def random_affine(images: torch.Tensor, max_degrees: float = 20.0, max_shear: float = 0.2,
                  scale: tuple[float, float] = (0.8, 1.2)) -> torch.Tensor:
    """Each image rotated by U(-max_degrees, max_degrees), sheared horizontally by U(-max_shear, max_shear) and
    scaled by U(*scale) about its centre (bilinear, zero fill), using torch's global RNG."""
    b = images.shape[0]
    angle = (torch.rand(b) * 2 - 1) * math.radians(max_degrees)
    shear = (torch.rand(b) * 2 - 1) * max_shear
    zoom = torch.empty(b).uniform_(*scale)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)  # (B, 2, 2)
    shearing = torch.eye(2).repeat(b, 1, 1)  # (B, 2, 2)
    shearing[:, 0, 1] = shear
    forward = rotation @ shearing * zoom[:, None, None]  # image -> transformed image
    theta = torch.cat([torch.linalg.inv(forward), torch.zeros(b, 2, 1)], 2)  # (B, 2, 3): output -> input grid
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")
