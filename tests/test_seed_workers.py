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


def _raise_on_nine(seed: int) -> dict:
    if seed == 9:
        raise ValueError("bad seed 9")
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


def test_an_ahead_seed_that_raises_warns_and_leaves_the_looks_own_rows(tmp_path):
    workers = SeedWorkers(2, 1)
    try:
        ctx = _context(tmp_path, workers)
        with pytest.warns(RuntimeWarning, match=r"seed 9, measured ahead .* raised ValueError: bad seed 9"):
            rows = workers.map(_raise_on_nine, ctx, [3, 5, 8], ahead=[9])
    finally:
        workers.close()
    assert rows == [{"x": 3.0}, {"x": 5.0}, {"x": 8.0}]


def _lookahead_claim(out_dir):
    """A claim whose first look (3 seeds) is undecided: its per-seed gains need 5 seeds to clear the margin."""
    from paperzoo.claims import Claim, Measurement
    from paperzoo.criteria import Effect, beats

    kept = []  # per look: the seeds whose closure writes the look kept

    def run(ctx):
        gains = {}

        def measure(seed: int) -> dict:
            # a model trained once per seed; it records how many seeds the look that trained it had
            model = ctx.shared(f"model/{seed}", lambda: {"trained_in_look_of": len(ctx.seeds),
                                                          "gain": 1.0 + 0.1 * (seed % 7)})
            gains[seed] = model["gain"]  # a closure write: kept only for the look's own seeds
            return {"gain": model["gain"], "trained_in_look_of": model["trained_in_look_of"]}
        per_seed = ctx.over_seeds(measure)
        kept.append(sorted(gains))
        return Measurement({"kept": kept}, per_seed=per_seed)

    check = lambda m: beats("gain", m["gain"], [0.0] * len(m["gain"]), 1.0,  # noqa: E731
                            effect=Effect(1.5, "hand"))
    return Claim(id="toy.ahead", paper="Toy", statement="s", paper_reports="r", criterion="c", run=run, check=check,
                 kind="empirical", looks={"smoke": (3, 5)})


def test_a_look_fills_its_idle_worker_with_the_next_looks_first_seed_and_keeps_only_its_models(tmp_path):
    """3 seeds on 2 workers leave one idle in the second round: it trains the 4th seed's model, which the next
    look (5 seeds) finds in the memo; the first look's numbers are its own 3 seeds'; the results equal one
    process's."""
    from paperzoo.claims import run_claim

    one = run_claim(_lookahead_claim(tmp_path), RunContext(preset="smoke", out_dir=tmp_path, stream="toy", seeds=[0]))
    workers = SeedWorkers(2, 1)
    try:
        ctx = RunContext(preset="smoke", out_dir=tmp_path, stream="toy", seeds=[0], seed_workers=workers)
        two = run_claim(_lookahead_claim(tmp_path), ctx)
    finally:
        workers.close()
    assert [look["seeds"] for look in one.looks] == [look["seeds"] for look in two.looks] == [3, 5]
    assert one.looks[0]["verdict"] == "inconclusive" and two.seeds == one.seeds and len(two.seeds) == 5
    assert two.per_seed["gain"] == one.per_seed["gain"]
    assert two.measured["kept"] == one.measured["kept"] == [sorted(two.seeds[:3]), sorted(two.seeds)]
    assert (one.verdict, one.tests) == (two.verdict, two.tests)
    # one process trains the 4th and 5th seeds' models in the second look; the workers train the 4th in the first
    assert one.per_seed["trained_in_look_of"] == [3, 3, 3, 5, 5]
    assert two.per_seed["trained_in_look_of"] == [3, 3, 3, 3, 5]
    assert len(ctx.memo) == 5


def _sleep_on_five(seed: int) -> dict:
    if seed == 5:
        import time
        time.sleep(300)
    return {"x": float(seed)}


def test_an_interrupted_map_stops_its_busy_workers_at_once(tmp_path):
    """Ctrl-C or SIGTERM while a worker measures a long seed: the workers are stopped, not waited for (a busy worker
    reads "stop" only after its seed, minutes later)."""
    import time

    workers = SeedWorkers(2, 1)
    processes = []

    def first_row_then_ctrl_c():  # seed 3 is back, seed 5 is still being measured
        processes.extend(process for _, process in workers._workers)
        raise KeyboardInterrupt

    try:
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            workers.map(_sleep_on_five, _context(tmp_path, workers), [3, 5], on_row=first_row_then_ctrl_c)
        assert time.monotonic() - started < 120, "the map waited for the busy worker's 300 s seed"
        assert workers._workers == [] and len(processes) == 2
        for process in processes:
            process.join(10)
        assert all(p.exitcode is not None for p in processes), "a worker outlived the interrupted map"
    finally:
        workers.close()
