"""What each rank runs for the claims (inside `spawn_group`, or under torchrun): the DDP runs whose parameters and
all-reduce counts the claims compare with one-process references, and the per-rank augmented views."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

from paperzoo.data.samplers import ShardedEpochSampler, epoch_batches
from paperzoo.engine import distributed as D
from paperzoo.engine.dry_run import dry_run_steps
from paperzoo.engine.trainer import StepOutput, TrainConfig, Trainer, TrainState
from paperzoo.multigpu.augment import augment, policy_for_rank, unseen_moves
from paperzoo.multigpu.method import AugmentConfig, MnistMLP, RankAugmentConfig, RankAugmentMNIST


@dataclass
class AllReduceCounter:
    """State of `counting_allreduce_hook`: how many bucket all-reduces DDP sent."""

    calls: int = 0


def counting_allreduce_hook(state: AllReduceCounter, bucket):
    """DDP comm hook: PyTorch's default all-reduce (average), counted."""
    state.calls += 1
    return allreduce_hook(None, bucket)


def flat_parameters(model: nn.Module) -> np.ndarray:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).cpu().numpy()


class PlainMNIST(RankAugmentMNIST):
    """No augmentation and no evaluation: a DDP run must then equal one process on the union batch."""

    def __init__(self, hidden: int):
        super().__init__(RankAugmentConfig(hidden=hidden, augment=AugmentConfig(policies=("none",))))

    def training_step(self, model: nn.Module, batch) -> StepOutput:
        x, y = batch
        return StepOutput(F.cross_entropy(model(x), y))

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        return {}


def sgd_config(spec: dict, batch_size: int, accumulation: int = 1) -> TrainConfig:
    return TrainConfig(steps=spec["steps"], batch_size=batch_size, accumulation=accumulation, optimizer="sgd",
                       lr=spec["lr"], momentum=0.9, seed=spec["seed"], log_every=spec["steps"], progress=False,
                       device="cpu")


def endless_index_batches(sampler: ShardedEpochSampler, batch_size: int) -> Iterator[list[int]]:
    """This rank's index batches in the engine's order (`Trainer._batches` with drop_last): epoch e's shard after
    `set_epoch(e)`, its incomplete last batch dropped, then epoch e + 1, without end."""
    for epoch in itertools.count():
        sampler.set_epoch(epoch)
        batches = epoch_batches(sampler, batch_size, drop_last=True)
        if not batches:
            raise ValueError(f"batch size {batch_size} is larger than this rank's {len(sampler)} examples")
        yield from batches


def sync_every_micro_step(spec: dict, method: PlainMNIST, counter: AllReduceCounter) -> np.ndarray:
    """Accumulation written by hand *without* `no_sync`: DDP all-reduces after every micro-step's backward. The data
    walks epochs as the engine does, so it matches the engine's accumulation at any number of steps."""
    env, a, b = D.dist_env(), spec["accumulation"], spec["micro_batch"]
    D.seed_everything(spec["seed"], 0)
    model = MnistMLP(spec["hidden"])
    ddp = nn.parallel.DistributedDataParallel(model)
    ddp.register_comm_hook(counter, counting_allreduce_hook)
    optimizer = torch.optim.SGD(model.parameters(), lr=spec["lr"], momentum=0.9)
    data = method.train_dataset()
    sampler = ShardedEpochSampler(len(data), rank=env.rank, world_size=env.world_size, seed=spec["seed"])
    batches = endless_index_batches(sampler, b)
    for _ in range(dry_run_steps(spec["steps"])):
        for _ in range(a):
            x, y = data[next(batches)]  # (b, 1, 28, 28), (b,)
            (F.cross_entropy(ddp(x), y) / a).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return flat_parameters(model)


class RecordingRankAugment(RankAugmentMNIST):
    """The per-rank augmentation method, unchanged, recording its first training step: the raw batch, the RNG
    state the step started from, and the input the model was actually fed (a forward pre-hook on the model)."""

    def __init__(self, cfg: RankAugmentConfig):
        super().__init__(cfg)
        self.first_step: dict | None = None

    def training_step(self, model: nn.Module, batch) -> StepOutput:
        if self.first_step is not None:
            return super().training_step(model, batch)
        record = {"raw": batch[0].clone(), "rng_state": torch.get_rng_state()}
        hook = model.register_forward_pre_hook(lambda module, args: record.setdefault("fed", args[0].detach().clone()))
        try:
            out = super().training_step(model, batch)
        finally:
            hook.remove()
        self.first_step = record
        return out


def fed_batches(spec: dict, policies: tuple[str, ...]) -> dict:
    """One DDP training step of the per-rank augmentation method: what this rank's model was fed, and from what."""
    train = TrainConfig(steps=1, batch_size=spec["probe"], lr=1e-3, seed=spec["seed"], log_every=1, progress=False,
                        device="cpu")
    method = RecordingRankAugment(RankAugmentConfig(hidden=spec["hidden"], augment=AugmentConfig(policies=policies),
                                                    train=train))
    Trainer(method, train).fit()
    # numpy, like every result of a rank: torch tensors would travel as shared memory the exiting rank takes away
    return {**{k: v.numpy() for k, v in method.first_step.items()}, "policy": method.policy}


