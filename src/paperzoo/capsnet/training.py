"""CapsNet and its CNN baseline as engine methods (`paperzoo train capsnet`, `paperzoo train capsnet_baseline`).

Defaults follow Sabour et al. 2017 (arXiv 1710.09829, Sec. 4-5): Adam at 1e-3 with TensorFlow's exponentially
decaying rate (x0.96 every 2,000 steps, as in the authors' code), batch 128, shifts of up to 2 px. The task is
one digit per image (`mnist`) or two overlapping digits (`multimnist`, Sec. 6) built on the fly from the batch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo.capsnet.baseline import BaselineCNN, BaselineConfig
from paperzoo.capsnet.capsules import margin_loss
from paperzoo.capsnet.data import multimnist
from paperzoo.capsnet.model import CapsNet, CapsNetConfig, capsnet_loss
from paperzoo.config import at_least, require
from paperzoo.data import ImageSplit, fashion_mnist, mnist_5k
from paperzoo.data.transforms import random_affine, random_shift
from paperzoo.engine.trainer import StepOutput, TrainConfig

Task = Literal["mnist", "multimnist"]
IMAGE_SIZES = {"mnist": 28, "multimnist": 36}  # multimnist: two digits shifted by up to 4 px on a 36x36 canvas


def paper_schedule(steps: int = 30000, batch_size: int = 128) -> TrainConfig:
    """The paper's optimisation (Sec. 4 and the authors' code): Adam at 1e-3, the rate decayed by 0.96 every 2,000
    steps (smoothly), for `steps` steps of `batch_size`."""
    return TrainConfig(steps=steps, batch_size=batch_size, optimizer="adam", lr=1e-3, schedule="exponential",
                       decay_every=2000, lr_decay=0.96, log_every=50)


def _check_task(cfg, prefix: str) -> None:
    """Shared by CapsNet and the baseline: the model takes the task's images; a held-out set of one or more."""
    size = IMAGE_SIZES[cfg.task]
    require(cfg.model.image_size == size, prefix + "model.image_size", cfg.model.image_size,
            f"{size} for task={cfg.task} (its images are {size}x{size})")
    at_least(cfg, prefix, 0, "max_shift")
    at_least(cfg, prefix, 1, "test_examples")


@dataclass
class CapsNetTrainConfig:
    """`paperzoo train capsnet`: the CapsNet, the digits and task, the augmentation and the training (the paper's
    schedule by default)."""

    model: CapsNetConfig = field(default_factory=CapsNetConfig)
    data: Literal["mnist5k", "fashion-mnist"] = "mnist5k"
    """The digits: mnist5k (the 5,000 real MNIST digits that ship offline) or fashion-mnist (`apt-get install dataset-
    fashion-mnist`)."""
    task: Task = "mnist"
    """mnist (one digit per image) or multimnist (two overlapping digits on a 36x36 canvas, Sec. 6; set
    model.image_size=36)."""
    max_shift: int = 2
    """Mnist: shift augmentation (px); multimnist uses 4 px per digit (Sec. 6)."""
    test_examples: int = 1000
    """Held-out images (or MultiMNIST pairs) the evaluation scores."""
    affine_test: bool = False
    """Mnist: also evaluate on the test digits affinely warped (Sec. 5.2), test_affine_acc."""
    train: TrainConfig = field(default_factory=paper_schedule)

    def check(self, prefix: str) -> None:
        _check_task(self, prefix)


@dataclass
class BaselineTrainConfig:
    """`paperzoo train capsnet_baseline`: the CNN baseline on the same digits and tasks as `capsnet`."""

    model: BaselineConfig = field(default_factory=BaselineConfig)
    data: Literal["mnist5k", "fashion-mnist"] = "mnist5k"
    """The digits: mnist5k (the 5,000 real MNIST digits that ship offline) or fashion-mnist (`apt-get install dataset-
    fashion-mnist`)."""
    task: Task = "mnist"
    """mnist (one digit per image) or multimnist (two overlapping digits on a 36x36 canvas, Sec. 6; set
    model.image_size=36)."""
    max_shift: int = 2
    """mnist: shift augmentation (px); multimnist uses 4 px per digit (Sec. 6)."""
    test_examples: int = 1000
    """Held-out images (or MultiMNIST pairs) the evaluation scores."""
    affine_test: bool = False
    """Mnist: also evaluate on the test digits affinely warped (Sec. 5.2), test_affine_acc."""
    train: TrainConfig = field(default_factory=paper_schedule)

    def check(self, prefix: str) -> None:
        _check_task(self, prefix)


@functools.lru_cache(maxsize=2)
def load_digits(name: str) -> ImageSplit:
    """Read once per process (parsing the 5,000-digit CSV takes seconds); callers do not modify the tensors."""
    return fashion_mnist() if name == "fashion-mnist" else mnist_5k()


