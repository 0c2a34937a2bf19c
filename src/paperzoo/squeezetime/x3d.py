"""X3D-XS, the mobile 3D net of SqueezeTime's speed table, at its published width (no weights).

Feichtenhofer, "X3D: Expanding Architectures for Efficient Video Recognition", CVPR 2020, arXiv 2004.04730,
Table 1 (the X3D-S layout; X3D-XS is X3D-S on 4 frames) and Sec. 3. SqueezeTime (Zhai et al. 2024, arXiv
2405.08344) compares against it in Table 1: 3.80M parameters, 0.9 GFLOPs, 4 frames. Written from the paper's
layout and the published configuration (width factor 2, depth factor 2.2, bottleneck factor 2.25, SE ratio 1/16);
clips (B, C, T, H, W) -> logits (B, classes):

  stem    1x3x3 conv stride (1, 2, 2) to 24 channels, then a 5x1x1 depthwise temporal conv, BN, ReLU
  res2-5  3, 5, 11, 7 bottlenecks of 24, 48, 96, 192 channels (inner 54, 108, 216, 432): 1x1x1 conv, BN, ReLU,
          3x3x3 depthwise conv (stride (1, 2, 2) in a stage's first block), BN, squeeze-excitation on every other
          block (the first, third, ...), swish, 1x1x1 conv, BN; residual add, ReLU. No temporal stride anywhere.
  conv5   1x1x1 conv to 432, BN, ReLU; global average pool; 1x1x1 conv to 2048, ReLU; linear to the classes.
"""

from __future__ import annotations

import torch
from torch import nn

STEM_WIDTH = 24
STAGES = ((24, 3), (48, 5), (96, 11), (192, 7))  # (output channels, blocks) of res2..res5
BOTTLENECK_FACTOR = 2.25
SE_RATIO = 1 / 16
HEAD_WIDTH = 2048


def se_width(channels: int, ratio: float = SE_RATIO, divisor: int = 8) -> int:
    """The squeeze-excitation bottleneck width: `channels * ratio` rounded to a multiple of `divisor` (at least
    `divisor`, and not more than 10% below the exact value), as in the published X3D configuration."""
    exact = channels * ratio
    width = max(divisor, int(exact + divisor / 2) // divisor * divisor)
    return width + divisor if width < 0.9 * exact else width


class SqueezeExcitation3d(nn.Module):
    """Channel gates from the clip-averaged features: pool, conv C -> r, ReLU, conv r -> C, sigmoid."""

    def __init__(self, channels: int):
        super().__init__()
        reduced = se_width(channels)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Conv3d(channels, reduced, 1), nn.ReLU(inplace=True),
                                  nn.Conv3d(reduced, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)  # (B, C, T, H, W) * (B, C, 1, 1, 1)


class X3DBlock(nn.Module):
    """The X3D bottleneck: 1x1x1 expand, 3x3x3 depthwise (optional SE), swish, 1x1x1 project, residual."""

    def __init__(self, dim_in: int, dim_out: int, stride: int, squeeze_excite: bool):
        super().__init__()
        inner = int(BOTTLENECK_FACTOR * dim_out)
        self.body = nn.Sequential(
            nn.Conv3d(dim_in, inner, 1, bias=False), nn.BatchNorm3d(inner), nn.ReLU(inplace=True),
            nn.Conv3d(inner, inner, 3, stride=(1, stride, stride), padding=1, groups=inner, bias=False),
            nn.BatchNorm3d(inner), SqueezeExcitation3d(inner) if squeeze_excite else nn.Identity(), nn.SiLU(),
            nn.Conv3d(inner, dim_out, 1, bias=False), nn.BatchNorm3d(dim_out))
        self.shortcut = (nn.Sequential(nn.Conv3d(dim_in, dim_out, 1, stride=(1, stride, stride), bias=False),
                                       nn.BatchNorm3d(dim_out)) if stride != 1 or dim_in != dim_out else nn.Identity())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class X3D(nn.Module):
    """X3D-XS (with `num_frames=4`, 160x160 crops) at the published width; any frame count and crop run."""

    def __init__(self, num_classes: int, num_frames: int = 4, in_channels: int = 3):
        super().__init__()
        self.num_frames, self.in_channels = num_frames, in_channels
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, STEM_WIDTH, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False),
            nn.Conv3d(STEM_WIDTH, STEM_WIDTH, (5, 1, 1), padding=(2, 0, 0), groups=STEM_WIDTH, bias=False),
            nn.BatchNorm3d(STEM_WIDTH), nn.ReLU(inplace=True))
        blocks, dim = [], STEM_WIDTH
        for width, count in STAGES:
            for j in range(count):
                blocks.append(X3DBlock(dim, width, 2 if j == 0 else 1, squeeze_excite=j % 2 == 0))
                dim = width
        self.blocks = nn.Sequential(*blocks)
        inner = int(BOTTLENECK_FACTOR * dim)
        self.conv5 = nn.Sequential(nn.Conv3d(dim, inner, 1, bias=False), nn.BatchNorm3d(inner), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Conv3d(inner, HEAD_WIDTH, 1, bias=False), nn.ReLU(inplace=True))
        self.fc = nn.Linear(HEAD_WIDTH, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != self.in_channels or x.shape[2] != self.num_frames:
            raise ValueError(f"expected clips (B, {self.in_channels}, {self.num_frames}, H, W), got {tuple(x.shape)}")
        features = self.conv5(self.blocks(self.stem(x)))  # (B, 432, T, H/32, W/32)
        pooled = self.head(features.mean(dim=(2, 3, 4), keepdim=True))  # (B, 2048, 1, 1, 1)
        return self.fc(pooled.flatten(1))  # (B, classes)
