"""The multi-GPU post: DDP with torchrun, DataParallel done right, per-rank augmentation (the engine in
`paperzoo.engine` runs every paper under torchrun; this package holds the post's own pieces and claims)."""

from paperzoo.multigpu.augment import POLICIES, augment, policy_for_rank, random_erase, random_rotate
from paperzoo.multigpu.dp import ReplicaLoss, replica_mean
from paperzoo.multigpu.launch import GroupError, RankOutcome, spawn_group
from paperzoo.multigpu.method import AugmentConfig, MnistMLP, RankAugmentConfig, RankAugmentMNIST

__all__ = [
    "POLICIES",
    "AugmentConfig",
    "GroupError",
    "MnistMLP",
    "RankAugmentConfig",
    "RankAugmentMNIST",
    "RankOutcome",
    "ReplicaLoss",
    "augment",
    "policy_for_rank",
    "random_erase",
    "random_rotate",
    "replica_mean",
    "spawn_group",
]
