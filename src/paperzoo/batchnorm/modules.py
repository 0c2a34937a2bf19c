"""`BatchNorm1d` / `BatchNorm2d` written from Ioffe & Szegedy 2015 (arXiv 1502.03167, Algorithms 1-2), drop-in for
`torch.nn.BatchNorm1d/2d`: same constructor arguments (`bias=False` included), state-dict keys and version (a
legacy state dict without `num_batches_tracked` loads), train/eval behaviour and results (empty batches, bf16/fp16
input with fp32 parameters, channels-last input), and errors (eps <= 0 is refused at the forward that would use it,
as torch refuses it).

`backward="manual"` swaps autograd for the hand-written closed-form gradient (`BatchNormFunction`).
`GroupNorm` and `LayerNorm` are torch's own (Wu & He 2018, arXiv 1803.08494; Ba et al. 2016), for comparisons.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import GroupNorm, LayerNorm

from paperzoo.batchnorm.functional import batch_norm, check_batch

__all__ = ["BatchNorm1d", "BatchNorm2d", "GroupNorm", "LayerNorm"]


class _BatchNorm(nn.Module):
    dims: tuple[int, ...] = ()
    _version = 2  # torch's: version 2 added num_batches_tracked

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None, *, bias: bool = True,
                 backward: Literal["autograd", "manual"] = "autograd"):
        super().__init__()
        if backward not in ("autograd", "manual"):
            raise ValueError(f"backward must be 'autograd' or 'manual', got {backward!r}")
        factory = {"device": device, "dtype": dtype}
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats, self.backward = affine, track_running_stats, backward
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, **factory))  # gamma
            self.register_parameter("bias", nn.Parameter(torch.zeros(num_features, **factory)) if bias else None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        # a state dict written before version 2 has no counter: keep the module's own, as torch does
        key = prefix + "num_batches_tracked"
        if local_metadata.get("version", 1) < 2 and self.track_running_stats and key not in state_dict:
            state_dict[key] = (self.num_batches_tracked if self.num_batches_tracked.device.type != "meta"
                               else torch.tensor(0, dtype=torch.long))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in self.dims:
            raise ValueError(f"{type(self).__name__} expects a {' or '.join(f'{d}D' for d in self.dims)} input, "
                             f"got shape {tuple(x.shape)}")
        check_batch(x, self.num_features)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked)
        # batch statistics while training, and always when there are no running statistics to use
        use_batch = self.training or self.running_mean is None
        update = not self.training or self.track_running_stats
        return batch_norm(x, self.running_mean if update else None, self.running_var if update else None,
                          self.weight, self.bias, use_batch, momentum, self.eps, self.backward == "manual")

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}, "
                f"backward={self.backward}")


class BatchNorm1d(_BatchNorm):
    """(N, C) or (N, C, L) input, statistics per channel C."""

    dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """(N, C, H, W) input, statistics per channel C over N, H, W."""

    dims = (4,)
