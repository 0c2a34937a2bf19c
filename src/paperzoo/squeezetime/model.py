"""SqueezeTime: time squeezed into channels, Channel-Time Learning blocks, a ResNet-50-like 2D backbone.

Zhai, Li, Tang, Chen, Wang, "No Time to Waste: Squeeze Time into Channel for Mobile Video Understanding",
arXiv 2405.08344 (2024). Official code: xinghaochen/SqueezeTime, `mmaction/models/backbones/SqueezeTime.py` and
the `I2DHead` of `mmaction/models/heads/i2d_head.py`.

The clip (B, C, T, H, W) becomes one image (B, C*T, H, W) (Sec. 3.1); channel index c*T + t, exactly the
code's `x.view(N, -1, H, W)`. Every later layer is 2D. The Channel-Time Learning (CTL) block (Sec. 3.2, Fig. 3)
replaces the 3x3 conv of a ResNet-50 bottleneck by two branches:

  Temporal Focus Convolution (TFC, Eq. 2-3): a weight module w = sigmoid(conv1x1(relu(bn(conv1x1(pool(x))))))
      gives one input-dependent weight per (time-mixed) channel, and the conv sees w * x.
  Inter-temporal Object Interaction (IOI, Eq. 4-5): a 3x3 conv of x, gated by a sigmoid map computed from w * x
      by 3x3 conv -> BN -> ReLU -> + temporal position encoding -> 7x7 conv -> BN -> ReLU -> 3x3 conv.

  CTL(x) = TFC(x) + IOI(x, w)

Where the paper's text and the official code differ, this module follows the code:
  - the weight module pools with global *average* pooling and keeps all channels (no 0.25 reduction), with a BN
    and ReLU between its two 1x1 convs;
  - inside the full CTL the TFC conv is 1x1 (the 3x3 spatial work is the IOI's short conv), without bias;
  - the IOI's hidden width is a fixed 16 channels, and its learned position encoding (16, P, P) is added after
    the first conv (P = the stage's feature size: 56, 28, 14, 7 at 224x224), bilinearly resized at other sizes;
  - a stride-2 block first downsamples its input (and so its residual) with a depthwise 2x2 stride-2 conv + BN;
  - the stem is a 5x5 stride-2 conv on the 3T squeezed channels, then a 3x3 stride-2 max pool;
  - the head is global average pooling, dropout 0.5 and a linear layer (init std 0.01).
At 16x224x224 with 400 classes the backbone has 28,887,088 parameters, exactly the official code's (the paper
says 28.7M; docs/squeezetime.md, "Size and cost", on why), 29.7M with the head, and 5.5 G multiply-accumulates
(the paper's "FLOPs" are fvcore's, which counts one multiply-add as one FLOP; `torch.utils.flop_counter` counts
two).

`ctl` picks the block's temporal layer for the paper's ablation (Table 6): "conv" (a plain 3x3 conv, i.e. a 2D
ResNet-50 on squeezed input), "tfc" (a 3x3 TFC: weight module + 3x3 conv, no IOI), "tfc_ioi" (the full CTL).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

CtlKind = Literal["conv", "tfc", "tfc_ioi"]
STAGE_WIDTHS = (64, 128, 256, 512)
IOI_HIDDEN = 16  # fixed in the official code, independent of the width multiplier


def squeeze_time(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, C*T, H, W) with channel index c*T + t (frames of one colour stay together)."""
    if x.dim() != 5:
        raise ValueError(f"expected a clip batch (B, C, T, H, W), got shape {tuple(x.shape)}")
    b, c, t, h, w = x.shape
    return x.reshape(b, c * t, h, w)  # (B, C*T, H, W)


class TemporalWeights(nn.Module):
    """The TFC's weight module (Eq. 2): input-dependent weights in (0, 1), one per channel of the squeezed map."""

    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),  # (B, C, 1, 1)
            nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 1, bias=False), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, C, 1, 1)


class InterTemporalInteraction(nn.Module):
    """IOI (Eq. 4-5): a 3x3 conv of x gated by a large-kernel map of the re-weighted x plus a position encoding."""

    def __init__(self, dim_in: int, dim_out: int, pos_size: int):
        super().__init__()
        self.short_conv = nn.Conv2d(dim_in, dim_out, 3, padding=1)
        self.enter = nn.Sequential(nn.Conv2d(dim_in, IOI_HIDDEN, 3, padding=1), nn.BatchNorm2d(IOI_HIDDEN),
                                   nn.ReLU(inplace=True))
        self.pos_embed = nn.Parameter(torch.empty(1, IOI_HIDDEN, pos_size, pos_size))
        nn.init.kaiming_normal_(self.pos_embed, mode="fan_out", nonlinearity="relu")
        self.interact = nn.Sequential(
            nn.Conv2d(IOI_HIDDEN, IOI_HIDDEN, 7, padding=3), nn.BatchNorm2d(IOI_HIDDEN), nn.ReLU(inplace=True),
            nn.Conv2d(IOI_HIDDEN, dim_out, 3, padding=1), nn.Sigmoid())

    def position(self, h: int, w: int) -> torch.Tensor:
        if self.pos_embed.shape[-2:] == (h, w):
            return self.pos_embed
        return F.interpolate(self.pos_embed, size=(h, w), mode="bilinear", align_corners=True)  # (1, 16, h, w)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        hidden = self.enter(x * weights)  # (B, 16, H, W)
        gate = self.interact(hidden + self.position(*hidden.shape[-2:]))  # (B, out, H, W)
        return self.short_conv(x) * gate


