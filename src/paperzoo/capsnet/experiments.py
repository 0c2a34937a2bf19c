"""The claims of "Dynamic Routing Between Capsules" (Sabour, Frosst & Hinton, NeurIPS 2017, arXiv 1710.09829)
on the 5,000 real MNIST digits, and `paperzoo train capsnet` / `capsnet_baseline`.

All four claims share three trained models (CapsNet with 3 routing iterations, with 1, and the CNN baseline, all
trained with 2 px shifts the same way) plus a CapsNet/CNN pair trained on overlapping digits. `quick` uses a
narrow CapsNet (Conv1 32 channels, 4 primary capsule types) so that the paper's four experiments fit a laptop
CPU in about a minute; `full` is the paper's network and schedule (GPU).
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch

from paperzoo import plotting
from paperzoo.capsnet.baseline import BaselineConfig
from paperzoo.capsnet.model import CapsNetConfig, parameter_count
from paperzoo.capsnet.training import (BaselineMethod, BaselineTrainConfig, CapsNetMethod, CapsNetTrainConfig,
                                       batched, paper_schedule)
from paperzoo.catalog import TrainSpec
from paperzoo.claims import Claim, Measurement, RunContext, SkipClaim
from paperzoo.criteria import Precondition
from paperzoo.data.transforms import random_affine
from paperzoo.engine.trainer import TrainConfig, Trainer

PAPER = "Sabour, Frosst & Hinton, NeurIPS 2017, arXiv 1710.09829"

TRAIN_METHODS = {
    "capsnet": TrainSpec("capsnet", "CapsNet (dynamic routing) on the 5,000 real MNIST digits; task=multimnist "
                                    "model.image_size=36 for overlapping digits", CapsNetTrainConfig, CapsNetMethod),
    "capsnet_baseline": TrainSpec("capsnet_baseline", "the CNN baseline of the CapsNet paper, same data and tasks",
                                  BaselineTrainConfig, BaselineMethod),
}


def _train_config(ctx: RunContext) -> TrainConfig:
    if ctx.preset == "full":
        if not torch.cuda.is_available():
            raise SkipClaim("needs a GPU (the paper's 8.2M-parameter CapsNet; use --preset quick on a CPU)")
        return replace(paper_schedule(steps=20000), seed=ctx.seed, progress=False, log_every=100)
    return TrainConfig(steps=ctx.pick(smoke=10, quick=300, full=0), batch_size=ctx.pick(smoke=32, quick=64, full=0),
                       lr=2e-3, schedule="cosine", log_every=10, seed=ctx.seed, progress=False)


def _capsnet_config(ctx: RunContext, image_size: int, iterations: int) -> CapsNetConfig:
    width = ctx.pick(smoke=dict(conv_channels=16, primary_types=2, decoder_hidden=(64, 128)),
                     quick=dict(conv_channels=32, primary_types=4), full={})
    return CapsNetConfig(image_size=image_size, iterations=iterations, **width)


def _baseline_config(ctx: RunContext, image_size: int) -> BaselineConfig:
    width = ctx.pick(smoke=dict(channels=(8, 16, 16)), quick=dict(channels=(32, 64, 64)), full={})
    return BaselineConfig(image_size=image_size, **width)


def _fit(method, train: TrainConfig) -> dict:
    started = time.perf_counter()
    result = Trainer(method, train).fit()
    result.model.eval()
    return {"model": result.model, "method": method, "final": result.final, "history": result.history,
            "seconds": time.perf_counter() - started, "params": parameter_count(result.model)}


def _capsnet(ctx: RunContext, iterations: int, task: str = "mnist") -> dict:
    size = 36 if task == "multimnist" else 28
    test = ctx.pick(smoke=200, quick=1000, full=1000)

    def build():
        cfg = CapsNetTrainConfig(model=_capsnet_config(ctx, size, iterations), task=task, test_examples=test,
                                 train=_train_config(ctx))
        return _fit(CapsNetMethod(cfg), cfg.train)

    return ctx.shared(f"capsnet-{task}-r{iterations}", build)


def _baseline(ctx: RunContext, task: str = "mnist") -> dict:
    size = 36 if task == "multimnist" else 28
    test = ctx.pick(smoke=200, quick=1000, full=1000)

    def build():
        cfg = BaselineTrainConfig(model=_baseline_config(ctx, size), task=task, test_examples=test,
                                  train=_train_config(ctx))
        return _fit(BaselineMethod(cfg), cfg.train)

    return ctx.shared(f"baseline-{task}", build)


# -- claim 1: accuracy, and 3 routing iterations beat 1 ---------------------------------------------------------

def _run_accuracy(ctx: RunContext) -> Measurement:
    r3, r1, cnn = _capsnet(ctx, 3), _capsnet(ctx, 1), _baseline(ctx)
    series = {}
    for name, run in (("CapsNet, 3 iterations", r3), ("CapsNet, 1 iteration", r1), ("CNN baseline", cnn)):
        steps, accs = run["history"].series("train", "acc")
        series[name] = (steps, accs)
    path = plotting.curves(ctx.figure_path("train_accuracy.png"), series, "step", "training accuracy (shifted digits)",
                           "MNIST (4,000 real training digits)")
    return Measurement({
        "capsnet_r3_test_acc": round(r3["final"]["test_acc"], 4),
        "capsnet_r1_test_acc": round(r1["final"]["test_acc"], 4),
        "cnn_test_acc": round(cnn["final"]["test_acc"], 4),
        "capsnet_r3_error_pct": round(100 * (1 - r3["final"]["test_acc"]), 2),
        "capsnet_r1_error_pct": round(100 * (1 - r1["final"]["test_acc"]), 2),
        "capsnet_params": r3["params"], "cnn_params": cnn["params"],
        "test_examples": len(r3["method"].test_y),
    }, [path], timings={"train_seconds_r3": round(r3["seconds"], 1)})


# -- claim 2: overlapping digits -----------------------------------------------------------------------------------

def _separation(model, method, n: int) -> tuple[float, torch.Tensor]:
    """Fraction of test pairs whose two reconstructions (decoder masked by each true class) are each closer to
    their own digit than to the other one; also the reconstructions of the first 8 pairs (8, 2, 1, 36, 36)."""
    x, pairs, digits = method.test_x[:n], method.test_y[:n], method.test_digits[:n]
    with torch.no_grad():
        v = model.capsules(x)  # (n, J, D)
        recon = torch.stack([model.decoder(v, pairs[:, k]) for k in range(2)], 1)  # (n, 2, 1, 36, 36)
    error = ((recon[:, :, None] - digits[:, None]) ** 2).flatten(3).mean(3)  # (n, 2 recon, 2 digit)
    own = error.diagonal(dim1=1, dim2=2)  # (n, 2)
    other = error.flip(2).diagonal(dim1=1, dim2=2)  # (n, 2)
    return (own < other).all(1).float().mean().item(), recon[:8]


def _plot_overlaps(path, method, recon) -> object:
    """Rows: input overlay, reconstruction from each true class's capsule, both (red = first, green = second)."""
    n = recon.shape[0]
    first, second = recon[:, 0, 0], recon[:, 1, 0]  # (n, 36, 36)
    gray = lambda x: x[..., None].expand(*x.shape, 3)  # (n, 36, 36, 3)
    rows = [gray(method.test_x[:n, 0]), gray(first), gray(second),
            torch.stack([first, second, torch.zeros_like(first)], -1)]
    tiles = torch.stack(rows).permute(0, 2, 1, 3, 4).reshape(4 * 36, n * 36, 3)  # (4*36, n*36, 3)
    fig, ax = plotting.figure(8, 4.4)
    ax.imshow(tiles.clamp(0, 1).numpy())
    ax.set_xticks([36 * (i + 0.5) for i in range(n)],
                  [f"{method.test_y[i, 0].item()} + {method.test_y[i, 1].item()}" for i in range(n)])
    ax.set_yticks([36 * (r + 0.5) for r in range(4)], ["input", "capsule 1", "capsule 2", "both"])
    ax.grid(False)
    ax.set_title("MultiMNIST: each digit reconstructed from its own capsule")
    return plotting.save(fig, path)


