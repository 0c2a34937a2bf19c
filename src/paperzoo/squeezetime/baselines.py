"""Video baselines of the SqueezeTime paper's comparisons, with SqueezeTime's interface: clips (B, C, T, H, W) ->
logits (B, classes). Written from the papers (no torchvision):

  R3D       3D ResNet-18: every conv 3x3x3 (Tran et al., "A Closer Look at Spatiotemporal Convolutions", CVPR 2018,
            arXiv 1711.11248, Sec. 3.2); stem 3x7x7 stride (1, 2, 2); stages stride 2 in time and space.
  R(2+1)D   the same net with each 3x3x3 conv factorised into a 1x3x3 spatial conv and a 3x1x1 temporal conv with
            M = floor(3 * 9 * N_in * N_out / (9 * N_in + 3 * N_out)) middle channels (same paper, Sec. 3.5).
  TSN       a 2D ResNet-18 on every frame, class scores averaged over frames: no temporal modelling
            (Wang et al., "Temporal Segment Networks", ECCV 2016, arXiv 1608.00859, Eq. 1, average consensus).
  TSM       the 2D ResNet-18 with a temporal shift at the start of every residual branch: 1/8 of the channels
            move one frame back, 1/8 one frame forward, zero-padded (Lin et al., "TSM", ICCV 2019, arXiv 1811.08383,
            Sec. 3, residual shift), scores averaged over frames.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

STAGE_WIDTHS = (64, 128, 256, 512)


def _widths(width_mult: float, layers: tuple[int, ...]) -> list[int]:
    if width_mult <= 0 or len(layers) != 4 or min(layers) < 1:
        raise ValueError(f"width_mult must be > 0 and layers four counts >= 1, got {width_mult}, {layers}")
    return [max(1, int(w * width_mult)) for w in STAGE_WIDTHS]


def _check_clip(x: torch.Tensor, channels: int, frames: int) -> None:
    if x.dim() != 5 or x.shape[1] != channels or x.shape[2] != frames:
        raise ValueError(f"expected clips (B, {channels}, {frames}, H, W), got shape {tuple(x.shape)}")


def _init(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# ---- 3D ResNets: R3D and R(2+1)D ----

def _conv3d(dim_in: int, dim_out: int, stride: int, factorised: bool) -> nn.Module:
    if not factorised:
        return nn.Conv3d(dim_in, dim_out, 3, stride=stride, padding=1, bias=False)
    mid = (3 * 9 * dim_in * dim_out) // (9 * dim_in + 3 * dim_out)
    return nn.Sequential(
        nn.Conv3d(dim_in, mid, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False),
        nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
        nn.Conv3d(mid, dim_out, (3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0), bias=False))


class Block3d(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, stride: int, factorised: bool):
        super().__init__()
        self.body = nn.Sequential(
            _conv3d(dim_in, dim_out, stride, factorised), nn.BatchNorm3d(dim_out), nn.ReLU(inplace=True),
            _conv3d(dim_out, dim_out, 1, factorised), nn.BatchNorm3d(dim_out))
        self.shortcut = (nn.Sequential(nn.Conv3d(dim_in, dim_out, 1, stride=stride, bias=False),
                                       nn.BatchNorm3d(dim_out)) if stride != 1 or dim_in != dim_out else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class VideoResNet3d(nn.Module):
    """R3D-18 (`factorised=False`) or R(2+1)D-18 (`factorised=True`)."""

    def __init__(self, num_classes: int, num_frames: int = 16, width_mult: float = 1.0,
                 layers: tuple[int, ...] = (2, 2, 2, 2), factorised: bool = False, in_channels: int = 3):
        super().__init__()
        widths = _widths(width_mult, layers)
        self.num_frames, self.in_channels = num_frames, in_channels
        if factorised:  # R(2+1)D stem: 1x7x7 to 45 (x width) channels, then 3x1x1
            mid = max(1, int(45 * width_mult))
            stem = [nn.Conv3d(in_channels, mid, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
                    nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
                    nn.Conv3d(mid, widths[0], (3, 1, 1), padding=(1, 0, 0), bias=False)]
        else:
            stem = [nn.Conv3d(in_channels, widths[0], (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False)]
        self.stem = nn.Sequential(*stem, nn.BatchNorm3d(widths[0]), nn.ReLU(inplace=True))
        blocks, dim = [], widths[0]
        for i, (width, count) in enumerate(zip(widths, layers)):
            for j in range(count):
                blocks.append(Block3d(dim, width, 2 if i > 0 and j == 0 else 1, factorised))
                dim = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(dim, num_classes)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_clip(x, self.in_channels, self.num_frames)
        features = self.blocks(self.stem(x))  # (B, D, T', H', W')
        return self.fc(features.mean(dim=(2, 3, 4)))  # (B, classes)


# ---- 2D ResNet-18 on frames: TSN and TSM ----

def temporal_shift(x: torch.Tensor, num_frames: int, fold_div: int = 8) -> torch.Tensor:
    """TSM's shift on frame-major features (B*T, C, H, W): channels [0, C/8) take the next frame's values,
    [C/8, 2C/8) the previous frame's, the rest stay; frames beyond the clip are zeros."""
    bt, c, h, w = x.shape
    x = x.reshape(bt // num_frames, num_frames, c, h, w)  # (B, T, C, H, W)
    fold = c // fold_div
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]  # shift left in time: frame t sees frame t+1
    out[:, 1:, fold:2 * fold] = x[:, :-1, fold:2 * fold]  # shift right in time: frame t sees frame t-1
    out[:, :, 2 * fold:] = x[:, :, 2 * fold:]
    return out.reshape(bt, c, h, w)  # (B*T, C, H, W)


