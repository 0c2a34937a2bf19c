"""DDP on this machine: samples/s of 1 and 2 processes (gloo on CPU, nccl on GPUs is the same code), and the
engine's per-step cost under DDP against a hand-written torchrun + DDP loop (goal <= 1.03x).

Both loops train the same MLP on the same real MNIST digits with Adam and the same per-rank batch; each rank runs
them interleaved (hand, engine, hand, engine, ...) and the medians are compared, so machine noise hits both alike.
Run: `python benchmarks/multigpu_ddp_scaling.py` or `paperzoo bench multigpu_ddp_scaling`.
"""

from __future__ import annotations

import os
import statistics

from paperzoo.multigpu.launch import spawn_group
from paperzoo.multigpu.workers import benchmark_worker

STEPS, BATCH, ROUNDS, HIDDEN = 200, 64, 5, 256


def main() -> None:
    # one process, also started by spawn_group, so it runs with one thread like each DDP rank (torchrun's default)
    (single,) = spawn_group(benchmark_worker, world_size=1, args=(STEPS, BATCH, ROUNDS, HIDDEN), timeout_s=1200)
    one = statistics.median(single["engine"])
    ranks = spawn_group(benchmark_worker, world_size=2, args=(STEPS, BATCH, ROUNDS, HIDDEN), timeout_s=1200)
    hand = max(statistics.median(r["hand"]) for r in ranks)  # the slowest rank sets the pace
    engine = max(statistics.median(r["engine"]) for r in ranks)
    best = max(min(r["engine"]) for r in ranks) / max(min(r["hand"]) for r in ranks)  # least disturbed rounds
    print(f"multigpu_ddp_scaling: 1 process {BATCH / one:.0f} samples/s; 2 DDP processes (gloo) "
          f"{2 * BATCH / engine:.0f} samples/s (x{one * 2 / engine:.2f}; one thread per process, {os.cpu_count()} CPU cores)")
    print(f"multigpu_ddp_scaling: hand-written DDP loop {hand * 1e3:.2f} ms/step, engine {engine * 1e3:.2f} ms/step, "
          f"ratio {engine / hand:.3f}x of medians, {best:.3f}x of the fastest rounds (goal <= 1.03x; {ROUNDS} "
          f"interleaved rounds of {STEPS} steps, batch {BATCH} per rank)")


if __name__ == "__main__":
    main()