def _run_multimnist(ctx: RunContext) -> Measurement:
    caps, cnn = _capsnet(ctx, 3, "multimnist"), _baseline(ctx, "multimnist")
    separated, recon = _separation(caps["model"], caps["method"], len(caps["method"].test_y))
    path = _plot_overlaps(ctx.figure_path("multimnist_reconstructions.png"), caps["method"], recon)
    return Measurement({
        "capsnet_pair_acc": round(caps["final"]["test_pair_acc"], 4),
        "cnn_pair_acc": round(cnn["final"]["test_pair_acc"], 4),
        "separated_fraction": round(separated, 4),
        "capsnet_params": caps["params"], "cnn_params": cnn["params"], "test_pairs": len(caps["method"].test_y),
        "chance_pair_acc": round(1 / 45, 4),
    }, [path], notes="pair accuracy: both digits are the two longest capsules (CNN: two largest logits)")


# -- claim 3: affine robustness ------------------------------------------------------------------------------------

def _run_affine(ctx: RunContext) -> Measurement:
    caps, cnn = _capsnet(ctx, 3), _baseline(ctx)
    method = caps["method"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(4321)
        warped = random_affine(method.test_x)
    device = next(caps["model"].parameters()).device
    with torch.no_grad():
        caps_scores = batched(lambda x: caps["model"].capsules(x).norm(dim=-1), warped, device)
        cnn_scores = batched(cnn["model"], warped, device)
    values = {
        "capsnet_clean_acc": round(caps["final"]["test_acc"], 4), "cnn_clean_acc": round(cnn["final"]["test_acc"], 4),
        "capsnet_affine_acc": round((caps_scores.argmax(1) == method.test_y).float().mean().item(), 4),
        "cnn_affine_acc": round((cnn_scores.argmax(1) == method.test_y).float().mean().item(), 4),
    }
    fig, ax = plotting.figure(8, 1.4)
    ax.imshow(warped[:8, 0].permute(1, 0, 2).reshape(28, 8 * 28).numpy(), cmap="gray", vmin=0, vmax=1)  # (28, 8*28)
    ax.axis("off")
    path = plotting.save(fig, ctx.figure_path("affine_test_examples.png"))
    return Measurement(values, [path], notes="test digits rotated by up to 20 degrees, sheared by up to 0.2 and "
                                             "scaled by 0.8-1.2; training saw 2 px shifts only")


# -- claim 4: interpretable dimensions ----------------------------------------------------------------------------

STEPS = torch.linspace(-0.25, 0.25, 11)  # Fig. 4: perturbations in [-0.25, 0.25] by 0.05


def _perturbation_changes(model, images: torch.Tensor, labels: torch.Tensor):
    """Reconstructions with one dimension of the label's capsule shifted by each step: returns the mean RMS pixel
    change from the unperturbed reconstruction, (D, steps), and the first image's grid (D, steps, C, H, W)."""
    with torch.no_grad():
        v = model.capsules(images)  # (B, J, D)
        base = model.decoder(v, labels)
        d = v.shape[2]
        changes, grid = torch.zeros(d, len(STEPS)), []
        for dim in range(d):
            row = []
            for s, step in enumerate(STEPS):
                moved = v.clone()
                moved[torch.arange(len(labels)), labels, dim] += step
                recon = model.decoder(moved, labels)
                changes[dim, s] = ((recon - base) ** 2).flatten(1).mean(1).sqrt().mean()
                row.append(recon[0])
            grid.append(torch.stack(row))
    return changes, torch.stack(grid)


def _monotonic_in_step(curve: torch.Tensor) -> bool:
    """Non-decreasing away from the zero step on both sides."""
    mid = len(curve) // 2
    right, left = curve[mid:], curve[:mid + 1].flip(0)
    return bool((right.diff() >= -1e-7).all() and (left.diff() >= -1e-7).all())


def _run_dimensions(ctx: RunContext) -> Measurement:
    caps = _capsnet(ctx, 3)
    model, method = caps["model"], caps["method"]
    with torch.no_grad():
        predicted = model.capsules(method.test_x[:200]).norm(dim=-1).argmax(1)
    right = (predicted == method.test_y[:200]).nonzero().flatten()[:100]
    changes, grid = _perturbation_changes(model, method.test_x[right], method.test_y[right])
    per_unit = changes[:, -1] / STEPS[-1]  # (D,) RMS pixel change per unit step at +0.25
    monotonic = [_monotonic_in_step(c) for c in changes]
    d, steps, _, h, w = grid.shape
    tiles = grid[:, :, 0].permute(0, 2, 1, 3).reshape(d * h, steps * w)  # (D*H, steps*W): one row per dimension
    fig, ax = plotting.figure(5, 0.4 * d)
    ax.imshow(tiles.numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([w * (s + 0.5) for s in range(steps)], [f"{x:+.2f}" for x in STEPS.tolist()], fontsize=6)
    ax.set_yticks([h * (i + 0.5) for i in range(d)], [f"dim {i}" for i in range(d)], fontsize=6)
    ax.grid(False)
    ax.set_title("one digit's reconstruction, one capsule dimension perturbed per row")
    grid_path = plotting.save(fig, ctx.figure_path("dimension_perturbations.png"))
    curve_path = plotting.curves(ctx.figure_path("reconstruction_change.png"),
                                 {f"dim {i}": (STEPS.tolist(), changes[i].tolist()) for i in range(d)},
                                 "perturbation of one capsule dimension", "RMS pixel change of the reconstruction",
                                 "each line: one of the 16 dimensions")
    return Measurement({
        "monotonic_fraction": round(sum(monotonic) / d, 4),
        "change_per_unit_step_mean": round(per_unit.mean().item(), 4),
        "change_per_unit_step_min": round(per_unit.min().item(), 4),
        "change_per_unit_step_max": round(per_unit.max().item(), 4),
        "images": len(right), "dimensions": d,
    }, [grid_path, curve_path])


CLAIMS = [
    Claim(
        id="capsnet.accuracy_and_routing",
        paper=PAPER,
        statement="A CapsNet reaches high test accuracy on MNIST, and 3 routing iterations give a lower error "
                  "than 1.",
        paper_reports="99.75% test accuracy (0.25% error) on full MNIST; with reconstruction 0.25% error "
                      "with 3 iterations vs 0.29% with 1 (Table 1)",
        criterion="capsnet_r3_test_acc >= 0.97 and capsnet_r3_error_pct <= capsnet_r1_error_pct "
                  "(4,000 training / 1,000 test real digits)",
        run=_run_accuracy,
        check=lambda m: m["capsnet_r3_test_acc"] >= 0.97 and m["capsnet_r3_error_pct"] <= m["capsnet_r1_error_pct"],
    ),
    Claim(
        id="capsnet.multimnist_beats_cnn",
        paper=PAPER,
        statement="On two overlapping digits, CapsNet recognises both digits better than a CNN baseline and "
                  "reconstructs each digit separately.",
        paper_reports="MultiMNIST error 5.2% (CapsNet) vs 8.1% (CNN baseline); reconstructions separate the "
                      "two digits (Fig. 5)",
        criterion="capsnet_pair_acc > cnn_pair_acc and separated_fraction >= 0.8",
        run=_run_multimnist,
        check=lambda m: m["capsnet_pair_acc"] > m["cnn_pair_acc"] and m["separated_fraction"] >= 0.8,
        preconditions=(Precondition(
            "the CNN baseline trained: its both-digits accuracy is >= 10 points above chance (1/45 for two distinct "
            "digits)", lambda m: m["cnn_pair_acc"] >= m["chance_pair_acc"] + 0.1, ("cnn_pair_acc", "chance_pair_acc")),),
    ),
    Claim(
        id="capsnet.affine_robustness",
        paper=PAPER,
        statement="Trained on shifted digits only, CapsNet keeps more accuracy than a CNN on affinely transformed "
                  "digits.",
        paper_reports="affNIST: 79% (CapsNet) vs 66% (CNN) at similar MNIST accuracy (99.23% vs 99.22%)",
        criterion="capsnet_affine_acc > cnn_affine_acc",
        run=_run_affine,
        check=lambda m: m["capsnet_affine_acc"] > m["cnn_affine_acc"],
        preconditions=(Precondition(
            "the comparison is at similar clean accuracy, as in the paper (99.23% vs 99.22%): the two models' clean "
            "test accuracies differ by <= 1 point", lambda m: abs(m["capsnet_clean_acc"] - m["cnn_clean_acc"]) <= 0.01,
            ("capsnet_clean_acc", "cnn_clean_acc")),),
    ),
    Claim(
        id="capsnet.interpretable_dimensions",
        paper=PAPER,
        statement="Perturbing one dimension of the active digit capsule changes the reconstruction smoothly: the "
                  "change grows with the size of the perturbation.",
        paper_reports="Fig. 4: dimensions encode stroke thickness, skew, width, ... under perturbations in "
                      "[-0.25, 0.25]",
        criterion="monotonic_fraction >= 0.9 (the mean reconstruction change of >= 90% of the dimensions is "
                  "non-decreasing in |step| on both sides) and change_per_unit_step_min > 0",
        run=_run_dimensions,
        check=lambda m: m["monotonic_fraction"] >= 0.9 and m["change_per_unit_step_min"] > 0,
    ),
]