class ChannelTimeConv(nn.Module):
    """The temporal layer of a CTL block: plain conv, TFC, or TFC + IOI (see the module docstring)."""

    def __init__(self, dim_in: int, dim_out: int, pos_size: int, kind: CtlKind = "tfc_ioi"):
        super().__init__()
        if kind not in ("conv", "tfc", "tfc_ioi"):
            raise ValueError(f"ctl must be 'conv', 'tfc' or 'tfc_ioi', got {kind!r}")
        self.kind = kind
        self.weights = TemporalWeights(dim_in) if kind != "conv" else None
        kernel = 1 if kind == "tfc_ioi" else 3
        self.conv = nn.Conv2d(dim_in, dim_out, kernel, padding=kernel // 2, bias=False)
        self.ioi = InterTemporalInteraction(dim_in, dim_out, pos_size) if kind == "tfc_ioi" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weights is None:
            return self.conv(x)
        w = self.weights(x)  # (B, C, 1, 1)
        out = self.conv(x * w)
        return out + self.ioi(x, w) if self.ioi is not None else out


class CTLBottleneck(nn.Module):
    """A ResNet-50 bottleneck whose 3x3 conv is a `ChannelTimeConv`; stride 2 = depthwise 2x2 downsampling first."""

    expansion = 4

    def __init__(self, dim_in: int, planes: int, stride: int, pos_size: int, kind: CtlKind):
        super().__init__()
        dim_out = planes * self.expansion
        self.downsample = (nn.Sequential(nn.Conv2d(dim_in, dim_in, 2, stride=2, groups=dim_in),
                                         nn.BatchNorm2d(dim_in)) if stride != 1 else nn.Identity())
        self.body = nn.Sequential(
            nn.Conv2d(dim_in, planes, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
            ChannelTimeConv(planes, planes, pos_size, kind), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
            nn.Conv2d(planes, dim_out, 1, bias=False), nn.BatchNorm2d(dim_out))
        self.shortcut = (nn.Sequential(nn.Conv2d(dim_in, dim_out, 1, bias=False), nn.BatchNorm2d(dim_out))
                         if dim_in != dim_out else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        return F.relu(self.body(x) + self.shortcut(x))


class SqueezeTime(nn.Module):
    """SqueezeTime for clips (B, in_channels, num_frames, H, W) -> logits (B, num_classes).

    The K400 model is `SqueezeTime(400)` (16 frames, width 1.0, 224x224). `image_size` only sets the size of the
    learned position encodings (H/4, H/8, H/16, H/32); other input sizes work through interpolation.
    """

    def __init__(self, num_classes: int, num_frames: int = 16, width_mult: float = 1.0, image_size: int = 224,
                 layers: tuple[int, ...] = (3, 4, 6, 3), ctl: CtlKind = "tfc_ioi", in_channels: int = 3,
                 dropout: float = 0.5):
        super().__init__()
        if num_classes < 1 or num_frames < 1 or in_channels < 1:
            raise ValueError(f"num_classes, num_frames and in_channels must be >= 1, got {num_classes}, "
                             f"{num_frames}, {in_channels}")
        if width_mult <= 0 or len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"width_mult must be > 0 and layers four counts >= 1, got {width_mult}, {layers}")
        if image_size < 32:
            raise ValueError(f"image_size must be >= 32 (five stride-2 steps), got {image_size}")
        self.num_frames, self.in_channels = num_frames, in_channels
        widths = [int(w * width_mult) for w in STAGE_WIDTHS]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels * num_frames, widths[0], 5, stride=2, padding=2, bias=False),
            nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1))
        stages, dim = [], widths[0]
        for i, (planes, blocks) in enumerate(zip(widths, layers)):
            stride = 1 if i == 0 else 2
            pos_size = image_size // (4 * 2 ** i)
            stage = [CTLBottleneck(dim, planes, stride, pos_size, ctl)]
            dim = planes * CTLBottleneck.expansion
            stage += [CTLBottleneck(dim, planes, 1, pos_size, ctl) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
        self.stages = nn.Sequential(*stages)
        self.feature_dim = dim
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != self.in_channels or x.shape[2] != self.num_frames:
            raise ValueError(f"expected clips (B, {self.in_channels}, {self.num_frames}, H, W), "
                             f"got shape {tuple(x.shape)}")
        return self.stages(self.stem(squeeze_time(x)))  # (B, D, H/32, W/32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.features(x).mean(dim=(2, 3))  # (B, D)
        return self.fc(self.dropout(pooled))  # (B, num_classes)
