"""The transfer-learning baseline (pretrain, then adapt; Chen et al., "A Closer Look at Few-shot Classification",
ICLR 2019, arXiv 1904.04232, Sec. 3.1-3.2, "Baseline++"): a classifier with a cosine head is trained with ordinary
cross-entropy on every meta-train class at once; for a new episode its head is dropped and the frozen features are
classified either by the nearest support-class centroid or by a new cosine head fitted on the support set."""

from __future__ import annotations

import torch
from torch import nn

from paperzoo.data.episodes import as_float


def embed(encoder: nn.Module, images: torch.Tensor, device: torch.device | None = None, batch: int = 500,
          only: torch.Tensor | None = None) -> torch.Tensor:
    """Features (N, D) of images (N, C, H, W) with the encoder in eval mode (running BN statistics: each example is
    embedded on its own); with a boolean mask `only`, the other rows stay zero (not embedded)."""
    was = encoder.training
    encoder.eval()
    device = device or next(encoder.parameters()).device
    rows = torch.arange(len(images)) if only is None else only.nonzero()[:, 0]
    with torch.no_grad():
        parts = [encoder(as_float(images[rows[i:i + batch]]).to(device)).cpu() for i in range(0, len(rows), batch)]
    encoder.train(was)
    out = torch.zeros(len(images), parts[0].shape[1])
    out[rows] = torch.cat(parts)
    return out


class RemapLabels:
    """Maps the original class ids of one split to 0..C-1 (the pretraining head's outputs)."""

    def __init__(self, classes):
        classes = torch.as_tensor(list(classes), dtype=torch.long)
        self.table = torch.full((int(classes.max()) + 1,), -1, dtype=torch.long)
        self.table[classes] = torch.arange(len(classes))

    def __call__(self, labels: torch.Tensor) -> torch.Tensor:
        return self.table[labels]
