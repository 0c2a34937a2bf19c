"""Same command, same seed, same machine: identical measured values; and `--jobs 2` gives the same whether its two
workers run papers or one paper's seeds.

One test covers both: every paper's claims run at the smoke preset on two seeds once with the papers on two worker
processes (each worker runs its papers' seeds one after another in one process, as `--jobs 1` runs them), and once
paper by paper with each paper's seeds on two worker processes, with the same torch thread count (the count changes
float reductions, so it is part of the setup and recorded in the report). Only timings may differ. Each run is its
own `paperzoo` process, as a user runs it. (A third run in the main process, `--jobs 1`, was dropped for time: it
took as long as the other two together and runs the same seed loop as a paper worker.)
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
DECIDED_ON_TIMINGS = {"squeezetime.faster_than_mobile_nets", "metalearning.first_order_maml"}  # speed claims


def _run(out: Path, jobs: int, papers: tuple[str, ...] = ()) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "paperzoo", "reproduce", *papers, "--preset", "smoke", "--seeds", "2",
                           "--jobs", str(jobs), "--threads", "1", "--out", str(out), "--no-progress"], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"reproduce --jobs {jobs} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads((out / "results.json").read_text())


def _paper_by_paper(out: Path, papers: list[str]) -> dict:
    """Each paper alone with --jobs 2 (its seeds on the two workers), the results joined in the usual order."""
    runs = [_run(out / paper, 2, (paper,)) for paper in papers]
    return {**runs[0], "claims": [c for run in runs for c in run["claims"]]}


@pytest.mark.slow
def test_smoke_rerun_in_two_jobs_gives_identical_measured_values(tmp_path):
    papers_on_workers = _run(tmp_path / "papers", 2)
    papers = list(dict.fromkeys(c["id"].split(".")[0] for c in papers_on_workers["claims"]))
    seeds_on_workers = _paper_by_paper(tmp_path / "seeds", papers)
    assert set(papers) >= {"sanity", "multigpu", "causal", "dpo", "registers"}
    assert papers_on_workers["run"]["threads"] == seeds_on_workers["run"]["threads"] == 1
    assert papers_on_workers["run"]["jobs"] == seeds_on_workers["run"]["jobs"] == 2
    assert papers_on_workers["environment"] == seeds_on_workers["environment"]
    assert papers_on_workers["environment"]["deterministic_algorithms"] is True
    assert [c["id"] for c in papers_on_workers["claims"]] == [c["id"] for c in seeds_on_workers["claims"]]
    for a, b in zip(papers_on_workers["claims"], seeds_on_workers["claims"]):
        assert a["seeds"] == b["seeds"] and len(a["seeds"]) == 2, a["id"]
        assert a["measured"] == b["measured"], a["id"]
        assert a["per_seed"] == b["per_seed"], a["id"]
        assert a["preconditions"] == b["preconditions"], a["id"]
        if a["id"] not in DECIDED_ON_TIMINGS:
            assert (a["verdict"], a["reason"], a["tests"]) == (b["verdict"], b["reason"], b["tests"]), a["id"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().split(")")[-1].split()[0] != "Z"  # a zombie has exited


@pytest.mark.skipif(sys.platform != "linux", reason="parent-death signal is Linux-only")
def test_killing_a_parallel_run_stops_its_workers(tmp_path):
    import signal
    import time

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen([sys.executable, "-m", "paperzoo", "reproduce", "sanity", "causal", "--preset", "smoke",
                               "--jobs", "2", "--out", str(tmp_path), "--no-progress"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    deadline = time.monotonic() + 120
    while len(workers) < 2 and time.monotonic() < deadline and parent.poll() is None:
        found = subprocess.run(["pgrep", "-P", str(parent.pid), "-f", "spawn_main"], capture_output=True, text=True)
        workers = [int(p) for p in found.stdout.split()]
        time.sleep(0.2)
    assert len(workers) >= 2, "the two worker processes never started"
    parent.send_signal(signal.SIGTERM)
    parent.wait(timeout=30)
    deadline = time.monotonic() + 20
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers), "a worker kept running after its parent was killed"
