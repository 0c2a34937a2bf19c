"""The small networks and training loops behind the batch-norm claims (Ioffe & Szegedy 2015, arXiv 1502.03167;
CMU Intro to DL lecture notes on optimisation; Wu & He 2018, arXiv 1803.08494 for the small-batch limit).

  mlp(norm=...)            Sec. 4.1's MNIST network: 3 fully connected hidden layers of 100 sigmoid units,
                           optionally with batch norm before each nonlinearity
  small_cnn(norm=...)      two 3x3 convolutions with BatchNorm2d or GroupNorm, for the batch-size study
  sgd_curve(...)           plain SGD at one batch size, with the full training loss logged against samples
                           processed and wall time; optimiser_study(...) runs it for several batch sizes
  gradient_noise(...)      the mean squared deviation of the batch-B gradient from the full gradient, at fixed
                           weights, for several B; sampling_noise_ratio(n, b) is what sampling theory predicts
  tune_learning_rate(...)  sgd_curve over a learning-rate grid on a tuning split: the rate that reaches a target
                           training loss with the fewest samples
  train_sgd(...)           plain SGD for a number of steps, with a hook to record a hidden layer's input and
                           snapshots of the weights at chosen steps
  gradient_change(...)     Santurkar et al.'s internal covariate shift (arXiv 1805.11604, Sec. 2.2)
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo.batchnorm.modules import BatchNorm1d, BatchNorm2d, GroupNorm
from paperzoo.engine.dry_run import dry_run_skips, dry_run_steps

Norm = Literal["none", "batch", "group"]


def mlp(inputs: int = 784, hidden: int = 100, layers: int = 3, classes: int = 10, norm: Norm = "none",
        activation: Callable[[], nn.Module] = nn.Sigmoid) -> nn.Sequential:
    """Linear -> [BN] -> nonlinearity, `layers` times, then a linear classifier; input (B, inputs)."""
    blocks: list[nn.Module] = []
    width = inputs
    for _ in range(layers):
        blocks.append(nn.Linear(width, hidden, bias=norm == "none"))  # BN's beta replaces the bias (Sec. 3.2)
        if norm == "batch":
            blocks.append(BatchNorm1d(hidden))
        blocks.append(activation())
        width = hidden
    blocks.append(nn.Linear(width, classes))
    return nn.Sequential(nn.Flatten(), *blocks)


def small_cnn(norm: Norm = "batch", channels: tuple[int, int] = (16, 32), groups: int = 8,
              classes: int = 10) -> nn.Sequential:
    """(B, 1, H, W) -> conv3x3 -> norm -> ReLU -> pool, twice, -> global average -> linear."""
    def normalise(c: int) -> nn.Module:
        if norm == "batch":
            return BatchNorm2d(c)
        if norm == "group":
            return GroupNorm(min(groups, c), c)
        return nn.Identity()

    c1, c2 = channels
    return nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1, bias=norm == "none"), normalise(c1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1, bias=norm == "none"), normalise(c2), nn.ReLU(), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c2, classes),  # (B, classes)
    )


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) in eval mode."""
    was_training = model.training
    model.eval()
    loss = correct = 0.0
    for i in range(0, len(x), batch):
        logits = model(x[i:i + batch])
        loss += F.cross_entropy(logits, y[i:i + batch], reduction="sum").item()
        correct += (logits.argmax(1) == y[i:i + batch]).sum().item()
    model.train(was_training)
    return loss / len(x), correct / len(x)


@dataclass
class Curve:
    """Full-training-set loss logged along a run."""

    samples: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)

    def log(self, samples: int, seconds: float, loss: float) -> None:
        self.samples.append(samples)
        self.seconds.append(seconds)
        self.loss.append(loss)

    def samples_to_reach(self, target: float) -> float:
        """Samples processed when the loss first reached `target` (inf if never)."""
        return next((s for s, v in zip(self.samples, self.loss) if v <= target), float("inf"))


