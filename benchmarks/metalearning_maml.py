"""MAML meta-training step: our task-batched functional MAML (torch.func.vmap over tasks) against a plain per-task
Python loop written here (the way most tutorials write it: adapt one task at a time with torch.autograd.grad,
create_graph for second order), second- and first-order, at meta-batch 32 (Finn et al. 2017, Omniglot 5-way 1-shot).
Our MAML runs twice: all 32 tasks in one vmap (`task_chunk=0`, the GPU setting) and one task per vmap call
(`task_chunk=1`, the CPU setting).

Goals: on a GPU, the batched step >= 2x the loop's speed (one batched graph instead of 32 tasks' worth of small
kernel launches). On a CPU the goal is parity (>= 1x) for the CPU setting, not a speed-up: a CPU has no launch
overhead to amortise, and the batched graph turns each convolution over tasks into a grouped convolution, which
CPU kernels run several times slower than the same work task by task, so the best a CPU can do is match the loop.

Speed: the three variants interleaved over repeats. Memory: the bytes the autograd graph saves for backward (the
same on every device), and on CUDA the peak allocated memory of a step.
Run: python benchmarks/metalearning_maml.py [--meta-batch 32] [--channels 64] [--device cuda]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch.func import functional_call

from paperzoo import bench
from paperzoo.metalearning import MAML, ConvClassifier
from paperzoo.metalearning.profiling import graph_saved_bytes

WAYS = 5


def loop_meta_loss(maml: MAML, sx, sy, qx, qy) -> torch.Tensor:
    """Reference: one task at a time, inner step by torch.autograd.grad."""
    learner, names = maml.learner, maml.names
    losses = []
    for i in range(sx.shape[0]):
        params = dict(learner.named_parameters())
        for _ in range(maml.inner_steps):
            loss = F.cross_entropy(functional_call(learner, params, (sx[i],)), sy[i])
            grads = torch.autograd.grad(loss, list(params.values()), create_graph=not maml.first_order)
            params = {n: p - maml.inner_lr * g for (n, p), g in zip(params.items(), grads)}
        s = sx.shape[1]
        logits = functional_call(learner, params, (torch.cat([sx[i], qx[i]]),), {"n_stats": s})[s:]
        losses.append(F.cross_entropy(logits, qy[i]))
    assert names == list(params)
    return torch.stack(losses).mean()


def batched_meta_loss(maml: MAML, sx, sy, qx, qy) -> torch.Tensor:
    return F.cross_entropy(maml(sx, sy, qx).flatten(0, 1), qy.flatten())


def chunked_meta_loss(maml: MAML, *batch) -> torch.Tensor:
    maml.task_chunk = 1
    try:
        return batched_meta_loss(maml, *batch)
    finally:
        maml.task_chunk = None


META_LOSSES = {"batched": batched_meta_loss, "chunk=1": chunked_meta_loss, "loop": loop_meta_loss}


def episode(meta_batch: int, queries: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(0)
    sx, sy = torch.rand(meta_batch, WAYS, 1, 28, 28, device=device), torch.arange(WAYS, device=device).repeat(meta_batch, 1)
    qx = torch.rand(meta_batch, WAYS * queries, 1, 28, 28, device=device)  # (T, N*Q, 1, 28, 28)
    qy = torch.arange(WAYS, device=device).repeat(meta_batch, queries)  # (T, N*Q)
    return sx, sy, qx, qy


def rows_for_order(maml: MAML, batch: tuple, order: str, repeats: int, device: torch.device) -> list[dict]:
    a, b = batched_meta_loss(maml, *batch), loop_meta_loss(maml, *batch)
    assert torch.allclose(a, b, atol=1e-4), (a.item(), b.item())  # the same meta-loss

    def step(fn):
        def run() -> None:
            maml.zero_grad(set_to_none=True)
            fn(maml, *batch).backward()

        return run

    times = bench.interleaved({name: bench.seconds_of(step(fn), device) for name, fn in META_LOSSES.items()},
                              repeats)
    saved = {name: graph_saved_bytes(fn(maml, *batch)) / 2**20 for name, fn in META_LOSSES.items()}
    ms = bench.medians(times, "ms/step", 1e3)
    what = f"{order} meta-training step, meta-batch {len(batch[0])}"
    goals = {"batched": bench.Goal(">=", 2.0)} if device.type == "cuda" else {"chunk=1": bench.Goal(">=", 1.0)}
    rows = [bench.row("metalearning_maml", f"{order} loop / {name}", f"speed-up of ours ({name}) over the "
                      f"per-task loop, {what}", bench.paired(times["loop"], times[name]), goals.get(name), str(device),
                      {f"{k} ms/step": ms[f"{k} ms/step"] for k in (name, "loop")}) for name in ("batched", "chunk=1")]
    rows.append(bench.row("metalearning_maml", f"{order} saved memory batched / loop", f"bytes saved for backward, "
                          f"{what}", [saved["batched"] / saved["loop"]], None, str(device),
                          {f"{k} MiB": v for k, v in saved.items()}))
    if device.type == "cuda":
        peaks = {name: bench.peak_mib(step(fn), device) for name, fn in META_LOSSES.items()}
        rows.append(bench.row("metalearning_maml", f"{order} CUDA peak batched / loop", f"peak allocated memory "
                              f"of a step, {what}", [peaks["batched"] / peaks["loop"]], None, str(device),
                              {f"{k} MiB": v for k, v in peaks.items()}))
    return rows


def main() -> None:
    parser = bench.arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]), repeats=5, device=True)
    parser.add_argument("--meta-batch", type=int, default=32)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--queries", type=int, default=15)
    args = bench.parse(parser)
    device = torch.device(args.device)
    meta_batch, channels, queries = (2, 4, 1) if args.smoke else (args.meta_batch, args.channels, args.queries)
    batch = episode(meta_batch, queries, device)
    rows = []
    for first_order in (False, True):
        maml = MAML(ConvClassifier(WAYS, channels=channels, episodic=True), first_order=first_order).to(device)
        rows += rows_for_order(maml, batch, "first-order" if first_order else "second-order", args.repeats, device)
    bench.report(rows, args.results)


if __name__ == "__main__":
    main()
