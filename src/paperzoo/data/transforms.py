"""Tensor-only augmentations of (B, C, H, W) image batches (no torchvision).

Random parameters are drawn on the CPU from torch's global RNG (which the engine seeds per rank, so a resumed run
repeats them) or from an explicit `generator`; one draw per image, whatever the batch's device.

  random_shift         integer translation with zero fill (CapsNet, Sabour et al. 2017, arXiv 1710.09829, Sec. 5)
  affine               a given linear map (+ shift) about the image centre, bilinear with zero fill
  random_affine        random rotation, shear and scale (affNIST-style, CapsNet Sec. 5.2)
  random_resized_crop  a random area and aspect ratio, resized back to the full image (SimCLR, Chen et al. 2020,
                       arXiv 2002.05709, Sec. 3 and Appendix A)
  two_views            two independent crop + affine draws of each image: the views X and S of multi-view
                       self-supervised learning (Tsai et al. 2021, arXiv 2006.05576, Sec. 2)

Geometry: coordinates are normalised to [-1, 1] with x to the right and y downwards (`F.affine_grid`,
align_corners=False), so a positive rotation angle turns the image clockwise as displayed.
"""

from __future__ import annotations

import math

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


def _check_images(images: torch.Tensor) -> None:
    if images.dim() != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(images.shape)}")


def _uniform(b: int, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    return torch.empty(b).uniform_(low, high, generator=generator)  # (B,)


def _warp(images: torch.Tensor, theta: torch.Tensor, padding: str = "zeros") -> torch.Tensor:
    """Sample images at theta @ (x, y, 1) for every output pixel; theta (B, 2, 3) maps output to input."""
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(images, grid, align_corners=False, padding_mode=padding)


def _inverse_map(matrix: torch.Tensor, shift: torch.Tensor | None) -> torch.Tensor:
    """The output -> input map (B, 2, 3) of the forward map p -> matrix @ p + shift."""
    inverse = torch.linalg.inv(matrix)  # (B, 2, 2)
    offset = torch.zeros(len(matrix), 2, 1) if shift is None else -inverse @ shift[:, :, None]  # (B, 2, 1)
    return torch.cat([inverse, offset.to(inverse)], 2)


def affine(images: torch.Tensor, matrix: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
    """Move the content at normalised point p of image b to matrix[b] @ p + shift[b] (bilinear, zero fill).

    matrix: (B, 2, 2) or (2, 2), invertible; shift: (B, 2) or (2,) in normalised units (1 = half the image)."""
    _check_images(images)
    b = images.shape[0]
    matrix = matrix.detach().cpu().float().expand(b, 2, 2)
    shift = None if shift is None else shift.detach().cpu().float().expand(b, 2)
    return _warp(images, _inverse_map(matrix, shift))


def _affine_matrix(b: int, max_degrees: float, max_shear: float, scale: tuple[float, float],
                   generator: torch.Generator | None) -> torch.Tensor:
    """Random forward maps (B, 2, 2): rotation @ horizontal shear, times a zoom factor."""
    angle = (torch.rand(b, generator=generator) * 2 - 1) * math.radians(max_degrees)
    shear = (torch.rand(b, generator=generator) * 2 - 1) * max_shear
    zoom = _uniform(b, *scale, generator)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)  # (B, 2, 2)
    shearing = torch.eye(2).repeat(b, 1, 1)  # (B, 2, 2)
    shearing[:, 0, 1] = shear
    return rotation @ shearing * zoom[:, None, None]


def random_affine(images: torch.Tensor, max_degrees: float = 20.0, max_shear: float = 0.2,
                  scale: tuple[float, float] = (0.8, 1.2), generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image rotated by U(-max_degrees, max_degrees), sheared horizontally by U(-max_shear, max_shear) and
    scaled by U(*scale) about its centre (bilinear, zero fill)."""
    _check_images(images)
    matrix = _affine_matrix(images.shape[0], max_degrees, max_shear, scale, generator)
    return _warp(images, _inverse_map(matrix, None))


def _crop_map(images: torch.Tensor, scale: tuple[float, float], ratio: tuple[float, float],
              generator: torch.Generator | None) -> torch.Tensor:
    """Random output -> input maps (B, 2, 3) that stretch a crop of the input over the whole output."""
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"crop scale must satisfy 0 < low <= high <= 1, got {scale}")
    if not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"crop ratio must satisfy 0 < low <= high, got {ratio}")
    b, _, h, w = images.shape
    area = _uniform(b, *scale, generator)  # fraction of the image
    aspect = _uniform(b, math.log(ratio[0]), math.log(ratio[1]), generator).exp()  # crop width / height, pixels
    width = (area * aspect * h / w).sqrt().clamp(max=1.0)  # fraction of the image width
    height = (area / aspect * w / h).sqrt().clamp(max=1.0)
    cx = (torch.rand(b, generator=generator) * 2 - 1) * (1 - width)  # crop centre, inside the image
    cy = (torch.rand(b, generator=generator) * 2 - 1) * (1 - height)
    zero = torch.zeros(b)
    return torch.stack([torch.stack([width, zero, cx], 1), torch.stack([zero, height, cy], 1)], 1)  # (B, 2, 3)


def random_resized_crop(images: torch.Tensor, scale: tuple[float, float] = (0.6, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3),
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """A crop of each image with area fraction U(*scale) and aspect ratio (width / height, in pixels)
    log-uniform in `ratio`, placed uniformly inside the image and resized (bilinear) to the full size.

    Unlike torchvision, there is no rejection loop: a side longer than the image is clipped to the image. The crop
    lies inside the image; the half pixel beyond the outer pixel centres repeats the edge (no zero fill)."""
    _check_images(images)
    return _warp(images, _crop_map(images, scale, ratio, generator), padding="border")


def _then(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """One output -> input map (B, 2, 3) for warping by `first`, then by `second`: p -> first(second(p))."""
    last = torch.tensor([0.0, 0.0, 1.0]).expand(len(second), 1, 3)
    return first @ torch.cat([second, last], 1)  # (B, 2, 3) @ (B, 3, 3)


def two_views(images: torch.Tensor, crop_scale: tuple[float, float] = (0.6, 1.0),
              crop_ratio: tuple[float, float] = (3 / 4, 4 / 3), max_degrees: float = 15.0, max_shear: float = 0.1,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Two augmented views of each image: each a random resized crop followed by a random rotation and shear
    (zero fill), drawn independently for the two views and sampled once (one bilinear interpolation per view)."""
    _check_images(images)
    b = images.shape[0]
    views = []
    for _ in range(2):
        crop = _crop_map(images, crop_scale, crop_ratio, generator)
        turn = _inverse_map(_affine_matrix(b, max_degrees, max_shear, (1.0, 1.0), generator), None)
        views.append(_warp(images, _then(crop, turn)))  # cropped, then turned
    return views[0], views[1]
