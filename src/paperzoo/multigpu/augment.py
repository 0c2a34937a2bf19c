"""Per-rank augmentation, the application of the multi-GPU post: every rank (GPU) applies its own augmentation
policy to its shard, so one DDP run trains on several kinds of views at once.

A policy is a name or names joined by "+" ("shift", "rotate+noise"); `policy_for_rank(policies, rank)` picks
`policies[rank % len(policies)]`. All ops are tensor ops on (B, C, H, W) images in [0, 1] (no torchvision) and
draw from torch's global RNG, which the engine seeds per rank (`paperzoo.engine.distributed.seed_everything`), so
views differ between ranks and repeat exactly when the run repeats with the same seed.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from paperzoo.data.transforms import affine, random_shift
from paperzoo.errors import ConfigError


def rotate(images: torch.Tensor, radians: torch.Tensor) -> torch.Tensor:
    """Rotate image b of (B, C, H, W) by radians[b] about the centre (bilinear, zero fill)."""
    cos, sin, zero = radians.cos(), radians.sin(), torch.zeros_like(radians)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(images, grid, align_corners=False)


def random_rotate(images: torch.Tensor, max_degrees: float = 15.0) -> torch.Tensor:
    """Rotate each image by its own angle, uniform in [-max_degrees, max_degrees]."""
    angles = (torch.rand(images.shape[0], device=images.device) * 2 - 1) * math.radians(max_degrees)
    return rotate(images, angles)


def gaussian_noise(images: torch.Tensor, std: float = 0.15) -> torch.Tensor:
    """Add N(0, std^2) noise per pixel and clip back to [0, 1]."""
    return (images + std * torch.randn_like(images)).clamp(0, 1)


def random_erase(images: torch.Tensor, fraction: float = 0.3) -> torch.Tensor:
    """Zero one square patch per image, of side `fraction` of the shorter image side, at a random place (cutout)."""
    b, _, h, w = images.shape
    side = max(1, round(fraction * min(h, w)))
    top = torch.randint(0, h - side + 1, (b, 1, 1), device=images.device)
    left = torch.randint(0, w - side + 1, (b, 1, 1), device=images.device)
    rows = torch.arange(h, device=images.device)[None, :, None]  # (1, H, 1)
    cols = torch.arange(w, device=images.device)[None, None, :]  # (1, 1, W)
    inside = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)  # (B, H, W)
    return images * ~inside[:, None]


POLICIES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "none": lambda x: x,
    "shift": lambda x: random_shift(x, 2),
    "rotate": random_rotate,
    "noise": gaussian_noise,
    "erase": random_erase,
}
"""The augmentation ops by name: each maps images (B, C, H, W) to images of the same shape; a policy combines
them with '+' ("shift+noise"). "none" is the identity, "shift" a random shift of up to 2 pixels."""


def check_policy(policy: str) -> list[str]:
    """The op names of a "+"-joined policy; an unknown name is a ConfigError listing the choices."""
    names = [n.strip() for n in policy.split("+")]
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ConfigError(f"unknown augmentation {unknown[0]!r} in policy {policy!r}; choose from "
                          f"{', '.join(POLICIES)} (combine with '+', e.g. 'shift+noise')")
    return names


def augment(images: torch.Tensor, policy: str) -> torch.Tensor:
    """Apply the ops of `policy` in order to (B, C, H, W) images."""
    if images.dim() != 4:
        raise ValueError(f"augment expects images of shape (B, C, H, W), got {tuple(images.shape)}")
    for name in check_policy(policy):
        images = POLICIES[name](images)
    return images


def unseen_moves(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A test-time shift of the distribution beyond anything the policies apply in training (rotations <= 15
    degrees, shifts <= 2 pixels): each image rotated by 20-30 degrees (either sign) and moved 3 pixels in one of 8
    directions. (B, C, H, W) -> same."""
    b, _, h, _ = images.shape
    angle = torch.deg2rad(20 + 10 * torch.rand(b, generator=generator)) * (torch.randint(0, 2, (b,),
                                                                                      generator=generator) * 2 - 1)
    cos, sin = angle.cos(), angle.sin()
    rotation = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)  # (B, 2, 2)
    directions = torch.tensor([[dx, dy] for dx in (-1, 0, 1) for dy in (-1, 0, 1) if dx or dy], dtype=torch.float)
    step = directions[torch.randint(0, 8, (b,), generator=generator)]  # (B, 2) in pixels / 3
    return affine(images, rotation, step * 3 / (h / 2))  # normalised units: 1 = half the image


def policy_for_rank(policies: Sequence[str], rank: int) -> str:
    """`policies[rank % len(policies)]`: the list may be shorter than the world (it repeats)."""
    if not policies:
        raise ConfigError("the per-rank augmentation list is empty; give at least one policy, e.g. 'none'")
    return policies[rank % len(policies)]
