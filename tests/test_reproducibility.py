"""Same command, same seed, same machine: identical measured values; and `--jobs 2` gives what `--jobs 1` gives.

One test covers both: every paper's claims run at the smoke preset once in one process and once in two worker
processes, with the same torch thread count (the count changes float reductions, so it is part of the setup and
recorded in the report). Only timings may differ.
"""

import json

import pytest

from paperzoo.cli import main


def _run(out, jobs: int) -> dict:
    code = main(["reproduce", "--preset", "smoke", "--jobs", str(jobs), "--threads", "1", "--out", str(out),
                 "--no-progress"])
    assert code == 0, f"reproduce --jobs {jobs} reported an error (see its report in {out})"
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_smoke_rerun_in_two_jobs_gives_identical_measured_values(tmp_path):
    one, two = _run(tmp_path / "jobs1", 1), _run(tmp_path / "jobs2", 2)
    assert [c["id"] for c in one["claims"]] == [c["id"] for c in two["claims"]]
    assert {c["id"].split(".")[0] for c in one["claims"]} >= {"engine", "multigpu", "causal", "dpo", "registers"}
    assert one["run"]["threads"] == two["run"]["threads"] == 1 and two["run"]["jobs"] == 2
    for a, b in zip(one["claims"], two["claims"]):
        assert a["seeds"] == b["seeds"], a["id"]
        assert a["measured"] == b["measured"], a["id"]
        assert a["per_seed"] == b["per_seed"], a["id"]
        assert a["preconditions"] == b["preconditions"], a["id"]
        if not a["timings"]:  # a claim about speed is decided on timings, which differ between runs
            assert (a["verdict"], a["tests"]) == (b["verdict"], b["tests"]), a["id"]
