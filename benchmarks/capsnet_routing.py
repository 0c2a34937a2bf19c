"""CapsNet DigitCaps (prediction vectors + 3 routing iterations), forward + backward at batch 128 on the CPU:
paperzoo's einsum routing vs a reference written the common way (W tiled over the batch, u tiled over the
parents, batched matmul of 16x8 by 8x1, routing on 5-D tensors). Goals: >= 1.5x the reference's speed, <= its
peak memory.

Sabour, Frosst & Hinton 2017 (arXiv 1710.09829), Sec. 4: 1152 primary 8D capsules -> 10 digit 16D capsules.
Speed: both variants interleaved in one process. Memory: each variant's step in a fresh process (paperzoo.bench).

    python benchmarks/capsnet_routing.py [--batch 128] [--repeats 7]
"""

from __future__ import annotations

import argparse

import torch

from paperzoo import bench
from paperzoo.capsnet import DigitCaps, squash

CHILDREN, IN_DIM, PARENTS, OUT_DIM, ITERATIONS = 1152, 8, 10, 16, 3
VARIANTS = ("ours", "reference")


def reference_digitcaps(u: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The common formulation: materialise W for every example and u for every parent, then matmul."""
    b = u.shape[0]
    w = weight[None].repeat(b, 1, 1, 1, 1)  # (B, N, J, 16, 8)
    u = u[:, :, None, :, None].repeat(1, 1, PARENTS, 1, 1)  # (B, N, J, 8, 1)
    u_hat = w @ u  # (B, N, J, 16, 1)
    logits = torch.zeros(b, CHILDREN, PARENTS, 1, 1)
    for r in range(ITERATIONS):
        c = logits.softmax(dim=2)  # (B, N, J, 1, 1)
        v = squash((c * u_hat).sum(1, keepdim=True), dim=3)  # (B, 1, J, 16, 1)
        if r < ITERATIONS - 1:
            logits = logits + u_hat.transpose(3, 4) @ v.repeat(1, CHILDREN, 1, 1, 1)  # (B, N, J, 1, 1)
    return v.view(b, PARENTS, OUT_DIM)  # (B, J, 16)


def training_step(variant: str, batch: int):
    """Forward + backward of one variant at `batch`, ready to be called repeatedly."""
    torch.manual_seed(0)
    layer = DigitCaps(CHILDREN, IN_DIM, PARENTS, OUT_DIM, ITERATIONS)
    u = squash(torch.randn(batch, CHILDREN, IN_DIM))
    forward = (lambda: layer(u)) if variant == "ours" else (lambda: reference_digitcaps(u, layer.weight))

    def step() -> None:
        layer.weight.grad = None
        forward().norm(dim=-1).sum().backward()

    return step


def main() -> None:
    parser = bench.arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]), repeats=7)
    parser.add_argument("--batch", type=int, default=128)
    args = bench.parse(parser)
    batch = 8 if args.smoke else args.batch
    if args.memory_of:
        bench.child_reply(bench.peak_mib(training_step(args.memory_of, batch)))
        return
    torch.manual_seed(0)
    layer = DigitCaps(CHILDREN, IN_DIM, PARENTS, OUT_DIM, ITERATIONS)
    u = squash(torch.randn(4, CHILDREN, IN_DIM))
    assert torch.allclose(layer(u), reference_digitcaps(u, layer.weight), atol=1e-5), "variants disagree"
    times = bench.interleaved({v: bench.seconds_of(training_step(v, batch)) for v in VARIANTS}, args.repeats)
    rates = {v: [batch / t for t in times[v]] for v in VARIANTS}
    forwarded = bench.forwarded_options(args, "smoke", "batch", "threads")
    peaks = bench.peaks_mib(__file__, list(VARIANTS), forwarded, torch.device("cpu"),
                            lambda v: training_step(v, batch))
    rows = [bench.row("capsnet_routing", "speed ours / reference", f"images/s forward+backward of DigitCaps, "
                      f"batch {batch}", bench.paired(rates["ours"], rates["reference"]), bench.Goal(">=", 1.5),
                      "cpu", bench.medians(rates, "images/s"))]
    if None in peaks.values():
        rows.append(bench.row("capsnet_routing", "peak memory ours / reference", "", None, None, "cpu",
                              status=bench.MEMORY_UNAVAILABLE))
    else:
        rows.append(bench.row("capsnet_routing", "peak memory ours / reference", "peak memory a forward+backward "
                              "adds, fresh process per variant", [peaks["ours"] / peaks["reference"]],
                              bench.Goal("<=", 1.0), "cpu", {f"{v} MiB": peaks[v] for v in VARIANTS}))
    bench.report(rows, args.results)


if __name__ == "__main__":
    main()
