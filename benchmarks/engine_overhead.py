"""Per-step cost of the paperzoo trainer against a hand-written plain PyTorch loop (goal: <= 1.03x).

Both train the same small CNN on the same real MNIST digits with the same optimizer and batch size; runs are
interleaved in one process (plain, trainer, plain, trainer, ...) and the median per-step times are compared, so
machine noise hits both alike. Run: `python benchmarks/engine_overhead.py` or `paperzoo bench engine_overhead`.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from paperzoo.engine import TrainConfig, Trainer
from paperzoo.engine.experiments import SanityCNN, SanityConfig, SmallCNN

STEPS, BATCH, ROUNDS = 150, 64, 5


def plain_loop(method: SanityCNN) -> float:
    torch.manual_seed(0)
    model = SmallCNN(method.cfg.channels)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(method.train_dataset(), batch_size=BATCH, shuffle=True, drop_last=True)
    started, step = time.perf_counter(), 0
    while step < STEPS:
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step == STEPS:
                break
    return (time.perf_counter() - started) / STEPS


def trainer_loop(method: SanityCNN) -> float:
    cfg = TrainConfig(steps=STEPS, batch_size=BATCH, lr=1e-3, log_every=10, progress=False)
    started = time.perf_counter()
    Trainer(method, cfg).fit()
    return (time.perf_counter() - started) / STEPS


class NoEval(SanityCNN):
    """The sanity method without augmentation and evaluation, so both loops do the same work per step."""

    def training_step(self, model, batch):
        from paperzoo.engine import StepOutput

        x, y = batch
        return StepOutput(F.cross_entropy(model(x), y))

    def evaluate(self, model, device):
        return {}


def main() -> None:
    method = NoEval(SanityConfig())
    plain, ours = [], []
    for _ in range(ROUNDS):
        plain.append(plain_loop(method))
        ours.append(trainer_loop(method))
    p, t = statistics.median(plain), statistics.median(ours)
    print(f"engine_overhead: plain loop {p * 1e3:.2f} ms/step, trainer {t * 1e3:.2f} ms/step, "
          f"ratio {t / p:.3f}x (goal <= 1.03x; {ROUNDS} interleaved rounds of {STEPS} steps, torch threads "
          f"{torch.get_num_threads()})")


if __name__ == "__main__":
    main()