def rank_views(probe: torch.Tensor, policies: tuple[str, ...], seed: int, rank: int) -> np.ndarray:
    """The augmented views rank `rank` makes of `probe` from the engine's per-rank seed."""
    D.seed_everything(seed, rank)
    return augment(probe, policy_for_rank(policies, rank)).numpy()


def robustness_run(spec: dict, policies: tuple[str, ...]) -> dict:
    """Train the MLP with DDP, rank r augmenting with policies[r % len(policies)]; the final parameters (`params`)
    and the accuracy on the test digits moved beyond training (`unseen_moves`, drawn from spec["moved_seed"]) at every
    tenth of training (`moved_steps`, `moved_curve`)."""
    steps = spec["robust_steps"]
    train = TrainConfig(steps=steps, batch_size=32, lr=1e-3, seed=spec["seed"], log_every=50,
                        eval_every=max(1, steps // 10), progress=False, device="cpu")
    cfg = RankAugmentConfig(hidden=spec["robust_hidden"], augment=AugmentConfig(policies=policies), train=train)
    method = RankAugmentMNIST(cfg)
    moved = unseen_moves(method.data.test_x, torch.Generator().manual_seed(spec["moved_seed"]))  # (N, 1, 28, 28)
    curve: dict[int, float] = {}

    def record(state: TrainState) -> None:
        if state.phase != "train":
            with torch.no_grad():
                curve[state.step] = (state.model(moved).argmax(1) == method.data.test_y).float().mean().item()

    model = Trainer(method, train, callbacks=[record]).fit().model
    return {"params": flat_parameters(model), "moved_steps": list(curve), "moved_curve": list(curve.values())}


def claims_worker(spec: dict) -> dict:
    """One rank's share of the multigpu claims; every rank returns its own parameters, counts and views."""
    env = D.dist_env()
    D.init_process_group(env, torch.device("cpu"), spec["timeout_s"])
    try:
        method = PlainMNIST(spec["hidden"])
        ddp = Trainer(method, sgd_config(spec, spec["batch"])).fit()
        counter = AllReduceCounter()
        accumulated = Trainer(method, sgd_config(spec, spec["micro_batch"], spec["accumulation"]),
                              ddp_comm_hook=(counter, counting_allreduce_hook)).fit()
        every_micro = AllReduceCounter()
        synced = sync_every_micro_step(spec, method, every_micro)
        probe = method.data.test_x[: spec["probe"]]
        views = {name: rank_views(probe, tuple(policies), spec["seed"], env.rank)
                 for name, policies in spec["view_policies"].items()}
        fed = {name: fed_batches(spec, tuple(policies)) for name, policies in spec["view_policies"].items()}
        robust = {name: robustness_run(spec, tuple(policies)) for name, policies in spec["robust_runs"].items()}
        return {"ddp": flat_parameters(ddp.model), "accumulated": flat_parameters(accumulated.model),
                "allreduces_no_sync": counter.calls, "synced_every_micro": synced,
                "allreduces_every_micro": every_micro.calls, "views": views, "fed": fed, "robust": robust}
    finally:
        D.teardown()


def hand_written_ddp_seconds(method: PlainMNIST, steps: int, batch: int, seed: int = 0) -> float:
    """Seconds per step of the textbook torchrun + DDP loop (DistributedSampler, DataLoader, Adam)."""
    from torch.utils.data import DataLoader, DistributedSampler

    started = time.perf_counter()
    torch.manual_seed(seed)
    model = nn.parallel.DistributedDataParallel(MnistMLP(method.cfg.hidden))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    sampler = DistributedSampler(method.train_dataset(), seed=seed, drop_last=True)
    loader = DataLoader(method.train_dataset(), batch_size=batch, sampler=sampler, drop_last=True)
    step, epoch = 0, 0
    while step < steps:
        sampler.set_epoch(epoch)
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step == steps:
                break
        epoch += 1
    return (time.perf_counter() - started) / steps


def engine_seconds(method: PlainMNIST, steps: int, batch: int) -> float:
    """Seconds per step of the same training through the engine (DDP under a launcher, else one process)."""
    started = time.perf_counter()
    Trainer(method, TrainConfig(steps=steps, batch_size=batch, lr=1e-3, log_every=10, progress=False,
                                device="cpu")).fit()
    return (time.perf_counter() - started) / steps


def benchmark_worker(steps: int, batch: int, rounds: int, hidden: int) -> dict:
    """Interleaved rounds of the hand-written DDP loop (only with >= 2 ranks) and the engine on this rank:
    per-step seconds of each."""
    env = D.dist_env()
    D.init_process_group(env, torch.device("cpu"), 300.0)
    try:
        method = PlainMNIST(hidden)
        hand, engine = [], []
        for _ in range(rounds):
            if env.distributed:
                hand.append(hand_written_ddp_seconds(method, steps, batch))
            engine.append(engine_seconds(method, steps, batch))
        return {"hand": hand, "engine": engine}
    finally:
        D.teardown()
