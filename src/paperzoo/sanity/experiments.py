"""paperzoo's sanity claim: a small CNN trained by the engine on the 5,000 real MNIST digits.

It keeps the pipeline honest end to end (real data -> engine -> claim -> report) and is the `paperzoo train
sanity_cnn` example method. It lives beside the papers (not in `paperzoo.engine`, which knows no claims).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo import config, plotting
from paperzoo.catalog import TrainSpec
from paperzoo.claims import Claim, Measurement, RunContext
from paperzoo.criteria import accuracy_at_least
from paperzoo.data import mnist_5k
from paperzoo.data.transforms import random_shift
from paperzoo.engine.trainer import StepOutput, TrainConfig, Trainer


@dataclass
class SanityConfig:
    """The sanity CNN's settings (`paperzoo train sanity_cnn KEY=VALUE`)."""

    channels: int = 32
    """Channels of the first convolution (the second has twice as many)."""
    max_shift: int = 2
    """Random translation of the training digits, in pixels (data augmentation); 0 turns it off."""
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=900, batch_size=64, lr=2e-3,
                                                                     schedule="cosine", log_every=10))

    def check(self, prefix: str) -> None:
        config.at_least(self, prefix, 1, "channels")
        config.at_least(self, prefix, 0, "max_shift")


class SmallCNN(nn.Module):
    """Two conv-ReLU-pool blocks and a linear head: (B, 1, 28, 28) images -> (B, classes) logits."""

    def __init__(self, channels: int = 32, classes: int = 10):
        super().__init__()
        c = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, c, 14, 14)
            nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 2c, 7, 7)
        )
        self.head = nn.Linear(2 * c * 7 * 7, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))  # (B, classes)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, batch: int = 500) -> float:
    correct = sum((model(x[i:i + batch].to(device)).argmax(1).cpu() == y[i:i + batch]).sum().item()
                  for i in range(0, len(x), batch))
    return correct / len(x)


class SanityCNN:
    """Method protocol: cross-entropy classification of the 28x28 real MNIST digits."""

    def __init__(self, cfg: SanityConfig):
        self.cfg = cfg
        self.data = mnist_5k()

    def build_model(self) -> nn.Module:
        return SmallCNN(self.cfg.channels)

    def train_dataset(self):
        return self.data.train()

    def training_step(self, model: nn.Module, batch) -> StepOutput:
        x, y = batch
        logits = model(random_shift(x, self.cfg.max_shift))
        return StepOutput(F.cross_entropy(logits, y), {"acc": (logits.argmax(1) == y).float().mean()})

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        return {"test_acc": accuracy(model, self.data.test_x, self.data.test_y, device)}


TRAIN_METHODS = {"sanity_cnn": TrainSpec("sanity_cnn", "small CNN on the 5,000 real MNIST digits (engine check)",
                                         SanityConfig, SanityCNN)}


def _train_once(ctx: RunContext, seed: int) -> dict:
    # quick, standard and full: the claim is about this budget; smoke, which the tests run and whose verdicts are not
    # evidence, trains a third of it
    steps = ctx.pick(300, 900, 900)
    cfg = SanityConfig(train=TrainConfig(steps=steps, batch_size=64, lr=2e-3, schedule="cosine", log_every=10,
                                         eval_every=max(1, steps // 5), seed=seed, progress=ctx.progress))
    method = SanityCNN(cfg)
    started = time.process_time()  # CPU time of this process: a timing, reported beside the measured values
    result = Trainer(method, cfg.train).fit()
    return {"result": result, "cpu_seconds": time.process_time() - started, "steps": steps,
            "train_examples": len(method.data.train_y), "test_examples": len(method.data.test_y)}


def _run_sanity(ctx: RunContext) -> Measurement:
    runs = {}

    def measure(seed: int) -> dict:
        runs[seed] = _train_once(ctx, seed)
        return {"test_acc": runs[seed]["result"].final["test_acc"]}

    per_seed = ctx.over_seeds(measure, "sanity CNN")
    first = runs[ctx.seeds[0]]
    figure, axes = plotting.figure(8, 3, ncols=2)
    ax_loss, ax_acc = axes[0]
    for i, (seed, run) in enumerate(runs.items()):
        steps_seen, losses = run["result"].history.series("train", "loss")
        eval_steps, accs = run["result"].history.series("eval", "test_acc")
        ax_loss.plot(steps_seen, losses, color=f"C{i}", alpha=0.8, label=f"seed {i}")
        ax_acc.plot(eval_steps, accs, marker="o", color=f"C{i}")
    ax_loss.set(xlabel="step", ylabel="train loss", yscale="log", title="training loss")
    ax_loss.legend()
    ax_acc.axhline(0.97, color="grey", linestyle="--", label="criterion 97%")
    ax_acc.set(xlabel="step", ylabel="test accuracy", title=f"held-out accuracy ({first['test_examples']:,} real "
                                                           "digits)")
    ax_acc.legend()
    path = plotting.save(figure, ctx.figure_path("learning_curve.png"))
    return Measurement({"steps": first["steps"], "train_examples": first["train_examples"],
                        "test_examples": first["test_examples"]}, [path], per_seed=per_seed,
                       timings={"train_cpu_seconds": [round(r["cpu_seconds"], 1) for r in runs.values()]})


CLAIMS = [
    Claim(
        id="sanity.mnist_cnn",
        paper="paperzoo engine sanity check",
        statement="A small CNN trained by the engine for 900 steps reaches >= 97% test accuracy on the 5,000 real "
                  "MNIST digits (4,000 train / 1,000 test); the CPU time it took is reported beside it.",
        paper_reports="(LeNet-class CNNs reach ~99% on full MNIST)",
        criterion="mean test_acc over seeds >= 0.97 on a 95% interval that holds the seeds' spread and the sampling "
                  "error of the 1,000 test digits (an absolute threshold: no smallest effect)",
        run=_run_sanity,
        check=lambda m: accuracy_at_least("test accuracy", m["test_acc"], 0.97, m["test_examples"]),
        kind="check",
    )
]
