"""MAML meta-training step: our task-batched functional MAML (torch.func.vmap over tasks) against a plain per-task
Python loop written here (the way most tutorials write it: adapt one task at a time with torch.autograd.grad,
create_graph for second order), second- and first-order, at meta-batch 32 (Finn et al. 2017, Omniglot 5-way 1-shot).
Our MAML runs twice: all 32 tasks in one vmap (`task_chunk=0`, the GPU setting) and one task per vmap call
(`task_chunk=1`, the CPU setting).

Prints the step-time ratio loop / batched and the saved-for-backward memory of each (and CUDA peak memory on a GPU).
Run: python benchmarks/metalearning_maml.py [--meta-batch 32] [--channels 64] [--device cuda]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch.func import functional_call

from paperzoo.metalearning import MAML, ConvClassifier
from paperzoo.metalearning.profiling import graph_saved_bytes, median_seconds


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meta-batch", type=int, default=32)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--queries", type=int, default=15)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    t, n = args.meta_batch, 5
    sx, sy = torch.rand(t, n, 1, 28, 28, device=device), torch.arange(n, device=device).repeat(t, 1)
    qx = torch.rand(t, n * args.queries, 1, 28, 28, device=device)
    qy = torch.arange(n, device=device).repeat(t, args.queries)
    print(f"device={device} meta-batch={t} channels={args.channels} 5-way 1-shot {args.queries} queries/class")
    for first_order in (False, True):
        maml = MAML(ConvClassifier(n, channels=args.channels, episodic=True), first_order=first_order).to(device)
        a, b = batched_meta_loss(maml, sx, sy, qx, qy), loop_meta_loss(maml, sx, sy, qx, qy)
        assert torch.allclose(a, b, atol=1e-4), (a.item(), b.item())  # the same meta-loss

        def chunked_meta_loss(maml, *batch):
            maml.task_chunk = 1
            try:
                return batched_meta_loss(maml, *batch)
            finally:
                maml.task_chunk = None

        row = {}
        for name, fn in (("batched", batched_meta_loss), ("chunk=1", chunked_meta_loss), ("loop", loop_meta_loss)):
            def step():
                maml.zero_grad(set_to_none=True)
                fn(maml, sx, sy, qx, qy).backward()
                if device.type == "cuda":
                    torch.cuda.synchronize()

            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            seconds = median_seconds(step, repeats=args.repeats)
            peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan")
            row[name] = (seconds, graph_saved_bytes(fn(maml, sx, sy, qx, qy)) / 2**20, peak)
        order = "first-order " if first_order else "second-order"
        for name, (s, saved, peak) in row.items():
            print(f"{order} {name:8s} {s * 1000:8.1f} ms/step  saved {saved:8.1f} MiB  cuda peak {peak:8.1f} MiB")
        for name in ("batched", "chunk=1"):
            print(f"{order} speed-up loop/{name}: {row['loop'][0] / row[name][0]:.2f}x")


if __name__ == "__main__":
    main()