class Block2d(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, stride: int, shift_frames: int | None):
        super().__init__()
        self.shift_frames = shift_frames
        self.body = nn.Sequential(
            nn.Conv2d(dim_in, dim_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(dim_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(dim_out, dim_out, 3, padding=1, bias=False), nn.BatchNorm2d(dim_out))
        self.shortcut = (nn.Sequential(nn.Conv2d(dim_in, dim_out, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(dim_out)) if stride != 1 or dim_in != dim_out else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = temporal_shift(x, self.shift_frames) if self.shift_frames else x
        return F.relu(self.body(branch) + self.shortcut(x))


class FrameResNet2d(nn.Module):
    """ResNet-18 on each frame, scores averaged over frames: TSN (`shift=False`) or TSM (`shift=True`)."""

    def __init__(self, num_classes: int, num_frames: int = 16, width_mult: float = 1.0,
                 layers: tuple[int, ...] = (2, 2, 2, 2), shift: bool = False, in_channels: int = 3):
        super().__init__()
        widths = _widths(width_mult, layers)
        self.num_frames, self.in_channels = num_frames, in_channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        blocks, dim = [], widths[0]
        for i, (width, count) in enumerate(zip(widths, layers)):
            for j in range(count):
                blocks.append(Block2d(dim, width, 2 if i > 0 and j == 0 else 1, num_frames if shift else None))
                dim = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(dim, num_classes)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_clip(x, self.in_channels, self.num_frames)
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)  # (B*T, C, H, W), frame-major per clip
        scores = self.fc(self.blocks(self.stem(frames)).mean(dim=(2, 3)))  # (B*T, classes)
        return scores.reshape(b, t, -1).mean(dim=1)  # (B, classes): average consensus


BaselineName = Literal["r3d", "r2plus1d", "tsn", "tsm"]


def build_baseline(name: BaselineName, num_classes: int, num_frames: int = 16, width_mult: float = 1.0,
                   layers: tuple[int, ...] = (2, 2, 2, 2), in_channels: int = 3) -> nn.Module:
    """A video baseline by name: "r3d" (3D ResNet), "r2plus1d" (factorised (2+1)D ResNet), "tsn" (2D ResNet per
    frame, scores averaged) or "tsm" (TSN with the temporal shift); `layers` blocks per stage (ResNet-18's
    (2, 2, 2, 2) by default). Clips (B, in_channels, num_frames, H, W) -> logits (B, num_classes)."""
    kwargs = dict(num_frames=num_frames, width_mult=width_mult, layers=layers, in_channels=in_channels)
    if name in ("r3d", "r2plus1d"):
        return VideoResNet3d(num_classes, factorised=name == "r2plus1d", **kwargs)
    if name in ("tsn", "tsm"):
        return FrameResNet2d(num_classes, shift=name == "tsm", **kwargs)
    raise ValueError(f"unknown baseline {name!r}; choose from r3d, r2plus1d, tsn, tsm")
