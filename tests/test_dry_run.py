"""`reproduce --dry-run`: a preset's models, data sets, schedules and evaluations are built and every training loop
runs its first steps after each evaluation, on one seed, so a preset's code path has run before a user spends hours
on it. A claim may say it cannot run here (skipped, with its reason: `full`'s paper-size models ask for a GPU); none
may fail. The dry runs of every paper cost what their evaluations cost (minutes a paper at `standard`), so the
suite runs the papers of `IN_THE_SUITE`; `make dry-runs` runs the others, each paper alone at both presets."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"


IN_THE_SUITE = {"standard": ("causal", "multigpu"), "full": ("causal", "registers", "capsnet", "squeezetime")}
PAPERS = ("sanity", "multigpu", "registers", "dpo", "capsnet", "squeezetime", "causal", "batchnorm", "gblend",
          "causal_vqa", "multiview_ssl", "metalearning")


def _dry_run(out: Path, preset: str, papers: tuple[str, ...]) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "paperzoo", "reproduce", *papers, "--preset", preset, "--dry-run",
                           "--jobs", "2", "--threads", "1", "--out", str(out), "--no-progress"], env=env,
                          capture_output=True, text=True, timeout=3600)
    results = json.loads((out / "results.json").read_text())
    failed = {c["id"]: c["reason"][:300] for c in results["claims"] if c["verdict"] == "error"}
    assert done.returncode == 0 and not failed, f"{failed}\n{done.stderr[-2000:]}"
    assert results["run"]["dry_run"] == 2 and results["preset"] == preset
    assert {c["id"].split(".")[0] for c in results["claims"]} == set(papers)
    assert all(len(c["seeds"]) <= 1 for c in results["claims"])
    assert "trained only its first 2 steps after each evaluation" in (out / "report.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("preset, papers", IN_THE_SUITE.items())
def test_a_dry_run_runs_the_presets_code_path_and_says_its_verdicts_are_not_evidence(tmp_path, preset, papers):
    _dry_run(tmp_path, preset, papers)


@pytest.mark.every_paper_dry_run
@pytest.mark.parametrize("preset, paper", [(preset, paper) for preset in IN_THE_SUITE for paper in PAPERS
                                           if paper not in IN_THE_SUITE[preset]])
def test_every_other_papers_dry_run(tmp_path, preset, paper):
    """The papers the suite leaves out, one at a time (`make dry-runs`; minutes each: not part of `make test`)."""
    _dry_run(tmp_path, preset, (paper,))


def test_the_dry_runs_cover_every_paper():
    from paperzoo.catalog import load_catalog

    assert set(PAPERS) == {entry.post.module for entry in load_catalog() if entry.claims}
