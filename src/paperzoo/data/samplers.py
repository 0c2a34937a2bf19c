"""Deterministic, resumable samplers.

`ShardedEpochSampler` gives each rank its shard of one epoch's permutation (like `DistributedSampler`): the
permutation comes from `seed + epoch`, so `set_epoch` must be called every epoch (the trainer does). Uneven data
is padded by repeating the first indices, so every rank sees the same number of batches and no collective waits
for a rank that ran out (DistributedSampler's choice; the repeated few examples are the price).
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
from torch.utils.data import Sampler


class ShardedEpochSampler(Sampler[int]):
    """This rank's indices of one epoch of a dataset of `size` examples: a permutation seeded by `seed + epoch`
    (or the identity with `shuffle=False`), padded to a multiple of `world_size`, every `world_size`-th index
    from `rank` on; call `set_epoch(e)` before each epoch. `len()` is the same on every rank."""

    def __init__(self, size: int, *, rank: int = 0, world_size: int = 1, shuffle: bool = True, seed: int = 0):
        if size <= 0:
            raise ValueError("cannot sample from an empty dataset")
        self.size, self.rank, self.world_size = size, rank, world_size
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self.per_rank = math.ceil(size / world_size)

    def set_epoch(self, epoch: int) -> None:
        """Draw the next `iter()` from epoch `epoch`'s permutation."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        padded = order + order[: self.per_rank * self.world_size - self.size]
        return iter(padded[self.rank :: self.world_size])

    def __len__(self) -> int:
        return self.per_rank


def epoch_batches(sampler: ShardedEpochSampler, batch_size: int, drop_last: bool) -> list[list[int]]:
    """The index batches of the sampler's current epoch."""
    indices = list(sampler)
    batches = [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return batches
