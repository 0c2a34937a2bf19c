"""Training small ViTs with and without registers on real 28x28 images (Fashion-MNIST, else the 5,000 MNIST
digits) with the shared engine: supervised classification from the [CLS] token, as DeiT-III (one of the three
model families in which Darcet et al., arXiv 2309.16588, Sec. 2, find artifacts)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo.config import at_least, positive, require, require_divisor
from paperzoo.data import fashion_mnist, fashion_mnist_available, mnist_5k
from paperzoo.data.sources import ImageSplit
from paperzoo.data.transforms import random_shift
from paperzoo.engine.trainer import StepOutput, TrainConfig
from paperzoo.errors import ConfigError
from paperzoo.registers.model import VisionTransformer

IMAGE_SIZE = 28  # Fashion-MNIST and the MNIST digits


@dataclass
class RegistersConfig:
    """`paperzoo train vit_registers`: a small ViT with registers on real 28x28 images, classified from its [CLS]
    token."""

    num_registers: int = 4
    """Register tokens appended after [CLS] (0 = a plain ViT)."""
    dataset: str = "auto"
    """Auto (Fashion-MNIST when installed, else mnist_5k) | fashion_mnist | mnist_5k."""
    n_train: int = 0
    """0 = every training image."""
    n_test: int = 2000
    """Held-out images evaluated."""
    patch_size: int = 4
    """Side of a patch in pixels (a divisor of 28)."""
    embed_dim: int = 64
    """Token width."""
    depth: int = 4
    """Transformer blocks."""
    num_heads: int = 2
    """Attention heads (a divisor of embed_dim)."""
    mlp_ratio: float = 4.0
    """Hidden width of each MLP, as a multiple of embed_dim."""
    layerscale: float = 0.0
    """LayerScale init; 0 = none."""
    max_shift: int = 0
    """Random-translation augmentation in pixels."""
    label_smoothing: float = 0.0
    """Label smoothing of the cross-entropy."""
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=3000, batch_size=128, optimizer="adamw", lr=2e-3, weight_decay=0.05, schedule="cosine",
        warmup_steps=100, grad_clip=1.0, log_every=50))

    def check(self, prefix: str) -> None:
        at_least(self, prefix, 0, "num_registers", "n_train", "layerscale", "max_shift")
        at_least(self, prefix, 1, "n_test", "embed_dim", "depth")
        positive(self, prefix, "mlp_ratio")
        require(0 <= self.label_smoothing < 1, prefix + "label_smoothing", self.label_smoothing, "in [0, 1)")
        require_divisor(self.patch_size, prefix + "patch_size", IMAGE_SIZE, f"the image size {IMAGE_SIZE}")
        require_divisor(self.num_heads, prefix + "num_heads", self.embed_dim, f"{prefix}embed_dim={self.embed_dim}")


def load_images(dataset: str = "auto", n_train: int = 0) -> ImageSplit:
    if dataset == "auto":
        dataset = "fashion_mnist" if fashion_mnist_available() else "mnist_5k"
    if dataset == "fashion_mnist":
        split = fashion_mnist()
    elif dataset == "mnist_5k":
        split = mnist_5k()
    else:
        raise ConfigError(f"unknown dataset {dataset!r}; choose auto, fashion_mnist or mnist_5k")
    return split.subset(n_train, len(split.test_x)) if n_train else split


class RegistersClassification:
    """Method protocol for the engine: cross-entropy on the [CLS] head, inputs standardised."""

    def __init__(self, cfg: RegistersConfig, data: ImageSplit | None = None):
        self.cfg = cfg
        self.data = data if data is not None else load_images(cfg.dataset, cfg.n_train)
        self.mean, self.std = float(self.data.train_x.mean()), float(self.data.train_x.std())

    def normalize(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw - self.mean) / self.std

    def build_model(self) -> VisionTransformer:
        c = self.cfg
        _, channels, height, width = self.data.train_x.shape
        if height != width:
            raise ConfigError(f"square images expected, got {height}x{width}")
        return VisionTransformer(img_size=height, patch_size=c.patch_size, in_chans=channels, embed_dim=c.embed_dim,
                                 depth=c.depth, num_heads=c.num_heads, mlp_ratio=c.mlp_ratio,
                                 init_values=c.layerscale or None, num_registers=c.num_registers,
                                 num_classes=len(self.data.classes))

    def train_dataset(self):
        return self.data.train()

    def training_step(self, model: nn.Module, batch) -> StepOutput:
        x, y = batch
        logits = model(self.normalize(random_shift(x, self.cfg.max_shift)))
        loss = F.cross_entropy(logits, y, label_smoothing=self.cfg.label_smoothing)
        return StepOutput(loss, {"acc": (logits.argmax(1) == y).float().mean()})

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        x, y = self.data.test_x[:self.cfg.n_test], self.data.test_y[:self.cfg.n_test]
        correct = sum(int((model(self.normalize(x[i:i + 500].to(device))).argmax(1).cpu() == y[i:i + 500]).sum())
                      for i in range(0, len(x), 500))
        return {"test_acc": correct / len(x)}
