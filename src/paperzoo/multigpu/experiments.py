"""Claims of the multi-GPU post (PyTorch DDP: Li et al., "PyTorch Distributed: Experiences on Accelerating Data
Parallel Training", VLDB 2020, arXiv 2006.15704), measured with the engine on CPU processes (gloo) and, for
DataParallel's memory, on GPUs.

1. DDP over 2 ranks with batch B per rank makes the same parameters as one process with batch 2B (Sec. 3.1:
   gradient averaging makes DDP mathematically equivalent to local training on the union batch).
2. Accumulating gradients under `no_sync` equals the large-batch step and sends `accumulation` times fewer
   all-reduces (Sec. 3.2.4, "gradient accumulation").
3. Per-rank augmentation: ranks see different views of the same samples, and the views repeat from the seed;
   and (the post's motivation) it makes the model more robust than training without augmentation.
4. DataParallel gathers outputs on GPU 0 (memory imbalance); computing the loss inside the replicas fixes it.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from paperzoo import plotting
from paperzoo.catalog import TrainSpec
from paperzoo.claims import Claim, Measurement, RunContext, SkipClaim
from paperzoo.engine.distributed import derive_seed
from paperzoo.engine.trainer import Trainer
from paperzoo.multigpu.augment import augment
from paperzoo.multigpu.launch import spawn_group
from paperzoo.multigpu.memory import dp_memory_experiment
from paperzoo.multigpu.method import MnistMLP, RankAugmentConfig, RankAugmentMNIST, mnist_digits
from paperzoo.multigpu.workers import PlainMNIST, claims_worker, flat_parameters, rank_views, sgd_config

PAPER = "PyTorch DDP (Li et al., VLDB 2020, arXiv 2006.15704) and the seed post on multi-GPU training"
VIEW_POLICIES = {"different_policies": ("shift", "rotate"), "same_policy": ("rotate", "rotate")}
ROBUST_RUNS = {"none": ("none",), "per_rank": ("shift", "rotate"), "both_on_every_rank": ("shift+rotate",)}

TRAIN_METHODS = {"rank_augment_mnist": TrainSpec(
    "rank_augment_mnist", "MLP on the 5,000 real MNIST digits with a different augmentation per rank (multi-GPU "
    "post; run it under torchrun)", RankAugmentConfig, RankAugmentMNIST)}


def _spec(ctx: RunContext) -> dict:
    return {"steps": ctx.pick(3, 20, 100), "batch": 32, "micro_batch": 8, "accumulation": 4, "lr": 0.05,
            "hidden": ctx.pick(32, 128, 256), "seed": ctx.seed, "timeout_s": 120.0, "probe": 32,
            "view_policies": VIEW_POLICIES, "robust_runs": ROBUST_RUNS, "robust_steps": ctx.pick(20, 400, 2000),
            "robust_hidden": ctx.pick(32, 128, 256)}


def _group(ctx: RunContext) -> tuple[dict, list[dict], float]:
    """Run the 2-rank gloo group once for claims 1-3 of this `reproduce` run."""

    def run():
        spec = _spec(ctx)
        started = time.perf_counter()
        ranks = spawn_group(claims_worker, world_size=2, args=(spec,), timeout_s=600)
        return spec, ranks, time.perf_counter() - started

    return ctx.shared("multigpu.group", run)


def _one_process(spec: dict, batch_size: int) -> np.ndarray:
    return flat_parameters(Trainer(PlainMNIST(spec["hidden"]), sgd_config(spec, batch_size)).fit().model)


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max())


def _bars(path, names: list[str], values: list[float], ylabel: str, title: str, logy: bool = False):
    fig, ax = plotting.figure(5.5, 3.2)
    ax.bar(names, values, color=["tab:blue", "tab:orange", "tab:green", "tab:red"][: len(names)])
    ax.set(ylabel=ylabel, title=title)
    if logy:
        ax.set_yscale("log")
    for i, v in enumerate(values):
        ax.annotate(f"{v:.3g}", (i, v), ha="center", va="bottom")
    return plotting.save(fig, path)


def _run_ddp_equivalence(ctx: RunContext) -> Measurement:
    spec, ranks, seconds = _group(ctx)
    union = _one_process(spec, 2 * spec["batch"])
    control = _one_process(spec, spec["batch"])  # one rank's batch alone: what DDP would do without the all-reduce
    values = {
        "ddp_vs_union_max_abs_diff": _max_diff(ranks[0]["ddp"], union),
        "rank0_vs_rank1_max_abs_diff": _max_diff(ranks[0]["ddp"], ranks[1]["ddp"]),
        "control_batch_B_max_abs_diff": _max_diff(control, union),
        "steps": spec["steps"], "per_rank_batch": spec["batch"], "parameters": int(union.size),
        "group_seconds": round(seconds, 1),
    }
    path = _bars(ctx.figure_path("ddp_vs_one_process.png"),
                 ["DDP 2x32 vs 1x64", "rank 0 vs rank 1", "1x32 vs 1x64 (control)"],
                 [max(values["ddp_vs_union_max_abs_diff"], 1e-12), max(values["rank0_vs_rank1_max_abs_diff"], 1e-12),
                  values["control_batch_B_max_abs_diff"]],
                 "max |parameter difference|", f"parameters after {spec['steps']} SGD steps", logy=True)
    return Measurement(values, [path])


def _run_no_sync(ctx: RunContext) -> Measurement:
    spec, ranks, _ = _group(ctx)
    a, b = spec["accumulation"], spec["micro_batch"]
    big = _one_process(spec, 2 * a * b)
    values = {
        "no_sync_vs_big_batch_max_abs_diff": _max_diff(ranks[0]["accumulated"], big),
        "sync_every_micro_vs_big_batch_max_abs_diff": _max_diff(ranks[0]["synced_every_micro"], big),
        "allreduces_with_no_sync": ranks[0]["allreduces_no_sync"],
        "allreduces_without_no_sync": ranks[0]["allreduces_every_micro"],
        "accumulation": a, "micro_batch": b, "steps": spec["steps"],
    }
    path = _bars(ctx.figure_path("allreduce_counts.png"), ["with no_sync", "without no_sync"],
                 [values["allreduces_with_no_sync"], values["allreduces_without_no_sync"]],
                 "bucket all-reduces sent", f"{spec['steps']} steps x {a} micro-steps, 2 ranks")
    return Measurement(values, [path])


def _run_rank_augment(ctx: RunContext) -> Measurement:
    spec, ranks, _ = _group(ctx)
    probe = mnist_digits().test_x[: spec["probe"]]
    values: dict = {"probe_samples": spec["probe"]}
    rerun_diff = 0.0
    for name, policies in VIEW_POLICIES.items():
        v0, v1 = ranks[0]["views"][name], ranks[1]["views"][name]
        differ = np.abs(v0 - v1).reshape(len(v0), -1).max(1) > 0
        values[f"{name}_fraction_differing"] = float(differ.mean())
        for rank, views in enumerate((v0, v1)):  # recomputed here, in another process, from the seed alone
            rerun_diff = max(rerun_diff, _max_diff(views, rank_views(probe, policies, spec["seed"], rank)))
    values["rerun_max_abs_diff"] = rerun_diff
    fig, axes = plotting.figure(8, 3.2, ncols=8, nrows=3)
    views = ranks[0]["views"]["different_policies"], ranks[1]["views"]["different_policies"]
    for col in range(8):
        for row, (image, label) in enumerate([(probe[col], "original"), (views[0][col], "rank 0: shift"),
                                              (views[1][col], "rank 1: rotate")]):
            ax = axes[row][col]
            ax.imshow(np.asarray(image)[0], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([]), ax.grid(False)
            if col == 0:
                ax.set_ylabel(label, fontsize=7)
    path = plotting.save(fig, ctx.figure_path("per_rank_views.png"))
    return Measurement(values, [path])


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def _run_robustness(ctx: RunContext) -> Measurement:
    spec, ranks, _ = _group(ctx)
    data = mnist_digits()
    torch.manual_seed(derive_seed(ctx.seed, 1234))  # one fixed draw of shifted and rotated test digits
    moved = augment(data.test_x, "shift+rotate")
    values: dict = {"steps": spec["robust_steps"], "test_digits": len(data.test_y)}
    for name in ROBUST_RUNS:
        model = MnistMLP(spec["robust_hidden"])
        torch.nn.utils.vector_to_parameters(torch.from_numpy(ranks[0]["robust"][name]), model.parameters())
        values[f"{name}_clean_acc"] = round(_accuracy(model, data.test_x, data.test_y), 4)
        values[f"{name}_moved_acc"] = round(_accuracy(model, moved, data.test_y), 4)
    fig, ax = plotting.figure(6, 3.2)
    x = np.arange(len(ROBUST_RUNS))
    for i, split in enumerate(("clean", "moved")):
        ax.bar(x + 0.4 * i - 0.2, [values[f"{n}_{split}_acc"] for n in ROBUST_RUNS], 0.4,
               label={"clean": "clean test digits", "moved": "shifted + rotated test digits"}[split])
    ax.set_xticks(x, ["no augmentation", "rank 0 shift / rank 1 rotate", "shift+rotate on both"])
    ax.set(ylabel="test accuracy", title=f"2-rank DDP, {spec['robust_steps']} steps", ylim=(0, 1))
    ax.legend(loc="lower right")
    path = plotting.save(fig, ctx.figure_path("robustness.png"))
    return Measurement(values, [path])


def _run_dp_memory(ctx: RunContext) -> Measurement:
    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        raise SkipClaim(f"needs >= 2 GPUs (found {torch.cuda.device_count() if torch.cuda.is_available() else 0})")
    values = dp_memory_experiment(batch=ctx.pick(16, 64, 128), seq=ctx.pick(64, 256, 256),
                                  vocab=ctx.pick(4096, 32000, 50257), steps=ctx.pick(2, 3, 5), seed=ctx.seed)
    gib = {k: v for k, v in values.items() if k.startswith("peak_gib_")}
    names = [k.removeprefix("peak_gib_") for k in gib]
    fig, ax = plotting.figure(6, 3.2)
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        ax.bar(np.arange(len(gib[f"peak_gib_{name}"])) + i * width, gib[f"peak_gib_{name}"], width, label=name)
    ax.set(xlabel="GPU", ylabel="peak memory (GiB)", title="peak memory per GPU")
    ax.legend()
    path = plotting.save(fig, ctx.figure_path("dp_memory.png"))
    return Measurement(values, [path])


CLAIMS = [
    Claim(
        id="multigpu.ddp_equals_big_batch",
        paper=PAPER,
        statement="DDP over 2 processes with per-rank batch B gives the same parameters after k steps as one process "
                  "with batch 2B (gradient averaging makes DDP equivalent to training on the union batch).",
        paper_reports="mathematical equivalence (Li et al. Sec. 3.1); no number",
        criterion="ddp_vs_union_max_abs_diff <= 1e-5 (float32 tolerance) and control_batch_B_max_abs_diff >= 1e-3 "
                  "(the comparison can tell batches apart)",
        run=_run_ddp_equivalence,
        check=lambda m: m["ddp_vs_union_max_abs_diff"] <= 1e-5 and m["control_batch_B_max_abs_diff"] >= 1e-3,
    ),
    Claim(
        id="multigpu.no_sync_accumulation",
        paper=PAPER,
        statement="Gradient accumulation that skips the all-reduce on non-final micro-steps (no_sync) gives the "
                  "large-batch step and sends `accumulation` times fewer all-reduces.",
        paper_reports="no_sync skips communication on non-final iterations (Li et al. Sec. 3.2.4); no number",
        criterion="no_sync_vs_big_batch_max_abs_diff <= 1e-5 and allreduces_without_no_sync == accumulation * "
                  "allreduces_with_no_sync > 0",
        run=_run_no_sync,
        check=lambda m: m["no_sync_vs_big_batch_max_abs_diff"] <= 1e-5 and m["allreduces_with_no_sync"] > 0
        and m["allreduces_without_no_sync"] == m["accumulation"] * m["allreduces_with_no_sync"],
    ),
    Claim(
        id="multigpu.per_rank_augmentation",
        paper=PAPER,
        statement="With one base seed, each rank applies its own augmentation: ranks see different views of the "
                  "same samples, and the views are reproduced exactly from the seed.",
        paper_reports="the post's application: a different augmentation on each GPU; no number",
        criterion="different_policies_fraction_differing == 1 and same_policy_fraction_differing == 1 and "
                  "rerun_max_abs_diff == 0",
        run=_run_rank_augment,
        check=lambda m: m["different_policies_fraction_differing"] == 1.0
        and m["same_policy_fraction_differing"] == 1.0 and m["rerun_max_abs_diff"] == 0.0,
    ),
    Claim(
        id="multigpu.per_rank_augmentation_robustness",
        paper=PAPER,
        statement="A different augmentation on each GPU gives a more robust model: 2-rank DDP with rank 0 shifting "
                  "and rank 1 rotating classifies shifted and rotated digits better than DDP without augmentation, "
                  "at little cost on clean digits.",
        paper_reports="the post's motivation for per-rank augmentation; no number",
        criterion="per_rank_moved_acc >= none_moved_acc + 0.05 and per_rank_clean_acc >= none_clean_acc - 0.02",
        run=_run_robustness,
        check=lambda m: m["per_rank_moved_acc"] >= m["none_moved_acc"] + 0.05
        and m["per_rank_clean_acc"] >= m["none_clean_acc"] - 0.02,
    ),
    Claim(
        id="multigpu.dp_memory_imbalance",
        paper=PAPER,
        statement="nn.DataParallel gathers every replica's outputs on GPU 0, so GPU 0 peaks far above the others; "
                  "computing the loss inside the replicas (targets scattered, only losses gathered) removes most "
                  "of the imbalance.",
        paper_reports="the post: GPU 0 runs out of memory first under DP; no number",
        criterion="dp_imbalance >= 1.2 and dp_loss_inside_imbalance - 1 <= 0.5 * (dp_imbalance - 1), where "
                  "imbalance = peak(GPU 0) / mean peak(other GPUs)",
        run=_run_dp_memory,
        check=lambda m: m["dp_imbalance"] >= 1.2
        and m["dp_loss_inside_imbalance"] - 1 <= 0.5 * (m["dp_imbalance"] - 1),
    ),
]
