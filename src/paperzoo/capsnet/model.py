"""The CapsNet of "Dynamic Routing Between Capsules" (Sabour, Frosst & Hinton, NeurIPS 2017, arXiv 1710.09829).

The default `CapsNetConfig` is the paper's MNIST network (Sec. 4, Fig. 1-2): 28x28 input, Conv1 256@9x9 ReLU,
PrimaryCaps 32 x 8D (9x9, stride 2: 6*6*32 = 1152 capsules), DigitCaps 10 x 16D with 3 routing iterations, and the
reconstruction decoder 512-1024-784; 8.2M parameters (6.8M without the decoder). The MultiMNIST network is the
same with `image_size=36`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo.capsnet.capsules import Decoder, DigitCaps, PrimaryCaps, margin_loss
from paperzoo.config import at_least, require


@dataclass
class CapsNetConfig:
    """The CapsNet's sizes; the defaults are the paper's MNIST network (Sec. 4, Fig. 1-2, 8.2M parameters)."""

    image_size: int = 28
    """Side of the square input images (28 for MNIST, 36 for MultiMNIST)."""
    in_channels: int = 1
    """Channels of the input images."""
    conv_channels: int = 256
    """Output channels of Conv1 (ReLU)."""
    kernel: int = 9
    """Kernel size of Conv1 and of the PrimaryCaps convolution (stride 2)."""
    primary_types: int = 32
    """Capsule types of PrimaryCaps (one convolution channel group each)."""
    primary_dim: int = 8
    """Dimension of a primary capsule."""
    classes: int = 10
    """Digit capsules, one per class."""
    digit_dim: int = 16
    """Dimension of a digit capsule."""
    iterations: int = 3
    """Routing iterations (Procedure 1)."""
    decoder_hidden: tuple[int, int] = (512, 1024)
    """Hidden widths of the reconstruction decoder."""
    reconstruction_weight: float = 0.0005  # Sec. 4.1: scaled down so it does not dominate the margin loss
    """Weight of the reconstruction loss (sum of squared errors) beside the margin loss (Sec. 4.1)."""

    def check(self, prefix: str) -> None:
        at_least(self, prefix, 1, "in_channels", "conv_channels", "kernel", "primary_types", "primary_dim", "classes",
                 "digit_dim", "iterations")
        at_least(self, prefix, 0, "reconstruction_weight")
        require(self.primary_grid >= 1, prefix + "image_size", self.image_size,
                f">= 2 * kernel - 1 = {2 * self.kernel - 1} (two {self.kernel}x{self.kernel} convolutions)")

    @property
    def primary_grid(self) -> int:
        """Side of the PrimaryCaps grid: conv1 (stride 1) then the stride-2 capsule conv, both `kernel` wide."""
        return (self.image_size - self.kernel + 1 - self.kernel) // 2 + 1

    @property
    def primary_capsules(self) -> int:
        """Number of primary capsules: `primary_types * primary_grid ** 2` (1152 for the paper's net)."""
        return self.primary_types * self.primary_grid ** 2


class CapsNet(nn.Module):
    """forward(images, labels=None) -> (lengths (B, J), capsules (B, J, D), reconstruction (B, C, H, W)).

    The decoder sees the capsule of the true label while training (when `labels` are given) and the longest
    capsule otherwise (Sec. 4.1).
    """

    def __init__(self, cfg: CapsNetConfig = CapsNetConfig()):
        super().__init__()
        if cfg.primary_grid < 1:
            raise ValueError(f"image_size={cfg.image_size} is too small for two {cfg.kernel}x{cfg.kernel} "
                             "convolutions; use image_size >= 2 * kernel - 1")
        self.cfg = cfg
        self.conv1 = nn.Conv2d(cfg.in_channels, cfg.conv_channels, cfg.kernel)
        self.primary = PrimaryCaps(cfg.conv_channels, cfg.primary_types, cfg.primary_dim, cfg.kernel, 2)
        self.digits = DigitCaps(cfg.primary_capsules, cfg.primary_dim, cfg.classes, cfg.digit_dim, cfg.iterations)
        self.decoder = Decoder(cfg.classes, cfg.digit_dim, cfg.decoder_hidden,
                               (cfg.in_channels, cfg.image_size, cfg.image_size))

    def capsules(self, images: torch.Tensor) -> torch.Tensor:
        """The parent (digit) capsules v: (B, C, H, W) -> (B, J, D)."""
        cfg = self.cfg
        expected = (cfg.in_channels, cfg.image_size, cfg.image_size)
        if images.dim() != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"CapsNet expects images of shape (batch, {expected[0]}, {expected[1]}, {expected[2]}) "
                             f"(configured image_size={cfg.image_size}), got {tuple(images.shape)}")
        return self.digits(self.primary(F.relu(self.conv1(images))))

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        v = self.capsules(images)  # (B, J, D)
        lengths = v.norm(dim=-1)  # (B, J)
        keep = labels if (self.training and labels is not None) else lengths.argmax(1)
        return lengths, v, self.decoder(v, keep)


def capsnet_loss(lengths: torch.Tensor, reconstruction: torch.Tensor, images: torch.Tensor, labels: torch.Tensor,
                 reconstruction_weight: float = 0.0005) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, margin, reconstruction): margin loss + weight * sum of squared pixel errors (Sec. 4.1), per image."""
    margin = margin_loss(lengths, labels)
    recon = ((reconstruction - images) ** 2).flatten(1).sum(1).mean()
    return margin + reconstruction_weight * recon, margin, recon


def parameter_count(module: nn.Module) -> int:
    """The number of parameters (elements) of `module`, trainable or not."""
    return sum(p.numel() for p in module.parameters())
