"""DDP on this machine (gloo on CPU; nccl on GPUs is the same code): the engine's per-step cost under DDP against a
hand-written torchrun + DDP loop (goal <= 1.03x), and samples/s of 2 processes over 1.

Both loops train the same MLP on the same real MNIST digits with Adam and the same per-rank batch; each rank runs
them interleaved (hand, engine, hand, engine, ...), and a repeat's ratio uses the slowest rank of each (it sets
the pace). The one-process group runs before the two-process one, so the scaling row is not interleaved.
Run: `python benchmarks/multigpu_ddp_scaling.py [--repeats 7]` or `paperzoo bench multigpu_ddp_scaling`.
"""

from __future__ import annotations

import argparse
import os

from paperzoo import bench
from paperzoo.multigpu.launch import spawn_group
from paperzoo.multigpu.workers import benchmark_worker

BATCH, HIDDEN = 64, 256


def main() -> None:
    args = bench.parse(bench.arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]), repeats=7))
    steps = 5 if args.smoke else 200
    work = (steps, BATCH, args.repeats, HIDDEN)
    # one process, also started by spawn_group, so it runs with one thread like each DDP rank (torchrun's default)
    (single,) = spawn_group(benchmark_worker, world_size=1, args=work, timeout_s=1200)
    ranks = spawn_group(benchmark_worker, world_size=2, args=work, timeout_s=1200)
    hand = [max(r["hand"][i] for r in ranks) for i in range(args.repeats)]  # slowest rank per repeat
    engine = [max(r["engine"][i] for r in ranks) for i in range(args.repeats)]
    setting = f"MLP on MNIST, batch {BATCH} per rank, {steps} steps per repeat, 1 thread per process"
    rows = [bench.row("multigpu_ddp_scaling", "engine / hand-written DDP", f"per-step time under DDP, 2 gloo "
                      f"processes, {setting}", bench.paired(engine, hand), bench.Goal("<=", 1.03), "cpu",
                      bench.medians({"engine": engine, "hand-written": hand}, "ms/step", 1e3)),
            bench.row("multigpu_ddp_scaling", "samples/s 2 / 1 process", f"engine throughput of 2 DDP processes "
                      f"over 1 ({os.cpu_count()} CPU cores), {setting}", bench.paired(single["engine"],
                      [e / 2 for e in engine]), None, "cpu",
                      bench.medians({"1 process": [BATCH / s for s in single["engine"]],
                                     "2 processes": [2 * BATCH / s for s in engine]}, "samples/s"))]
    for r in rows:
        r["threads"] = 1  # each rank's torch threads (OMP_NUM_THREADS=1, as torchrun sets it)
    bench.report(rows, args.results)


if __name__ == "__main__":
    main()
