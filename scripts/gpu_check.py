"""`make gpu-check`: every CUDA path of paperzoo once, in one go, within 8 minutes on one GPU; writes a results file.

The checks, each in its own process with its own time limit (all within the 8-minute budget):
  train bf16 / fp16   `paperzoo train sanity_cnn` on CUDA with train.amp=bf16, then fp16 (with its grad scaler)
  ddp engine          the same under `torchrun --nproc_per_node <visible GPUs>` (nccl; one GPU: no group)
  ddp probe           a raw process group of one process per visible GPU: DDP on nccl, an all-reduce
  fsdp dpo            `paperzoo train dpo` with LoRA under torchrun, train.parallel=fsdp (FSDP2 on nccl; needs >= 2
                      GPUs), stopped half way and resumed
  bench ...           metalearning_maml, squeezetime_speed, registers_vit, dpo_step with --device cuda
  reproduce           `paperzoo reproduce gblend --preset full` (a cheap paper; --paper picks another)

Without a GPU (or with --dry-run) it runs the same steps as a CPU DRY RUN at tiny sizes: gloo instead of nccl
(two processes), the benchmarks with --smoke, the smoke preset; fp16 is skipped (its autocast needs CUDA). The
output and the results file say so on every line: a dry run shows the script works, not that the GPU paths do.

    python scripts/gpu_check.py [--dry-run] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from paperzoo import bench

ROOT = Path(__file__).resolve().parent.parent
GPU_BUDGET_S = 480  # 8 minutes on one GPU
DRY_RUN_BUDGET_S = 1200  # a loaded 2-core CPU: every step still has its own limit
CUDA_BENCHMARKS = ("metalearning_maml", "squeezetime_speed", "registers_vit", "dpo_step")
DRY_RUN = "CPU dry run"
BENCHMARK_LIMIT_S = 120  # each of the four; they take well under a minute on one GPU


@dataclass(frozen=True)
class Mode:
    """What one gpu-check run does: on CUDA at working sizes, or as a CPU dry run at tiny ones."""

    cuda: bool
    train_steps: int
    ddp_processes: int
    preset: str
    bench_args: tuple[str, ...]
    budget_s: float

    @property
    def label(self) -> str:
        return f"CUDA ({torch.cuda.get_device_name()})" if self.cuda else DRY_RUN

    @property
    def device(self) -> str:
        return "cuda" if self.cuda else "cpu"


def pick_mode(dry_run: bool) -> Mode:
    if not dry_run and torch.cuda.is_available():
        return Mode(True, 300, torch.cuda.device_count(), "full", ("--device", "cuda", "--repeats", "3"),
                    GPU_BUDGET_S)
    return Mode(False, 8, 2, "smoke", ("--device", "cpu", "--smoke"), DRY_RUN_BUDGET_S)


class Clock:
    """The time left of the budget: each step gets at most its own limit and never more than what is left."""

    def __init__(self, budget_s: float):
        self.deadline = time.monotonic() + budget_s

    def limit(self, own_s: float) -> float:
        return max(0.0, min(own_s, self.deadline - time.monotonic()))


def run(command: list[str], timeout_s: float) -> tuple[int, str]:
    """(exit code, the last lines of its output); 124 when it ran past `timeout_s`."""
    if timeout_s <= 0:
        return 124, "not started: the time budget is spent"
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {timeout_s:.0f} s"
    return done.returncode, "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])


def train_metrics(out: Path) -> dict:
    """First and last train loss, their finiteness and the final test accuracy of a `paperzoo train` run."""
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if r["split"] == "train"]
    evals = [r for r in rows if r["split"] == "eval"]
    return {"first_loss": losses[0], "last_loss": losses[-1], "finite": all(map(math.isfinite, losses)),
            "test_acc": evals[-1].get("test_acc") if evals else None}


def check_train(mode: Mode, clock: Clock, amp: str, launcher: list[str], name: str, tmp: Path) -> dict:
    """`paperzoo train sanity_cnn` with `amp` under `launcher`; ok when it exits 0 with finite losses (and, on
    CUDA, a test accuracy far above chance: a broken autocast or scaler does not learn)."""
    out = tmp / name
    code, tail = run([*launcher, "-m", "paperzoo", "train", "sanity_cnn", f"train.steps={mode.train_steps}",
                      f"train.amp={amp}", f"train.device={mode.device}", "train.log_every=1", "train.progress=false",
                      "--out", str(out)], clock.limit(120))
    if code != 0:
        return {"status": "failed", "detail": tail}
    metrics = train_metrics(out)
    learned = not mode.cuda or (metrics["test_acc"] or 0) > 0.5
    return {"status": "ok" if metrics["finite"] and learned else "failed", "detail": metrics}


def ddp_probe(cuda: bool) -> dict:
    """One rank of a raw process group (nccl on CUDA, gloo on a CPU): DDP on a linear layer for 3 steps, then an
    all-reduce of the rank ids. Run by `spawn_group`, which sets the torchrun environment."""
    import torch.distributed as dist
    from torch import nn

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = nn.parallel.DistributedDataParallel(nn.Linear(16, 4).to(device),
                                                    device_ids=[device.index] if cuda else None)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(3):
            optimizer.zero_grad()
            model(torch.randn(8, 16, device=device)).square().mean().backward()
            optimizer.step()
        ranks = torch.tensor([float(rank)], device=device)
        dist.all_reduce(ranks)
        weights = model.module.weight.detach().clone()
        gathered = [torch.empty_like(weights) for _ in range(world)]
        dist.all_gather(gathered, weights)
        return {"backend": dist.get_backend(), "rank_sum": ranks.item(),
                "replicas_equal": all(torch.equal(g, weights) for g in gathered)}
    finally:
        dist.destroy_process_group()


def check_ddp_probe(mode: Mode, clock: Clock) -> dict:
    from paperzoo.multigpu.launch import spawn_group

    world = mode.ddp_processes
    try:
        ranks = spawn_group(ddp_probe, world_size=world, args=(mode.cuda,), timeout_s=max(1.0, clock.limit(120)))
    except Exception as e:  # noqa: BLE001 - a failed rank, a timeout: reported as this check's failure
        return {"status": "failed", "detail": f"{type(e).__name__}: {e}"[-2000:]}
    expected = world * (world - 1) / 2
    ok = all(r["rank_sum"] == expected and r["replicas_equal"] for r in ranks)
    return {"status": "ok" if ok else "failed", "detail": {"processes": world, **ranks[0]}}


def check_fsdp(mode: Mode, clock: Clock, torchrun: list[str], tmp: Path) -> dict:
    """LoRA DPO on a tiny GPT sharded with FSDP2 over the ranks: half the steps, then `--resume` to the end; ok when
    both exit 0, every loss is finite and the first is log 2 (the policy starts as its own reference)."""
    if mode.ddp_processes < 2:
        return {"status": "skipped", "detail": "FSDP shards over >= 2 ranks and nccl runs one rank per GPU: 1 GPU "
                                               "is visible"}
    out, steps = tmp / "fsdp", mode.train_steps // 10 if mode.cuda else mode.train_steps
    size = ["tiny.layers=4", "tiny.hidden_size=256", "pairs=512"] if mode.cuda else ["tiny.layers=2", "pairs=64"]
    command = [*torchrun, "-m", "paperzoo", "train", "dpo", *size, "lora.r=8", "train.parallel=fsdp",
               f"train.device={mode.device}", "train.log_every=1", "train.progress=false"]
    for part, extra in ((steps // 2, []), (steps, ["--resume"])):
        code, tail = run([*command, f"train.steps={part}", "--out", str(out), *extra], clock.limit(150))
        if code != 0:
            return {"status": "failed", "detail": tail}
    metrics = train_metrics(out)
    ok = metrics["finite"] and abs(metrics["first_loss"] - math.log(2)) < 1e-3
    return {"status": "ok" if ok else "failed", "detail": {**metrics, "steps": steps}}


def check_reproduce(mode: Mode, clock: Clock, paper: str, tmp: Path) -> dict:
    out = tmp / "reproduce"
    code, tail = run([sys.executable, "-m", "paperzoo", "reproduce", paper, "--preset", mode.preset,
                      "--no-progress", "--out", str(out)], clock.limit(150))
    if code != 0:
        return {"status": "failed", "detail": tail}
    claims = json.loads((out / "results.json").read_text())["claims"]
    verdicts = {c["id"]: c["verdict"] for c in claims}
    return {"status": "ok" if "error" not in verdicts.values() else "failed",
            "detail": {"paper": paper, "preset": mode.preset, "verdicts": verdicts}}


def check_benchmarks(mode: Mode, clock: Clock) -> tuple[dict, list[dict]]:
    rows, runs = [], {}
    for name in CUDA_BENCHMARKS:
        own, runs[name] = bench.run_script(ROOT / "benchmarks" / f"{name}.py", list(mode.bench_args),
                                           timeout_s=max(1.0, clock.limit(BENCHMARK_LIMIT_S)))
        rows += own
    failed = [name for name, r in runs.items() if r["exit"] != 0]
    return {"status": "failed" if failed else "ok", "detail": {"runs": runs, "failed": failed}}, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU dry run at tiny sizes even when a GPU is here")
    parser.add_argument("--out", help="results file (default: runs/gpu-check-<timestamp>.json)")
    parser.add_argument("--paper", default="gblend", help="the paper reproduced at the full preset (default gblend)")
    args = parser.parse_args(argv)
    mode = pick_mode(args.dry_run)
    out = Path(args.out or ROOT / "runs" / f"gpu-check-{time.strftime('%Y%m%d-%H%M%S')}.json")
    clock, started = Clock(mode.budget_s), time.monotonic()
    print(f"gpu-check: {mode.label}" + ("" if mode.cuda else " - no GPU path is exercised, only this script"))
    python = [sys.executable]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={mode.ddp_processes}"]
    checks: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checks["train amp=bf16"] = check_train(mode, clock, "bf16", python, "bf16", tmp)
        checks["train amp=fp16"] = (check_train(mode, clock, "fp16", python, "fp16", tmp) if mode.cuda else
                                    {"status": "skipped", "detail": "fp16 autocast and its grad scaler need CUDA"})
        checks["ddp engine (torchrun)"] = check_train(mode, clock, "off", torchrun, "ddp", tmp)
        checks["ddp probe"] = check_ddp_probe(mode, clock)
        checks["fsdp dpo (torchrun)"] = check_fsdp(mode, clock, torchrun, tmp)
        checks["benchmarks"], rows = check_benchmarks(mode, clock)
        checks[f"reproduce {args.paper}"] = check_reproduce(mode, clock, args.paper, tmp)
    for name, check in checks.items():
        print(f"[{mode.label}] {name:24s} {check['status']:8s} {json.dumps(check['detail'])[:300]}")
    print(bench.table(rows, values=False))
    seconds = round(time.monotonic() - started, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"mode": mode.label, "dry_run": not mode.cuda, "seconds": seconds, "budget_s": mode.budget_s,
                               "environment": bench.environment(), "checks": checks, "bench_rows": rows},
                              indent=1) + "\n")
    failed = [name for name, c in checks.items() if c["status"] == "failed"]
    print(f"gpu-check ({mode.label}): {'FAILED ' + ', '.join(failed) if failed else 'all passed'} in {seconds} s; "
          f"results in {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