def sgd_curve(build: Callable[[], nn.Module], x: torch.Tensor, y: torch.Tensor, batch: int, epochs: int, lr: float,
              log_every: int, seed: int = 0,
              on_epoch: Callable[[int, nn.Module], None] | None = None) -> tuple[nn.Module, Curve]:
    """Plain SGD on a fresh `build()` (initial weights from `seed`) for `epochs` passes over (x, y) in batches of
    `batch`; the full training loss is logged every `log_every` samples (and after each full-batch step). Wall time
    excludes the logging. `on_epoch(epochs_done, model)` is called before the first epoch (0) and after each one;
    it must not change the model."""
    if not 1 <= batch <= len(x):
        raise ValueError(f"batch size must be in [1, {len(x)}], got {batch}")
    torch.manual_seed(seed)
    model = build()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    curve, seen, elapsed, next_log = Curve(), 0, 0.0, 0
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(dry_run_steps(epochs)):
        if on_epoch is not None:
            on_epoch(epoch, model)
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x), batch):
            if seen >= next_log:
                curve.log(seen, elapsed, evaluate(model, x, y)[0])
                next_log += log_every
            started = time.perf_counter()
            idx = order[i:i + batch]
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            optimizer.step()
            elapsed += time.perf_counter() - started
            seen += len(idx)
    curve.log(seen, elapsed, evaluate(model, x, y)[0])
    if on_epoch is not None:
        on_epoch(epochs, model)
    return model, curve


def _loss_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The gradient of the mean cross-entropy on (x, y) with respect to every parameter, flattened: (P,)."""
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), params)
    return torch.cat([g.flatten() for g in grads])


def gradient_noise(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_sizes: tuple[int, ...], draws: int,
                   generator: torch.Generator) -> dict[int, float]:
    """How noisy the batch-B gradient is as an estimate of the full one, at the model's current weights: for each B,
    the mean over `draws` batches (B distinct examples drawn without replacement from (x, y)) of ||g_B - g||^2, g the
    gradient of the mean loss over all of (x, y). For a loss that is a mean over examples (no batch statistics)
    sampling theory gives E||g_B - g||^2 = s^2 (N - B) / (B (N - 1)), s^2 the per-example spread
    (`sampling_noise_ratio`). The model is not modified (no .grad is written; its train/eval mode is kept)."""
    if not all(1 <= b <= len(x) for b in batch_sizes):
        raise ValueError(f"batch sizes must be in [1, {len(x)}], got {batch_sizes}")
    full = sum(_loss_gradient(model, x[i:i + 1000], y[i:i + 1000]) * len(y[i:i + 1000])
               for i in range(0, len(x), 1000)) / len(x)  # (P,): the exact mean over all examples
    noise = {}
    for b in batch_sizes:
        total = 0.0
        for _ in range(draws):
            idx = torch.randperm(len(x), generator=generator)[:b]
            total += (_loss_gradient(model, x[idx], y[idx]) - full).pow(2).sum().item()
        noise[b] = total / draws
    return noise


def sampling_noise_ratio(n: int, b: int) -> float:
    """E||g_1 - g||^2 / E||g_b - g||^2 for batches drawn without replacement from n examples: b (n - 1) / (n - b),
    the 1/B law with the finite-population correction (infinite when the batch is the whole set)."""
    return math.inf if b >= n else b * (n - 1) / (n - b)


def optimiser_study(build: Callable[[], nn.Module], x: torch.Tensor, y: torch.Tensor, batch_sizes: dict[str, int],
                    epochs: int, lr: float, log_every: int, seed: int = 0) -> dict[str, Curve]:
    """`sgd_curve` for each named batch size, from the same initial weights, the same epochs and learning rate."""
    return {name: sgd_curve(build, x, y, batch, epochs, lr, log_every, seed)[1] for name, batch in batch_sizes.items()}


@dataclass
class Tuned:
    """The learning rate chosen on a tuning split, and what each rate of the grid scored there."""

    lr: float
    samples_to_target: dict[float, float]
    final_loss: dict[float, float]


def tune_learning_rate(build: Callable[[], nn.Module], x: torch.Tensor, y: torch.Tensor, batch: int, epochs: int,
                       grid: tuple[float, ...], target: float, log_every: int, seed: int = 0) -> Tuned:
    """`sgd_curve` on the tuning split (x, y) at each learning rate of `grid`: the chosen rate reaches the training
    loss `target` with the fewest samples (ties, or none reaching it: the lowest final loss; a diverged run never
    wins). Measure with the chosen rate on another split, so that the selection does not bias the measurement."""
    reached, final = {}, {}
    for lr in grid:
        curve = sgd_curve(build, x, y, batch, epochs, lr, log_every, seed)[1]
        reached[lr] = curve.samples_to_reach(target)
        final[lr] = curve.loss[-1] if math.isfinite(curve.loss[-1]) else float("inf")
    best = min(grid, key=lambda lr: (reached[lr], final[lr]))
    return Tuned(best, reached, final)


@dataclass
class Run:
    model: nn.Module
    steps: list[int]
    test_acc: list[float]
    train_loss: list[float]
    probe: list[torch.Tensor]  # recorded hidden-layer inputs (probe batch, features), one per evaluation
    snapshots: dict[int, dict[str, torch.Tensor]]  # step -> a copy of the model's state dict at that step


def train_sgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
              steps: int, batch: int, lr: float, eval_every: int, seed: int = 0, momentum: float = 0.0,
              probe_layer: nn.Module | None = None, probe_x: torch.Tensor | None = None,
              snapshot_steps: tuple[int, ...] = ()) -> Run:
    """SGD on shuffled mini-batches at a constant learning rate; every `eval_every` steps the test accuracy and, with
    `probe_layer`, that layer's input on the fixed `probe_x` batch with the network in inference mode (BN uses its
    running statistics, so the probe sees what the layers before it changed, as the BN paper's Fig. 1 intends; in
    train mode a BN layer would renormalise the probe batch by construction). After each step of `snapshot_steps`
    (0: before training) a copy of the state dict is kept in `run.snapshots`."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    generator = torch.Generator().manual_seed(seed)
    run = Run(model, [], [], [], [], {})
    recorded: list[torch.Tensor] = []
    handle = probe_layer.register_forward_hook(lambda m, inputs, out: recorded.append(inputs[0].detach())) \
        if probe_layer is not None else None

    def log(step: int, loss: float) -> None:
        recorded.clear()
        run.steps.append(step)
        run.train_loss.append(loss)
        run.test_acc.append(evaluate(model, test_x, test_y)[1])
        if handle is not None:
            model.eval()
            with torch.no_grad():
                model(probe_x)
            model.train()
            run.probe.append(recorded[-1])

    def snapshot(step: int) -> None:
        if step in snapshot_steps:
            run.snapshots[step] = copy.deepcopy(model.state_dict())

    order, position = torch.randperm(len(x), generator=generator), 0
    log(0, float("nan"))
    snapshot(0)
    for step in range(1, steps + 1):
        if not dry_run_skips(step, range(eval_every, steps, eval_every)):
            if position + batch > len(x):
                order, position = torch.randperm(len(x), generator=generator), 0
            idx = order[position:position + batch]
            position += batch
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
        snapshot(step)
        if step % eval_every == 0 or step == steps:
            log(step, loss.item() if torch.isfinite(loss) else float("inf"))
    if handle is not None:
        handle.remove()
    return run


