"""`reproduce --dry-run`: a preset's models, data sets, schedules and evaluations are built and every training loop
runs its first steps after each evaluation, on one seed, so a preset's code path has run before a user spends hours
on it. A claim may say it cannot run here (skipped, with its reason: `full`'s paper-size models ask for a GPU); none
may fail. The dry runs of every paper cost what their evaluations cost (minutes a paper at `standard`), so the
suite runs the papers below; `paperzoo reproduce --preset standard --dry-run --jobs 2` runs them all."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"


@pytest.mark.slow
@pytest.mark.parametrize("preset, papers", [("standard", ("causal", "multigpu")),
                                            ("full", ("causal", "registers", "capsnet", "squeezetime"))])
def test_a_dry_run_runs_the_presets_code_path_and_says_its_verdicts_are_not_evidence(tmp_path, preset, papers):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "paperzoo", "reproduce", *papers, "--preset", preset, "--dry-run",
                           "--jobs", "2", "--threads", "1", "--out", str(tmp_path), "--no-progress"], env=env,
                          capture_output=True, text=True, timeout=1200)
    results = json.loads((tmp_path / "results.json").read_text())
    failed = {c["id"]: c["reason"][:300] for c in results["claims"] if c["verdict"] == "error"}
    assert done.returncode == 0 and not failed, f"{failed}\n{done.stderr[-2000:]}"
    assert results["run"]["dry_run"] == 2 and results["preset"] == preset
    assert {c["id"].split(".")[0] for c in results["claims"]} == set(papers)
    assert all(len(c["seeds"]) <= 1 for c in results["claims"])
    assert "trained only its first 2 steps after each evaluation" in (tmp_path / "report.md").read_text()
