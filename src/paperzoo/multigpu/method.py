"""The multi-GPU post's example run: an MLP on the 5,000 real MNIST digits, trained by the engine with a different
augmentation policy on each rank (`policies[rank % len(policies)]`).

`paperzoo train rank_augment_mnist` runs it in one process; `torchrun --nproc_per_node 2 -m paperzoo train
rank_augment_mnist augment.policies=shift,rotate` runs it with DDP, rank 0 shifting and rank 1 rotating.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo.data import mnist_5k
from paperzoo.engine.distributed import dist_env
from paperzoo.engine.trainer import StepOutput, TrainConfig
from paperzoo.multigpu.augment import augment, check_policy, policy_for_rank


@dataclass
class AugmentConfig:
    """Which augmentation each rank applies."""

    policies: tuple[str, ...] = ("shift", "rotate")
    """Rank r uses policies[r % len(policies)]; a policy is an op of POLICIES or several joined by +."""


@dataclass
class RankAugmentConfig:
    """`paperzoo train rank_augment_mnist`: the MLP, the per-rank augmentation and the training."""

    hidden: int = 256
    """Width of the two hidden layers of the MLP."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=600, batch_size=64, lr=1e-3,
                                                                     log_every=20))


@functools.lru_cache(maxsize=1)
def mnist_digits():
    """The 5,000 real MNIST digits, parsed once per process (several runs of a claim share them)."""
    return mnist_5k()


class MnistMLP(nn.Module):
    """784 -> hidden -> hidden -> 10, ReLU; no BatchNorm, so DDP over ranks equals one process on the union batch."""

    def __init__(self, hidden: int = 256, classes: int = 10):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, classes)


class RankAugmentMNIST:
    """Method protocol: cross-entropy on real MNIST digits, augmented with this rank's policy."""

    def __init__(self, cfg: RankAugmentConfig):
        for policy in cfg.augment.policies:
            check_policy(policy)
        self.cfg = cfg
        self.policy = policy_for_rank(cfg.augment.policies, dist_env().rank)
        self.data = mnist_digits()

    def build_model(self) -> nn.Module:
        return MnistMLP(self.cfg.hidden)

    def train_dataset(self):
        return self.data.train()

    def training_step(self, model: nn.Module, batch) -> StepOutput:
        x, y = batch
        logits = model(augment(x, self.policy))
        return StepOutput(F.cross_entropy(logits, y), {"acc": (logits.argmax(1) == y).float().mean()})

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        logits = model(self.data.test_x.to(device))
        return {"test_acc": (logits.argmax(1).cpu() == self.data.test_y).float().mean().item()}
