"""The Conv-4 embedding of the few-shot papers and a BatchNorm that does not leak query statistics.

Conv-4 (Vinyals et al. 2016, arXiv 1606.04080; used by Snell et al. 2017, arXiv 1703.05175, Sec. 3.1, and Finn et
al. 2017, arXiv 1703.03400, Sec. 5.2): four blocks of 3x3 conv, batch norm, ReLU and 2x2 max-pooling; a 28x28 image
becomes a (channels * 1 * 1) embedding.

`EpisodeBatchNorm` is MAML's batch norm: no running statistics, always the statistics of a batch. Which batch is
the choice that matters (Nichol et al. 2018, arXiv 1803.02999, Sec. 5; Bronskill et al. 2020, "TaskNorm",
arXiv 2003.03284): the original MAML code normalises the query set with the query batch's own statistics, so each
query's prediction depends on the other queries (transductive, and class-balanced query sets leak label
information). With `n_stats` set, the statistics come from the first `n_stats` rows only (the support set), and
every query is then classified on its own.

`CosineHead` is the classifier of Chen et al.'s "Baseline++" (A Closer Look at Few-shot Classification, ICLR 2019,
arXiv 1904.04232, Sec. 3.2): logit_k = s * cos(f(x), w_k), the cosine similarity between the feature and the class
weight vector times a fixed scale s, so that the learned weights act as class prototypes on the unit sphere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class EpisodeBatchNorm(nn.Module):
    """Batch norm with batch statistics only (no running statistics), for episodes: (B, C, H, W) -> (B, C, H, W),
    normalised per channel over the batch and the spatial dimensions, then scaled and shifted by the learned
    `weight` and `bias` (C,). `forward(x, n_stats=S)` takes the statistics from the first S rows alone (the support
    set), so the other rows (queries) do not see each other."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor, n_stats: int | None = None) -> torch.Tensor:
        ref = x if n_stats is None else x[:n_stats]  # (S, C, H, W): the rows the statistics come from
        mean = ref.mean((0, 2, 3), keepdim=True)
        var = ref.var((0, 2, 3), unbiased=False, keepdim=True)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight[:, None, None] + self.bias[:, None, None]


class Conv4(nn.Module):
    """(B, C_in, H, W) -> (B, channels * (H / 16) * (W / 16)); `episodic=True` uses `EpisodeBatchNorm`."""

    def __init__(self, in_channels: int = 1, channels: int = 64, episodic: bool = False):
        super().__init__()
        self.episodic = episodic
        self.convs = nn.ModuleList(nn.Conv2d(in_channels if i == 0 else channels, channels, 3, padding=1)
                                   for i in range(4))
        norm = EpisodeBatchNorm if episodic else nn.BatchNorm2d
        self.norms = nn.ModuleList(norm(channels) for _ in range(4))

    def forward(self, x: torch.Tensor, n_stats: int | None = None) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"Conv4 expects images (B, C, H, W), got shape {tuple(x.shape)}")
        if n_stats is not None and not self.episodic:
            raise ValueError("n_stats needs episodic=True (EpisodeBatchNorm); nn.BatchNorm2d uses running stats")
        for conv, norm in zip(self.convs, self.norms):
            h = conv(x)
            h = norm(h, n_stats) if self.episodic else norm(h)
            x = F.max_pool2d(F.relu(h), 2)  # (B, channels, H / 2, W / 2)
        return x.flatten(1)  # (B, D)


class CosineHead(nn.Module):
    """(B, D) features -> (B, n_out) logits scale * cos(feature, weight row)."""

    def __init__(self, in_features: int, n_out: int, scale: float = 10.0):
        super().__init__()
        if scale <= 0:
            raise ValueError(f"the cosine head's scale must be > 0, got {scale}")
        self.weight = nn.Parameter(torch.randn(n_out, in_features) / in_features**0.5)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.normalize(x, dim=-1) @ F.normalize(self.weight, dim=-1).T  # (B, n_out)


class ConvClassifier(nn.Module):
    """Conv-4 and a head: MAML's few-shot learner (a linear head of n_way outputs) and the transfer baseline's
    pretraining classifier (a cosine head over all meta-train classes, `head="cosine"`)."""

    def __init__(self, n_out: int, in_channels: int = 1, channels: int = 64, image_size: int = 28,
                 episodic: bool = False, head: str = "linear"):
        super().__init__()
        if head not in ("linear", "cosine"):
            raise ValueError(f"head must be 'linear' or 'cosine', got {head!r}")
        self.encoder = Conv4(in_channels, channels, episodic)
        side = image_size
        for _ in range(4):
            side //= 2
        features = channels * side * side
        self.head = nn.Linear(features, n_out) if head == "linear" else CosineHead(features, n_out)

    def forward(self, x: torch.Tensor, n_stats: int | None = None) -> torch.Tensor:
        return self.head(self.encoder(x, n_stats))  # (B, n_out)
