"""Per-step cost of the paperzoo trainer against a hand-written plain PyTorch loop (goal: <= 1.03x).

Both train the same small CNN on the same real MNIST digits with the same optimizer and batch size; each repeat
runs both (plain, trainer; then trainer, plain, ...) in one process and the ratio trainer / plain of their per-step
times is taken per repeat, so machine noise hits both alike.
Run: `python benchmarks/engine_overhead.py [--repeats 7]` or `paperzoo bench engine_overhead`.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from paperzoo import bench
from paperzoo.engine import StepOutput, TrainConfig, Trainer
from paperzoo.sanity.experiments import SanityCNN, SanityConfig, SmallCNN

BATCH = 64


def plain_loop(method: SanityCNN, steps: int) -> float:
    torch.manual_seed(0)
    model = SmallCNN(method.cfg.channels)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(method.train_dataset(), batch_size=BATCH, shuffle=True, drop_last=True)
    started, step = time.perf_counter(), 0
    while step < steps:
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step == steps:
                break
    return (time.perf_counter() - started) / steps


def trainer_loop(method: SanityCNN, steps: int) -> float:
    cfg = TrainConfig(steps=steps, batch_size=BATCH, lr=1e-3, log_every=10, progress=False, device="cpu")
    started = time.perf_counter()
    Trainer(method, cfg).fit()
    return (time.perf_counter() - started) / steps


class NoEval(SanityCNN):
    """The sanity method without augmentation and evaluation, so both loops do the same work per step."""

    def training_step(self, model, batch):
        x, y = batch
        return StepOutput(F.cross_entropy(model(x), y))

    def evaluate(self, model, device):
        return {}


def main() -> None:
    args = bench.parse(bench.arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]), repeats=7))
    steps = 5 if args.smoke else 150
    method = NoEval(SanityConfig())
    times = bench.interleaved({"plain": lambda: plain_loop(method, steps),
                               "trainer": lambda: trainer_loop(method, steps)}, args.repeats, warmup=0)
    ms = bench.medians(times, "ms/step", 1e3)
    bench.report([bench.row("engine_overhead", "trainer / plain loop", f"per-step time of a small CNN on MNIST, "
                            f"batch {BATCH}, {steps} steps per repeat", bench.paired(times["trainer"], times["plain"]),
                            bench.Goal("<=", 1.03), "cpu", ms)], args.results)


if __name__ == "__main__":
    main()
