"""What one capsule dimension encodes: the measure behind Fig. 4 of Sabour, Frosst & Hinton (NeurIPS 2017,
arXiv 1710.09829, Sec. 5.1), where perturbing one of the 16 dimensions of the active digit capsule changes one kind
of attribute of the reconstruction (stroke thickness, width, skew, ...) across different digits.

A reconstruction is summarised by six image attributes computed from its moments, independently of the network
(ink mass, centroid x and y, width and height as the ink's standard deviations along x and y, slant as the x-y
covariance over the y variance). A perturbation of the capsule along a direction changes that vector.

- `selectivity`: the share of the change's squared size (attributes in units of their spread) that falls on its
  largest attribute, averaged over digits: 1 when a direction changes one attribute only, 1/6 when it changes all
  six equally. "Each dimension encodes one kind of attribute" means the dimensions are more selective than other
  directions of the same capsule (mixtures of them) and than the dimensions of an untrained decoder.
- `consistency`: the mean cosine between the changes of different digits of the same class, for the same
  direction: 1 when the direction changes the same attributes the same way in every digit. Under any smooth decoder
  a fixed direction is about as consistent as a dimension (the test file shows it), so it is reported, not judged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

ATTRIBUTES = ("ink", "centre_x", "centre_y", "width", "height", "slant")

Decode = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (capsules (B, J, D), labels (B,)) -> (B, C, H, W)


def attributes(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) intensities -> (B, 6) attributes in the order of `ATTRIBUTES` (pixels as units)."""
    ink = images.clamp(min=0).sum(1)  # (B, H, W)
    h, w = ink.shape[1:]
    ys = torch.arange(h, dtype=ink.dtype)[:, None].expand(h, w)  # (H, W)
    xs = torch.arange(w, dtype=ink.dtype)[None, :].expand(h, w)  # (H, W)
    mass = ink.flatten(1).sum(1).clamp(min=1e-6)  # (B,)
    mean = lambda f: (ink * f).flatten(1).sum(1) / mass
    cx, cy = mean(xs), mean(ys)
    dx, dy = xs - cx[:, None, None], ys - cy[:, None, None]  # (B, H, W)
    var_x, var_y, cov = mean(dx * dx), mean(dy * dy), mean(dx * dy)
    return torch.stack([mass, cx, cy, var_x.sqrt(), var_y.sqrt(), cov / var_y.clamp(min=1e-6)], 1)


def attribute_changes(decode: Decode, v: torch.Tensor, labels: torch.Tensor, directions: torch.Tensor,
                      step: float = 0.25) -> torch.Tensor:
    """The attribute change from -step to +step along each direction of the labels' capsule.

    v: (B, J, D) capsules, labels: (B,), directions: (B, K, D) unit vectors (per image). Returns (B, K, 6), each
    attribute in units of its standard deviation over the unperturbed reconstructions.
    """
    rows = torch.arange(len(labels))
    with torch.no_grad():
        scale = attributes(decode(v, labels)).std(0).clamp(min=1e-6)  # (6,)
        changes = []
        for k in range(directions.shape[1]):
            moved = []
            for sign in (1.0, -1.0):
                shifted = v.clone()
                shifted[rows, labels] += sign * step * directions[:, k]
                moved.append(attributes(decode(shifted, labels)))
            changes.append((moved[0] - moved[1]) / scale)
    return torch.stack(changes, 1)  # (B, K, 6)


def consistency(changes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per direction, the mean cosine between the attribute changes of two different digits of the same class.

    changes: (B, K, A), labels: (B,). Returns (K,): for each class with >= 2 digits, the mean over ordered pairs
    i != j of cos(change_i, change_j), from |sum of unit vectors|^2 = n + sum over pairs; then the mean over classes.
    A change of zero counts as cosine 0 with everything.
    """
    units = changes / changes.norm(dim=-1, keepdim=True).clamp(min=1e-8)  # (B, K, A)
    per_class = []
    for c in labels.unique():
        group = units[labels == c]  # (n, K, A)
        n = len(group)
        if n < 2:
            continue
        total = group.sum(0)  # (K, A)
        own = (group * group).sum(-1).sum(0)  # (K,) sum of |u_i|^2: n, less any zero changes
        per_class.append(((total * total).sum(-1) - own) / (n * (n - 1)))
    if not per_class:
        raise ValueError("consistency needs at least two digits of one class")
    return torch.stack(per_class).mean(0)


def selectivity(changes: torch.Tensor) -> torch.Tensor:
    """Per direction, the mean over digits of the largest attribute's share of the squared change.

    changes: (B, K, A). Returns (K,) in [1/A, 1]; a digit whose reconstruction does not change counts as 1/A (no
    attribute singled out).
    """
    squared = changes ** 2  # (B, K, A)
    total = squared.sum(-1)  # (B, K)
    share = torch.where(total > 0, squared.max(-1).values / total.clamp(min=1e-12),
                        torch.full_like(total, 1 / changes.shape[-1]))
    return share.mean(0)


def axis_directions(batch: int, dim: int) -> torch.Tensor:
    """Each of the D dimensions on its own, the same for every image: (B, D, D)."""
    return torch.eye(dim).expand(batch, dim, dim)


def random_directions(batch: int, count: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """`count` random unit directions, drawn once and the same for every image: (B, count, D). (Directions drawn
    afresh per image would score about 0 whatever the decoder does, as d and -d are equally likely.)"""
    d = torch.randn(count, dim, generator=generator)
    return (d / d.norm(dim=-1, keepdim=True)).expand(batch, count, dim)
