"""One paper's seeds on worker processes (`paperzoo.seed_workers`): the same rows and the same shared models as one
process, the measurement's own error, and a clear error when a worker dies."""

import os
import signal

import pytest
import torch

from paperzoo.claims import RunContext
from paperzoo.seed_workers import SeedWorkerDied, SeedWorkers


def _context(tmp_path, workers=None) -> RunContext:
    return RunContext(preset="smoke", out_dir=tmp_path, seeds=[3, 5, 8], stream="fake", seed_workers=workers)


def _trained_weight(seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(4, generator=generator) * seed


def _measure_with_memo(ctx: RunContext, runs: dict, order: list):
    def measure(seed: int) -> dict:
        weight = ctx.shared(f"weight/{seed}", lambda: _trained_weight(seed))  # a model trained once per seed
        data = ctx.shared("data", lambda: torch.arange(4.0))  # built once for every seed
        runs[seed] = weight.sum()  # what the claim keeps for its figure
        runs["last"] = seed
        runs["curves"]["score"].append(seed * 10)  # a list nested in a container the claim holds
        order.append(seed)
        return {"score": float(weight @ data), "pid": os.getpid()}
    return measure


def test_workers_give_the_rows_and_the_shared_models_of_one_process(tmp_path):
    sequential, runs, order = _context(tmp_path), {"curves": {"score": []}}, []
    expected = sequential.over_seeds(_measure_with_memo(sequential, runs, order))
    workers = SeedWorkers(2, 1)
    try:
        parallel, parallel_runs, parallel_order = _context(tmp_path, workers), {"curves": {"score": []}}, []
        rows = parallel.over_seeds(_measure_with_memo(parallel, parallel_runs, parallel_order))
        assert rows["score"] == expected["score"]
        assert parallel_order == order == [3, 5, 8] and parallel_runs == runs and list(parallel_runs) == list(runs)
        assert parallel_runs["curves"]["score"] == [30, 50, 80]
        assert len(set(rows["pid"]) - {os.getpid()}) == 2, "the seeds did not run on the two workers"
        assert sorted(parallel.memo) == sorted(sequential.memo)
        for key in sequential.memo:
            assert torch.equal(parallel.memo[key], sequential.memo[key]), key
        again = parallel.over_seeds(lambda seed: {"cached": float(parallel.memo[f"weight/{seed}"].sum())})
        assert again["cached"] == [float(_trained_weight(s).sum()) for s in parallel.seeds]
    finally:
        workers.close()


def _raise_on_five(seed: int) -> dict:
    if seed == 5:
        raise ValueError("bad seed 5")
    return {"x": float(seed)}


def _die_on_five(seed: int) -> dict:
    if seed == 5:
        os.kill(os.getpid(), signal.SIGKILL)
    return {"x": float(seed)}


def test_a_measurement_that_raises_raises_its_own_error_and_a_dead_worker_says_so(tmp_path):
    workers = SeedWorkers(2, 1)
    try:
        with pytest.raises(ValueError, match="bad seed 5"):
            _context(tmp_path, workers).over_seeds(_raise_on_five)
        assert _context(tmp_path, workers).over_seeds(lambda s: {"x": float(s)}) == {"x": [3.0, 5.0, 8.0]}
        with pytest.raises(SeedWorkerDied, match=r"seed 5 died \(killed by SIGKILL"):
            _context(tmp_path, workers).over_seeds(_die_on_five)
    finally:
        workers.close()
