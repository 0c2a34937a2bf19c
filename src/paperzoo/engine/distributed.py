"""torchrun's environment, process-group setup and teardown, rank-0 helpers and per-rank seeds.

torchrun sets RANK, LOCAL_RANK, WORLD_SIZE and LOCAL_WORLD_SIZE (and MASTER_ADDR/PORT or a rendezvous); the same
code runs as one plain process when they are absent. Backend: nccl on GPU (device from LOCAL_RANK), gloo on CPU.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_env() -> DistEnv:
    """Read the launcher's environment (torchrun); defaults describe a single process."""
    read = lambda name, default: int(os.environ.get(name, default))  # noqa: E731
    return DistEnv(
        rank=read("RANK", 0),
        local_rank=read("LOCAL_RANK", 0),
        world_size=read("WORLD_SIZE", 1),
        local_world_size=read("LOCAL_WORLD_SIZE", 1),
    )


def is_main() -> bool:
    return dist_env().is_main


def pick_device(requested: str, env: DistEnv) -> torch.device:
    """`auto` = this rank's GPU when CUDA is available, else the CPU."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        torch.cuda.set_device(env.local_rank)
        return torch.device("cuda", env.local_rank)
    return torch.device(requested)


def init_process_group(env: DistEnv, device: torch.device, timeout_s: float) -> None:
    """Join the process group (once); a dead rank ends the others after `timeout_s` instead of hanging."""
    if not env.distributed or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s), **kwargs)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average scalar metrics over all ranks (every rank must call this: it is a collective)."""
    if not dist.is_initialized() or not values:
        return values
    keys = sorted(values)
    packed = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(packed, op=dist.ReduceOp.SUM)
    packed /= dist.get_world_size()
    return dict(zip(keys, packed.tolist()))


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed python, numpy and torch; each rank gets its own stream (seed + rank) so per-rank augmentation differs."""
    seed = seed + rank
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
