"""torchrun's environment, process-group setup and teardown, rank-0 helpers and per-rank seeds.

torchrun sets RANK, LOCAL_RANK, WORLD_SIZE and LOCAL_WORLD_SIZE (and MASTER_ADDR/PORT or a rendezvous); the same
code runs as one plain process when they are absent. Backend: nccl on GPU (device from LOCAL_RANK), gloo on CPU.
Under `torchrun --max-restarts K` it also sets TORCHELASTIC_RESTART_COUNT, which tells a restarted worker to
resume from the last checkpoint.

Seeds: one base seed; rank r draws from `derive_seed(seed, r)` (rank 0 keeps the base seed, so a one-process run
and rank 0 of a DDP run see the same augmentations), and DataLoader workers from a generator seeded by
`derive_seed(seed, rank, epoch)`, so streams differ across ranks and workers and repeat exactly when a run repeats.
"""

from __future__ import annotations

import base64
import os
import random
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from paperzoo.errors import ConfigError


@dataclass(frozen=True)
class DistEnv:
    """This process's place in a torchrun group, read from RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE and
    TORCHELASTIC_RESTART_COUNT (`dist_env()`); the defaults are one process."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    restart_count: int = 0  # how often torchrun restarted the workers (elastic); > 0 means "resume"

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_env() -> DistEnv:
    """Read the launcher's environment (torchrun); defaults describe a single process."""

    def read(name: str, default: int) -> int:
        text = os.environ.get(name, str(default))
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"environment variable {name}={text!r} must be an integer (set by torchrun)") from None

    env = DistEnv(
        rank=read("RANK", 0),
        local_rank=read("LOCAL_RANK", 0),
        world_size=read("WORLD_SIZE", 1),
        local_world_size=read("LOCAL_WORLD_SIZE", 1),
        restart_count=read("TORCHELASTIC_RESTART_COUNT", 0),
    )
    if not 0 <= env.rank < env.world_size:
        raise ConfigError(f"inconsistent launcher environment: RANK={env.rank}, WORLD_SIZE={env.world_size}; "
                          "launch with torchrun rather than setting these by hand")
    return env


def is_main() -> bool:
    """True on rank 0 (and in a single process): the rank that writes files and prints."""
    return dist_env().is_main


def pick_device(requested: str, env: DistEnv) -> torch.device:
    """`auto` = this rank's GPU (LOCAL_RANK) when CUDA is available, else the CPU."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        count = torch.cuda.device_count()
        if env.local_rank >= count:
            raise ConfigError(f"LOCAL_RANK={env.local_rank} but only {count} GPU(s) are visible "
                              f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); use "
                              f"torchrun --nproc_per_node <= {count}")
        torch.cuda.set_device(env.local_rank)
        return torch.device("cuda", env.local_rank)
    return torch.device(requested)


_groups_created = 0  # process groups this process has created (each gets its own store namespace)


def init_process_group(env: DistEnv, device: torch.device, timeout_s: float) -> bool:
    """Join the process group; a dead or stuck rank ends the others after `timeout_s` instead of hanging.
    Returns True when this call created the group (the caller then tears it down)."""
    global _groups_created
    if not env.distributed or dist.is_initialized():
        return False
    timeout = timedelta(seconds=timeout_s)
    kwargs: dict = {"backend": "gloo", "timeout": timeout}
    if device.type == "cuda":
        # let NCCL's watchdog abort a collective that outlives the timeout (gloo honours it by itself)
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
        kwargs.update(backend="nccl", device_id=device)
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        # torchrun's agent keeps one TCPStore for every restart and every group: a restarted worker, or a second
        # group after teardown, would read the dead group's keys and hang (pytorch#135712, #114585), so each
        # (restart, group) gets a fresh namespace in that store
        store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), env.world_size,
                              is_master=False, timeout=timeout)
        prefix = f"paperzoo/restart{env.restart_count}/group{_groups_created}"
        kwargs.update(store=dist.PrefixStore(prefix, store), rank=env.rank, world_size=env.world_size)
    dist.init_process_group(**kwargs)
    _groups_created += 1
    return True


def teardown(wait_for_all: bool = False) -> None:
    """Leave the process group; `wait_for_all` (a run that ended normally) first waits until every rank has
    finished its collectives: without it, a rank that destroys a gloo group while another still completes FSDP2's
    last collectives can abort at exit ("terminate called without an active exception", seen in 1 of 4 CPU runs).
    A failing rank does not wait, so that torchrun ends the others at once instead of after the timeout."""
    if dist.is_initialized():
        if wait_for_all:
            dist.barrier()
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


def all_gather_objects(value) -> list:
    """[value of rank 0, value of rank 1, ...] (a collective: every rank calls it); [value] in one process."""
    if not dist.is_initialized():
        return [value]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def derive_seed(seed: int, *keys: int) -> int:
    """A 32-bit seed for the stream named by `keys` (rank, worker, epoch, ...); distinct keys give unrelated
    streams, unlike `seed + rank`, where seed 1 rank 0 and seed 0 rank 1 would coincide."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed python, numpy and torch; each rank gets its own stream so per-rank augmentation differs.
    Rank 0 uses `seed` itself, so a one-process run repeats rank 0 of a DDP run."""
    seed = seed if rank == 0 else derive_seed(seed, rank)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """This process's python, numpy, torch (and current CUDA device) RNG states as JSON-able values."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    encode = lambda t: base64.b64encode(t.cpu().numpy().tobytes()).decode()  # noqa: E731
    state = {"python": [version, list(internal), gauss], "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
             "torch": encode(torch.get_rng_state())}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = encode(torch.cuda.get_rng_state())
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` returned (on the current CUDA device for the CUDA part)."""
    decode = lambda text: torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)  # noqa: E731
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(decode(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(decode(state["cuda"]))