def gradient_change(model: nn.Module, layer: nn.Linear, x: torch.Tensor, y: torch.Tensor, lr: float) -> dict:
    """Internal covariate shift as Santurkar et al. measure it ("How Does Batch Normalization Help Optimization?",
    arXiv 1805.11604, Sec. 2.2, Eq. 1 and Fig. 3): on one batch, the gradient G of `layer`'s weight, and the
    gradient G' of the same weight after every parameter *before* `layer` took its SGD step (lr) on that batch,
    `layer` and the layers after it unchanged. Returns ||G - G'||_2 / ||G||_2 and cos(G, G'). `model` is a
    Sequential; it is not modified (a copy takes the step). BN layers run in train mode, as in training."""
    def weight_grad(net: nn.Sequential, target: nn.Linear) -> torch.Tensor:
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        return target.weight.grad.detach().clone()

    trial = copy.deepcopy(model).train()
    position = list(model).index(layer)
    before = [p for module in list(trial)[:position] for p in module.parameters()]
    g = weight_grad(trial, trial[position])
    with torch.no_grad():
        for p in before:
            p -= lr * p.grad
    g_after = weight_grad(trial, trial[position])
    return {"relative_change": float((g - g_after).norm() / g.norm()),
            "cosine": float(F.cosine_similarity(g.flatten(), g_after.flatten(), dim=0))}
