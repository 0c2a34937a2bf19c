"""Toy methods and per-rank functions for the multigpu tests (imported by spawned ranks and torchrun scripts)."""

import json
import os
import time

import torch
from torch import nn
from torch.utils.data import TensorDataset

from paperzoo.engine import StepOutput, TrainConfig, Trainer
from paperzoo.engine import distributed as D
from paperzoo.multigpu import method as mnist_method
from paperzoo.multigpu.workers import (AllReduceCounter, PlainMNIST, claims_worker, flat_parameters, sgd_config,
                                       sync_every_micro_step)


class TwoLayer(nn.Module):
    def __init__(self, unused_head: bool):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
        self.aux_head = nn.Linear(8, 3) if unused_head else None  # registered, never called in forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class NoisyRegression:
    """Linear regression whose inputs get noise from the global RNG (per-rank streams matter for exact resume)."""

    def __init__(self, n: int = 64, unused_head: bool = False, stall_rank: int | None = None):
        g = torch.Generator().manual_seed(7)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 3.0, 0.5])
        self.unused_head, self.stall_rank, self.calls = unused_head, stall_rank, 0

    def build_model(self) -> nn.Module:
        return TwoLayer(self.unused_head)

    def train_dataset(self):
        return TensorDataset(self.x, self.y)

    def training_step(self, model, batch) -> StepOutput:
        self.calls += 1
        if self.stall_rank == D.dist_env().rank and self.calls == 3:
            time.sleep(120)  # a stuck rank: the others must give up after train.dist_timeout_s
        x, y = batch
        x = x + 0.1 * torch.randn_like(x)
        return StepOutput(((model(x).squeeze(1) - y) ** 2).mean())

    def evaluate(self, model, device) -> dict:
        return {"mse": ((model(self.x).squeeze(1) - self.y) ** 2).mean().item()}


def cfg(**kw) -> TrainConfig:
    base = dict(steps=8, batch_size=4, optimizer="adam", lr=0.05, log_every=1, progress=False, seed=5, device="cpu")
    return TrainConfig(**{**base, **kw})


def scenarios_worker(out_dir: str) -> dict:
    """Several DDP runs in one 2-rank group: rank-0-only files, uneven shards, the unused-parameter error."""
    from paperzoo.engine.trainer import UnusedParametersError

    env = D.dist_env()
    D.init_process_group(env, torch.device("cpu"), 60.0)
    result = {}
    try:
        run = Trainer(NoisyRegression(), cfg(checkpoint_every=4), out_dir=out_dir).fit()
        result["params"] = [p.detach().tolist() for p in run.model.parameters()]
        # 13 examples over 2 ranks: 7 each after padding, batches of 3 -> both ranks take 2 batches per epoch
        uneven = Trainer(NoisyRegression(n=13), cfg(batch_size=3, steps=9)).fit()
        result["uneven_steps"] = uneven.steps
        try:
            Trainer(NoisyRegression(unused_head=True), cfg(steps=3)).fit()
            result["unused_error"] = None
        except UnusedParametersError as e:
            result["unused_error"] = str(e)
        fixed = Trainer(NoisyRegression(unused_head=True), cfg(steps=3, find_unused_parameters=True)).fit()
        result["find_unused_steps"] = fixed.steps
        return result
    finally:
        D.teardown()


def capped_digits(n_train: int):
    """The MNIST digits with only the first `n_train` training examples (short epochs); the test digits whole."""
    digits = mnist_method.mnist_digits()
    return digits.subset(n_train, len(digits.test_y))


def cap_digits_in_this_rank(n_train: int) -> None:
    """Every multigpu method built in this (spawned, short-lived) rank trains on `capped_digits(n_train)`."""
    capped = capped_digits(n_train)
    mnist_method.mnist_digits = lambda: capped


def reference_vs_engine_worker(spec: dict, n_train: int) -> dict:
    """On `n_train` digits: the engine's no_sync accumulation and the hand-written reference that all-reduces every
    micro-step, both trained from the same start; this rank's final parameters of each."""
    cap_digits_in_this_rank(n_train)
    env = D.dist_env()
    D.init_process_group(env, torch.device("cpu"), spec["timeout_s"])
    try:
        method = PlainMNIST(spec["hidden"])
        engine = Trainer(method, sgd_config(spec, spec["micro_batch"], spec["accumulation"])).fit()
        reference = sync_every_micro_step(spec, method, AllReduceCounter())
        return {"engine": flat_parameters(engine.model), "reference": reference}
    finally:
        D.teardown()


def capped_claims_worker(spec: dict, n_train: int) -> dict:
    """`claims_worker` on `n_train` digits."""
    cap_digits_in_this_rank(n_train)
    return claims_worker(spec)


def stall_worker(timeout_s: float) -> None:
    """Rank 1 stalls inside step 3; rank 0 must fail in its next collective after about `timeout_s`."""
    started = time.monotonic()
    try:
        Trainer(NoisyRegression(stall_rank=1), cfg(steps=20, dist_timeout_s=timeout_s)).fit()
    except Exception as e:
        raise RuntimeError(f"gave up after {time.monotonic() - started:.1f} s: {type(e).__name__}: {e}") from e


def elastic_main(out_dir: str, kill_step: int) -> None:
    """Under torchrun --max-restarts 1: rank 1 dies at `kill_step` in the first attempt; the restarted group resumes
    the run in out_dir/killed, then trains the same run uninterrupted in out_dir/straight for comparison."""
    env = D.dist_env()

    def die(state):
        if env.restart_count == 0 and env.rank == 1 and state.step == kill_step:
            os._exit(17)

    settings = cfg(steps=10, checkpoint_every=4)
    Trainer(NoisyRegression(), settings, out_dir=f"{out_dir}/killed", callbacks=[die]).fit()
    Trainer(NoisyRegression(), settings, out_dir=f"{out_dir}/straight").fit()
    if env.is_main:
        with open(f"{out_dir}/attempts.json", "w") as f:
            json.dump({"restart_count": env.restart_count, "world_size": env.world_size}, f)


if __name__ == "__main__":
    import sys

    elastic_main(sys.argv[1], int(sys.argv[2]))
