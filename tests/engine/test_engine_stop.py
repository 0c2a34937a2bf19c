"""A DDP training run stopped by SIGTERM on one rank (issue #37): every rank stops after the same step, rank 0 saves
that step's checkpoint, and `fit(resume=True)` on both ranks ends where an uninterrupted 2-rank run ends."""

import json

import numpy as np

from engine_stop_worker import stop_worker
from paperzoo.engine.checkpoint import read_checkpoint
from paperzoo.multigpu.launch import spawn_group


def test_a_signal_to_one_rank_stops_every_rank_after_the_same_step_and_resumes_exactly(tmp_path):
    stopped, straight = str(tmp_path / "stopped"), str(tmp_path / "straight")
    ranks = spawn_group(stop_worker, 2, args=(stopped, 7, 1, False), timeout_s=300)
    assert all("after step 7 of 12" in r["stopped"] and r["signum"] == 15 for r in ranks), ranks
    assert read_checkpoint(tmp_path / "stopped" / "checkpoints" / "last.safetensors")[1]["step"] == 7
    resumed = spawn_group(stop_worker, 2, args=(stopped, None, 1, True), timeout_s=300)
    uninterrupted = spawn_group(stop_worker, 2, args=(straight, None, 1, False), timeout_s=300)
    for a, b in zip(resumed[0]["params"], uninterrupted[0]["params"]):
        assert np.array_equal(a, b)
    rows = lambda out: (tmp_path / out / "metrics.jsonl").read_text().splitlines()  # noqa: E731
    assert [json.loads(r) for r in rows("stopped")] == [json.loads(r) for r in rows("straight")]
