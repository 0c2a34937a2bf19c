"""The benchmark scripts end to end at --smoke sizes, `make gpu-check`'s CPU dry run, and the committed results the
goals table of docs/benchmarks.md is rendered from."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from paperzoo import bench
from paperzoo.cli import main

ROOT = Path(__file__).resolve().parent.parent
CPU_ONLY = ["batchnorm_speed", "capsnet_routing", "cpu_speedups", "engine_overhead", "gblend_overhead",
            "multigpu_ddp_scaling"]
STATUSES = ("met", "missed", "undecided", "no goal")


def _well_formed(r: dict) -> bool:
    if r["ratio"] is None:
        return r["status"].startswith("skipped: ") and r["repeats"] == 0
    return r["status"] in STATUSES and r["low"] <= r["ratio"] <= r["high"] and r["repeats"] >= 1


@pytest.mark.slow
def test_the_cpu_benchmarks_run_at_smoke_size_through_paperzoo_bench(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "bench.json"
    assert main(["bench", "--out", str(out), *CPU_ONLY, "--", "--smoke"]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert {r["benchmark"] for r in rows} == set(CPU_ONLY)
    assert all(_well_formed(r) for r in rows), [r for r in rows if not _well_formed(r)]
    memory = next(r for r in rows if r["name"] == "peak memory ours / reference")  # fresh process per variant
    if sys.platform == "linux":
        assert memory["values"]["ours MiB"] > 0 and memory["values"]["reference MiB"] > 0


@pytest.mark.slow
def test_gpu_check_passes_its_cpu_dry_run(tmp_path):
    out = tmp_path / "gpu-check.json"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--dry-run", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1500, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["mode"] == "CPU dry run" and result["dry_run"] is True
    assert "gpu-check: CPU dry run - no GPU path is exercised" in done.stdout
    checks = result["checks"]
    assert checks["train amp=fp16"]["status"] == "skipped"
    assert {name for name, c in checks.items() if c["status"] == "ok"} == {
        "train amp=bf16", "ddp engine (torchrun)", "ddp probe", "fsdp dpo (torchrun)", "benchmarks",
        "reproduce gblend"}
    assert checks["ddp probe"]["detail"] == {"processes": 2, "backend": "gloo", "rank_sum": 1.0,
                                             "replicas_equal": True}
    assert {r["benchmark"] for r in result["bench_rows"]} == {
        "metalearning_maml", "squeezetime_speed", "registers_vit", "dpo_step"}
    assert all(r["device"] == "cpu" and _well_formed(r) for r in result["bench_rows"])


def test_the_committed_results_cover_every_benchmark():
    data = json.loads((ROOT / "docs" / "results" / "bench.json").read_text())
    assert {r["benchmark"] for r in data["rows"]} == set(bench.discover(ROOT / "benchmarks"))
    assert all(_well_formed(r) for r in data["rows"]), "rerun paperzoo bench --out docs/results/bench.json"
    assert all(run["exit"] == 0 for run in data["runs"].values())
    assert len(data["environment"]["load_before"]) == 3 and len(data["environment"]["load_after"]) == 3
    assert "<!-- results:benchmarks -->" in (ROOT / "docs" / "benchmarks.md").read_text()