def multimnist_test_set(split: ImageSplit, n: int, seed: int = 1234):
    """A fixed set of about `n` overlay pairs from the held-out digits (same pairs on every call)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        parts = [multimnist(split.test_x, split.test_y) for _ in range(max(1, -(-n // len(split.test_x))) + 1)]
    overlays, labels, digits = (torch.cat(p)[:n] for p in zip(*parts))
    return overlays, labels, digits


def affine_test_set(images: torch.Tensor, seed: int = 4321) -> torch.Tensor:
    """The same affNIST-style warps of `images` on every call (rotation, shear, scale; see `random_affine`)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return random_affine(images)


def batched(fn, x: torch.Tensor, device: torch.device, batch: int = 250) -> torch.Tensor:
    return torch.cat([fn(x[i:i + batch].to(device)).cpu() for i in range(0, len(x), batch)])


def pair_accuracy(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Both digits right: the two highest scores are exactly the two classes present (Sec. 6)."""
    top2 = scores.topk(2, dim=1).indices.sort(1).values
    return (top2 == labels.sort(1).values).all(1).float().mean().item()


class _DigitsMethod:
    """What CapsNet and the baseline share: data, the held-out set, the task's inputs."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.data = load_digits(cfg.data)
        self.test_x, self.test_y = self.data.test_x[:cfg.test_examples], self.data.test_y[:cfg.test_examples]
        if cfg.task == "multimnist":
            self.test_x, self.test_y, self.test_digits = multimnist_test_set(self.data, cfg.test_examples)
        self.test_affine = affine_test_set(self.test_x) if cfg.affine_test and cfg.task == "mnist" else None

    def _accuracies(self, score) -> dict[str, float]:
        """Test accuracy of `score` (images -> (B, J) class scores), and on the warped digits when configured."""
        out = {"test_acc": (score(self.test_x).argmax(1) == self.test_y).float().mean().item()}
        if self.test_affine is not None:
            out["test_affine_acc"] = (score(self.test_affine).argmax(1) == self.test_y).float().mean().item()
        return out

    def train_dataset(self):
        return self.data.train()


class CapsNetMethod(_DigitsMethod):
    """The engine `Method` of `paperzoo train capsnet`: `CapsNet` with the margin + reconstruction loss on the digits
    of `CapsNetTrainConfig`; evaluates test accuracy (`test_acc`; MultiMNIST: both digits right)."""

    def build_model(self) -> nn.Module:
        return CapsNet(self.cfg.model)

    def training_step(self, model: nn.Module, batch) -> StepOutput:
        x, y = batch
        weight = self.cfg.model.reconstruction_weight
        if self.cfg.task == "mnist":
            x = random_shift(x, self.cfg.max_shift)
            lengths, _, recon = model(x, y)
            loss, margin, rec = capsnet_loss(lengths, recon, x, y, weight)
            return StepOutput(loss, {"margin": margin.detach(), "recon": rec.detach(),
                                     "acc": (lengths.argmax(1) == y).float().mean()})
        overlay, pair, digits = multimnist(x, y)
        lengths, v, _ = model(overlay, pair[:, 0])
        margin = margin_loss(lengths, F.one_hot(pair, lengths.shape[1]).sum(1).to(lengths.dtype))
        decoder = model.module.decoder if hasattr(model, "module") else model.decoder
        # Sec. 6: each digit is reconstructed from its own capsule and compared with that digit alone.
        rec = sum(((decoder(v, pair[:, k]) - digits[:, k]) ** 2).flatten(1).sum(1).mean() for k in range(2))
        return StepOutput(margin + weight * rec, {"margin": margin.detach(), "recon": rec.detach(),
                                                  "pair_acc": pair_accuracy(lengths.detach(), pair)})

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        score = lambda x: batched(lambda b: model.capsules(b).norm(dim=-1), x, device)
        if self.cfg.task == "mnist":
            return self._accuracies(score)
        return {"test_pair_acc": pair_accuracy(score(self.test_x), self.test_y)}


class BaselineMethod(_DigitsMethod):
    """The engine `Method` of `paperzoo train capsnet_baseline`: `BaselineCNN` with cross-entropy (MultiMNIST:
    per-class sigmoid) on the same data as `CapsNetMethod`."""

    def build_model(self) -> nn.Module:
        return BaselineCNN(self.cfg.model)

    def training_step(self, model: nn.Module, batch) -> StepOutput:
        x, y = batch
        if self.cfg.task == "mnist":
            logits = model(random_shift(x, self.cfg.max_shift))
            return StepOutput(F.cross_entropy(logits, y), {"acc": (logits.argmax(1) == y).float().mean()})
        overlay, pair, _ = multimnist(x, y)
        logits = model(overlay)
        targets = F.one_hot(pair, logits.shape[1]).sum(1).to(logits.dtype)  # (M, J) two-hot
        return StepOutput(F.binary_cross_entropy_with_logits(logits, targets),
                          {"pair_acc": pair_accuracy(logits.detach(), pair)})

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        score = lambda x: batched(model, x, device)
        if self.cfg.task == "mnist":
            return self._accuracies(score)
        return {"test_pair_acc": pair_accuracy(score(self.test_x), self.test_y)}
