"""Claims: one sentence of a paper that a run can confirm or refute, and the runner behind `paperzoo reproduce`.

A claim separates measuring from judging. `run(ctx)` measures, over the seeds in `ctx.seeds` where the measurement
is stochastic, and returns the values (and per-seed values); then its `preconditions` are checked (the regime the
claim is about holds: outliers exist, the baseline trained), and then `check(measured)`, a criterion fixed in code
before the run and stated in words in `criterion`, decides. Nothing sets a verdict by hand:
- `reproduced` / `not_reproduced`: the criterion held / failed (on intervals over seeds, see `paperzoo.criteria`);
- `inconclusive`: a precondition failed, or the criterion's interval straddles its threshold;
- `skipped`: the claim cannot run here (its run raised `SkipClaim`, whose message is the reason);
- `error`: the run or the check raised.

Seeds follow a sequential plan fixed before the run (`Claim.looks`, e.g. 3 then 5 seeds): the claim is measured at
the first look and measured again on more seeds only while it is undecided; every look's intervals use Pocock's
nominal level for the whole plan (`paperzoo.stats.pocock_level`), so looking again does not inflate the error rate.
A claim is a `check` (an identity or implementation equivalence only a bug could fail) or `empirical` (a finding of
the paper the world could refute); reports count them apart. Its protocol (statement, criterion, preconditions,
looks, and the code and constants its run, check and preconditions reach in its paper's package) has a fingerprint,
written to results.json.

`run_selected` runs papers in this process or in `--jobs N` worker processes, each paper in one worker (one paper
alone runs its seeds on the N workers instead, `paperzoo.seed_workers`). A worker
reports each claim as it finishes (so results.json is rewritten per claim under `--jobs` too). A worker that dies
(kill -9, the out-of-memory killer) costs only the paper it was running: its unfinished claims become `error`
rows that say how it died, and a new worker takes the papers still queued. Ctrl-C or SIGTERM stops the run within
seconds: queued papers are cancelled, the workers (and their children) are stopped, and `RunStopped` carries the
claims that finished.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib
import json
import math
import multiprocessing
import os
import signal
import sys
import time
import traceback
import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch

from paperzoo.code_digest import digest
from paperzoo.criteria import Decision, Precondition, Test, decide
from paperzoo.engine.distributed import derive_seed, seed_everything
from paperzoo.stats import at_confidence, mean_interval, pocock_level, std
from paperzoo.stopping import Stopped, sigterm_raises, signal_name

Preset = Literal["smoke", "quick", "standard", "full"]
PRESETS: tuple[str, ...] = ("smoke", "quick", "standard", "full")
SEEDS_PER_PRESET = {"smoke": 1, "quick": 3, "standard": 3, "full": 5}  # the first look's seeds
# the plan of a claim that names none for the preset: one look, except at standard, which decides what a CPU can by
# adding seeds while a claim is undecided (3, 5, then 8 seeds, each look at Pocock's level for the plan)
DEFAULT_LOOKS = {"standard": (3, 5, 8)}
_AS_QUICK = object()
Verdict = Literal["reproduced", "not_reproduced", "inconclusive", "skipped", "error"]
VERDICTS: tuple[str, ...] = ("reproduced", "not_reproduced", "inconclusive", "skipped", "error")
KINDS: tuple[str, ...] = ("empirical", "check")


class SkipClaim(Exception):
    """Raised by a claim's run when it cannot run here (e.g. "needs a GPU"); the message is the reason."""


@dataclass
class Measurement:
    """What a run measured. `values`: numbers of the whole run; `per_seed`: one value per seed of `ctx.seeds` for
    each quantity measured per seed; `timings`: seconds and rates, reported but apart from the measured values
    (they differ between reruns, nothing else may)."""

    values: dict[str, Any]
    figures: list[Path] = field(default_factory=list)
    notes: str = ""
    per_seed: dict[str, list[float]] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)


def stream_seed(base: int, name: str, index: int = 0) -> int:
    """The seed of stream `name` (a paper, a claim), index `index`, from the base seed of the run."""
    return derive_seed(base, zlib.crc32(name.encode()), index)


@dataclass
class RunContext:
    """What a claim's run receives: the preset, its own output folder, the base seed and the seeds to measure
    over, and a memo shared by the claims of one paper within one `reproduce` run (train a model once, measure it
    in several claims). `stream` names the seed stream (the paper): its claims share seeds, hence models."""

    preset: str
    out_dir: Path
    seed: int = 0
    memo: dict = field(default_factory=dict)
    progress: bool = False  # show training progress bars (reproduce's --no-progress turns them off)
    seeds: list[int] = field(default_factory=list)  # default: the preset's number of seeds, from (seed, stream)
    stream: str = ""
    weights: dict[str, str] = field(default_factory=dict)  # reproduce's --weights NAME=PATH: checkpoints to measure
    images: str | None = None  # reproduce's --images DIR: the user's images for the papers that take them
    seed_workers: Any = None  # `paperzoo.seed_workers.SeedWorkers`: over_seeds measures the seeds on them
    ahead_seeds: list[int] = field(default_factory=list)  # the seeds the claim's next planned look would add

    def __post_init__(self):
        if not self.seeds:
            self.seeds = [stream_seed(self.seed, self.stream, i) for i in range(SEEDS_PER_PRESET[self.preset])]

    def pick(self, smoke: Any, quick: Any, full: Any, standard: Any = _AS_QUICK) -> Any:
        """The preset's setting; `standard` is quick's unless a paper sets its own (standard's looks add seeds)."""
        standard = quick if standard is _AS_QUICK else standard
        return {"smoke": smoke, "quick": quick, "standard": standard, "full": full}[self.preset]

    def shared(self, key: str, build: Callable[[], Any]) -> Any:
        if key not in self.memo:
            self.memo[key] = build()
        return self.memo[key]

    def over_seeds(self, measure: Callable[[int], dict[str, float]], desc: str = "seeds") -> dict[str, list[float]]:
        """Run `measure(seed)` for every seed of the context, on the seed workers when the run has them;
        {quantity: [value per seed]}."""
        from tqdm.auto import tqdm

        if self.seed_workers is not None and len(self.seeds) > 1:
            spare = -len(self.seeds) % self.seed_workers.jobs  # workers the last round would leave idle
            with tqdm(total=len(self.seeds), desc=desc, leave=False, disable=not self.progress) as bar:
                rows = self.seed_workers.map(measure, self, self.seeds, on_row=bar.update,
                                             ahead=self.ahead_seeds[:spare])
        else:
            rows = [measure(s) for s in tqdm(self.seeds, desc=desc, leave=False, disable=not self.progress)]
        return {key: [row[key] for row in rows] for key in rows[0]}

    def figure_path(self, name: str) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return self.out_dir / name


@dataclass(frozen=True)
class Claim:
    """One claim of a paper. `kind`: "empirical" (a finding the world could refute) or "check" (an identity or an
    implementation equivalence that only a bug could fail). `looks`: preset -> the planned seed counts of its
    sequential looks ({"quick": (3, 5)}); a preset it does not name gets `DEFAULT_LOOKS`' plan or one look at the
    preset's seeds."""

    id: str  # "<module>.<short_name>"
    paper: str
    statement: str
    paper_reports: str  # what the paper itself reports
    criterion: str  # the criterion in words, with its thresholds and smallest effects; `check` is it in code
    run: Callable[[RunContext], Measurement]
    check: Callable[[dict[str, Any]], bool | Test | Decision]  # gets values, per-seed lists and timings
    kind: str
    preconditions: tuple[Precondition, ...] = ()
    looks: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"{self.id}: kind must be one of {KINDS}, got {self.kind!r}")
        for preset, planned in self.looks.items():
            if preset not in PRESETS or not planned or list(planned) != sorted(set(planned)) or planned[0] < 1:
                raise ValueError(f"{self.id}: looks must map a preset of {PRESETS} to increasing seed counts, got "
                                 f"{preset!r}: {planned!r}")

    def planned_looks(self, preset: str) -> tuple[int, ...]:
        return tuple(self.looks.get(preset, DEFAULT_LOOKS.get(preset, (SEEDS_PER_PRESET[preset],))))


def protocol(claim: Claim) -> dict:
    """What defines a claim's experiment and judgement: statement, criterion (whose words carry the thresholds and
    smallest effects), kind, preconditions, planned looks, and the code its run, check and preconditions reach in
    its paper's package and the criteria, with the constants they read (`paperzoo.code_digest`)."""
    package = claim.run.__module__.rsplit(".", 1)[0] if "." in claim.run.__module__ else claim.run.__module__
    code = digest((claim.run, claim.check, *(p.check for p in claim.preconditions)), package)
    return {"id": claim.id, "kind": claim.kind, "statement": claim.statement, "criterion": claim.criterion,
            "preconditions": [p.text for p in claim.preconditions],
            "looks": {preset: list(claim.planned_looks(preset)) for preset in PRESETS},
            "code_sha256": code}


def fingerprint(claim: Claim) -> str:
    """A short hash of `protocol(claim)`: equal fingerprints, same protocol."""
    return hashlib.sha256(json.dumps(protocol(claim), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class ClaimResult:
    id: str
    paper: str
    statement: str
    paper_reports: str
    criterion: str
    preset: str
    verdict: Verdict
    measured: dict[str, Any]
    seconds: float
    figures: list[str]
    message: str = ""
    kind: str = "empirical"
    fingerprint: str = ""
    reason: str = ""  # why this verdict: the tests of the criterion, or the precondition that failed
    seeds: list[int] = field(default_factory=list)
    per_seed: dict[str, list[float]] = field(default_factory=dict)
    summary: dict[str, dict] = field(default_factory=dict)  # per-seed quantity -> mean, sd, 95% interval
    preconditions: list[dict] = field(default_factory=list)
    tests: list[dict] = field(default_factory=list)  # the criterion's tests: interval, threshold, outcome
    timings: dict[str, Any] = field(default_factory=dict)
    looks: list[dict] = field(default_factory=list)  # the sequential looks taken: seeds, verdict
    planned_looks: list[int] = field(default_factory=list)
    confidence: float = 0.95  # the nominal two-sided level of every look's intervals (Pocock over the plan)

    def to_json(self) -> dict:
        return asdict(self)


def summarize(per_seed: dict[str, list]) -> dict[str, dict]:
    """Mean, standard deviation and 95% t-interval of each numeric per-seed quantity."""
    out = {}
    for key, values in per_seed.items():
        if values and all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            out[key] = {"mean": float(np.mean(values)), "sd": std(values), **_bounds(mean_interval(values))}
    return out


def _bounds(interval) -> dict:
    j = interval.to_json()
    return {"low": j["low"], "high": j["high"], "n": j["n"]}


def _as_decision(result: bool | Test | Decision) -> Decision:
    if isinstance(result, Decision):
        return result
    if isinstance(result, Test):
        return decide(result)
    if not isinstance(result, (bool, np.bool_)):
        raise TypeError(f"a claim's check must return a bool, a Test or a Decision, got {type(result).__name__}")
    return Decision(bool(result), "the criterion holds on this run's values (one run, no interval)" if result
                    else "the criterion fails on this run's values (one run, no interval)")


def _seeds_for(ctx: RunContext, count: int) -> list[int]:
    """The first `count` seeds of the paper's stream: the context's seeds, continued from the same stream (so the
    first seeds, and the models trained on them, are the ones the paper's other claims share)."""
    extra = [stream_seed(ctx.seed, ctx.stream, i) for i in range(len(ctx.seeds), count)]
    return [*ctx.seeds, *extra][:count]


def _judge(claim: Claim, result: ClaimResult, measurement: Measurement) -> bool:
    """Fill `result` from one look's measurement; True when the plan should stop here (decided, or a precondition
    not met: more seeds do not bring a missing regime)."""
    result.measured, result.figures = measurement.values, [str(p) for p in measurement.figures]
    result.message, result.per_seed, result.timings = measurement.notes, measurement.per_seed, measurement.timings
    result.summary = summarize(measurement.per_seed)
    everything = {**measurement.values, **measurement.per_seed, **measurement.timings}
    result.preconditions = [p.evaluate(everything) for p in claim.preconditions]
    result.tests = []
    unmet = [p for p in result.preconditions if p["held"] is not True]
    if unmet:
        result.verdict = "inconclusive"
        result.reason = "; ".join(f"precondition {'not met' if p['held'] is False else 'undecided'}: {p['text']} "
                                  f"({p['detail']})" for p in unmet)
        return any(p["held"] is False for p in unmet)
    decision = _as_decision(claim.check(everything))
    result.tests = [t.to_json() for t in decision.tests]
    result.verdict = {True: "reproduced", False: "not_reproduced", None: "inconclusive"}[decision.outcome]
    result.reason = decision.reason if decision.outcome is not None else \
        "the interval straddles the threshold: " + decision.reason
    return decision.outcome is not None


def run_claim(claim: Claim, ctx: RunContext, looks: tuple[int, ...] | None = None) -> ClaimResult:
    """Measure and judge `claim` by its sequential plan: `looks` (default: the claim's plan for the preset, else one
    look at the context's seeds) are the seed counts at which it is judged, every look at Pocock's nominal level for the plan; it stops at the first
    look that decides or finds a precondition not met."""
    started = time.perf_counter()
    looks = tuple(looks or claim.looks.get(ctx.preset) or DEFAULT_LOOKS.get(ctx.preset) or (len(ctx.seeds),))
    level = pocock_level(looks)
    result = ClaimResult(claim.id, claim.paper, claim.statement, claim.paper_reports, claim.criterion, ctx.preset,
                         "error", {}, 0.0, [], kind=claim.kind, fingerprint=fingerprint(claim),
                         planned_looks=list(looks), confidence=level)
    try:
        for count, following in zip(looks, [*looks[1:], looks[-1]]):
            look = replace(ctx, seeds=_seeds_for(ctx, count), ahead_seeds=_seeds_for(ctx, following)[count:])
            result.seeds = list(look.seeds)
            seed_everything(stream_seed(ctx.seed, claim.id))  # its numbers must not depend on what ran before
            measurement = claim.run(look)
            with at_confidence(level):
                stop = _judge(claim, result, measurement)
            result.looks.append({"seeds": count, "verdict": result.verdict})
            if stop:
                break
    except SkipClaim as e:
        result.verdict, result.message = "skipped", str(e)
        result.reason = f"cannot run here: {e}"
    except Exception as e:  # the report shows it; the other claims still run
        result.verdict = "error"
        result.message = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-3)}"
        result.reason = f"{type(e).__name__}: {e}"
    result.seconds = round(time.perf_counter() - started, 2)
    return result


def select(entries: list, papers: list[str]) -> list[tuple[Any, list[Claim]]]:
    """(entry, claims) for the requested papers (modules or claim ids); all implemented ones when none given."""
    from paperzoo.errors import UserError

    if not papers:
        return [(e, e.claims) for e in entries if e.claims or e.import_error]
    groups: dict[int, tuple[Any, list[Claim]]] = {}  # one group per paper, in the order first named
    for name in papers:
        matches = [(e, e.claims) for e in entries if e.post.module == name]
        matches += [(e, [c for c in e.claims if c.id == name]) for e in entries if any(c.id == name for c in e.claims)]
        if not matches:
            known = [e.post.module for e in entries] + [c.id for e in entries for c in e.claims]
            raise UserError(f"unknown paper or claim {name!r}; choose from: {', '.join(known)}")
        if not matches[0][1] and not matches[0][0].import_error:
            raise UserError(f"{name!r} has no claims yet ({matches[0][0].status}); see `paperzoo list`")
        for entry, claims in matches:  # a paper or claim named twice runs once
            group = groups.setdefault(id(entry), (entry, []))[1]
            group += [c for c in claims if all(c.id != g.id for g in group)]
    return list(groups.values())


def configure_threads(threads: int) -> None:
    """Fix torch's thread count (recorded in the report), limit the native BLAS/OpenMP pools that numpy and
    scikit-learn use to the same count (by default each takes every core, so `--jobs N` workers would
    oversubscribe the CPU), and ask for deterministic algorithms: the same command with the same seed on the same
    machine then gives identical measured values."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)  # for the rest of the process
    torch.use_deterministic_algorithms(True, warn_only=True)


def _worker_start(threads: int, parent: int) -> None:
    """A worker process of `reproduce --jobs N`: it dies with its parent (Linux: PR_SET_PDEATHSIG; and at once if the
    parent died while this process started), so a killed run leaves no worker training on; it leads its own process
    group, so that the parent stops it with the processes it started (a paper's DDP ranks), and Ctrl-C in a terminal
    reaches only the parent, which stops the workers; fixed thread count."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)
    if hasattr(os, "setpgid"):
        os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides: it stops the workers
    configure_threads(threads)


def default_threads(jobs: int) -> int:
    """Each of `jobs` worker processes gets its share of the cores."""
    return max(1, (os.cpu_count() or 1) // jobs)


@dataclass(frozen=True)
class RunPlan:
    """The settings of one `reproduce` run that every paper (in whichever process) runs under."""

    preset: str
    out_dir: Path
    seed: int  # the base seed
    seeds: int | None  # seeds per stochastic measurement (--seeds: one look); None: each claim's planned looks
    progress: bool = False
    weights: tuple[tuple[str, str], ...] = ()  # --weights NAME=PATH, for the papers that take checkpoints
    images: str | None = None  # --images DIR
    seed_jobs: int = 1  # > 1: one paper's seeds run on this many worker processes
    threads: int = 1  # torch threads of each of those processes


def run_paper(entry, claims: list[Claim], plan: RunPlan,
              on_result: Callable[[ClaimResult], None] = lambda r: None) -> list[ClaimResult]:
    """Run one paper's claims in order, sharing one memo; a module that failed to import yields one `error` row.
    `on_result` sees each result as it comes."""
    if entry.import_error:
        failed = ClaimResult(f"{entry.post.module}.*", entry.post.paper, "(module failed to import)", "", "",
                             plan.preset, "error", {}, 0.0, [], entry.import_error, reason=entry.import_error)
        on_result(failed)
        return [failed]
    stream = entry.post.module
    seeds = [stream_seed(plan.seed, stream, i) for i in range(plan.seeds or SEEDS_PER_PRESET[plan.preset])]
    memo: dict = {}
    results = []
    from paperzoo.seed_workers import SeedWorkers

    workers = SeedWorkers(plan.seed_jobs, plan.threads) if plan.seed_jobs > 1 else None
    try:
        for claim in claims:
            ctx = RunContext(preset=plan.preset, out_dir=plan.out_dir / "figures" / claim.id, seed=plan.seed,
                             memo=memo, progress=plan.progress, seeds=seeds, stream=stream,
                             weights=dict(plan.weights), images=plan.images, seed_workers=workers)
            results.append(run_claim(claim, ctx, (plan.seeds,) if plan.seeds else None))
            on_result(results[-1])
    finally:
        if workers is not None:
            workers.close()
    return results


def _load_paper(post, module_name: str | None):
    """The catalog entry of `post` in this process (claims are not picklable): from its experiments module, by name
    (a paper outside the catalog names its own), else from the catalog."""
    from paperzoo.catalog import Entry, load_entry

    if module_name is None or module_name == f"paperzoo.{post.module}.experiments":
        return load_entry(post)
    module = importlib.import_module(module_name)
    return Entry(post, module=module, claims=list(getattr(module, "CLAIMS", [])))


def _paper_in_worker(post, module_name: str | None, claim_ids: list[str], plan: RunPlan,
                     on_result: Callable[[ClaimResult], None] = lambda r: None) -> list[ClaimResult]:
    """A worker process's job: load the paper and run its claims, `on_result` seeing each as it finishes."""
    entry = _load_paper(post, module_name)
    by_id = {c.id: c for c in entry.claims}
    return run_paper(entry, [by_id[i] for i in claim_ids], plan, on_result)


def _sendable(result: ClaimResult) -> ClaimResult:
    """`result`, or an `error` copy without its values when they cannot be pickled to the parent."""
    from multiprocessing.reduction import ForkingPickler  # what the pipe to the parent uses

    try:
        ForkingPickler.dumps(result)
        return result
    except Exception as e:  # noqa: BLE001 - any pickling failure
        why = f"its measured values cannot be sent from the worker process ({type(e).__name__}: {e})"
        return replace(result, verdict="error", measured={}, per_seed={}, summary={}, timings={}, tests=[],
                       preconditions=[], message=why, reason=why)


def _worker_main(conn, threads: int, parent: int) -> None:
    """A worker's loop: take a paper (None: stop), run it, send ("claim", result) per claim and ("done", None)."""
    _worker_start(threads, parent)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if task is None:
            return
        post, module_name, claim_ids, plan = task
        try:
            _paper_in_worker(post, module_name, claim_ids, plan, lambda r: conn.send(("claim", _sendable(r))))
        except Exception as e:  # noqa: BLE001 - loading the paper failed: its claims become error rows
            conn.send(("failed", f"{type(e).__name__}: {e}"))
        conn.send(("done", None))


WORKER_DIED = "the worker process running"  # how the reason of a claim lost to a dead worker begins


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal_name(-exitcode)
        return f"killed by {name}" + (" (the out-of-memory killer sends it)" if -exitcode == signal.SIGKILL else "")
    return f"exit status {exitcode}"


def _lost(claim: Claim, plan: RunPlan, module: str, why: str) -> ClaimResult:
    message = f"{WORKER_DIED} {module} {why} before this claim finished"
    return ClaimResult(claim.id, claim.paper, claim.statement, claim.paper_reports, claim.criterion, plan.preset,
                       "error", {}, 0.0, [], message, kind=claim.kind, reason=message)


def _stop_workers(processes: list) -> None:
    """SIGTERM to each worker's process group (the worker and what it started), SIGKILL to what is left after a
    few seconds."""
    def signal_group(process, signum):
        try:
            os.killpg(process.pid, signum)
        except (ProcessLookupError, PermissionError, AttributeError, OSError):
            try:
                os.kill(process.pid, signum)
            except (ProcessLookupError, OSError):
                pass

    alive = [p for p in processes if p.exitcode is None]
    for p in alive:
        signal_group(p, signal.SIGTERM)
    deadline = time.monotonic() + 5
    for p in alive:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in alive:
        if p.exitcode is None:
            signal_group(p, signal.SIGKILL)
            p.join(5)


def _run_in_workers(chosen: list, plan: RunPlan, jobs: int, threads: int, order: list[int],
                    on_result: Callable[[int, ClaimResult], None], on_done: Callable[[int], None]) -> None:
    """Run the papers `chosen[i]` for i in `order` on `jobs` worker processes, each paper in one worker; claims
    come back through `on_result(i, result)` as they finish, `on_done(i)` when paper i is over. A worker that dies
    costs its own paper (its unfinished claims become `error` rows saying how it died); a new worker takes the
    papers still queued. On any exit (a signal included) the workers are stopped."""
    from multiprocessing.connection import wait

    spawn = multiprocessing.get_context("spawn")  # a forked torch process can deadlock in its thread pools
    queue = list(order)
    workers: dict = {}  # connection -> [process, index of the paper it runs or None, claim ids it reported]
    every = []
    completed = False

    def start() -> None:
        ours, theirs = spawn.Pipe()
        process = spawn.Process(target=_worker_main, args=(theirs, threads, os.getpid()), name="paperzoo-worker")
        process.start()
        theirs.close()
        every.append(process)
        workers[ours] = [process, None, set()]
        give(ours)

    def retire(conn) -> None:
        del workers[conn]
        conn.close()

    def give(conn) -> None:
        """The next queued paper to an idle worker, or None (stop) when none is left."""
        if not queue:
            try:
                conn.send(None)
            except OSError:
                pass
            retire(conn)
            return
        entry, claims = chosen[queue[0]]
        module_name = entry.module.__name__ if entry.module is not None else None
        try:
            conn.send((entry.post, module_name, [c.id for c in claims], plan))
        except OSError:  # it died while idle: no paper lost, another worker takes this one
            retire(conn)
            start()
            return
        workers[conn][1:] = [queue.pop(0), set()]

    def lose(i: int, reported: set, why: str) -> None:
        entry, claims = chosen[i]
        for claim in claims:
            if claim.id not in reported:
                on_result(i, _lost(claim, plan, entry.post.module, why))

    try:
        for _ in range(min(jobs, len(queue))):
            start()
        while workers:
            sentinels = [w[0].sentinel for w in workers.values()]
            ready = set(wait([*workers, *sentinels], timeout=5))
            for conn in [c for c in list(workers) if c in ready or workers[c][0].sentinel in ready]:
                process, i, reported = workers[conn]
                idle = False
                try:
                    while conn.poll():
                        kind, payload = conn.recv()
                        if kind == "claim":
                            reported.add(payload.id)
                            on_result(i, payload)
                        elif kind == "failed":
                            lose(i, reported, f"could not run it ({payload})")
                            reported.update(c.id for c in chosen[i][1])
                        elif kind == "done":
                            on_done(i)
                            workers[conn][1] = None
                            idle = True
                            break
                except (EOFError, OSError):  # the worker is gone; its sentinel says so too
                    pass
                if process.is_alive():
                    if idle:
                        give(conn)
                    continue
                process.join(1)  # dead: its paper, if it had one, is lost; a new worker takes the queue
                if workers[conn][1] is not None:
                    lose(i, reported, f"died ({_death(process.exitcode)})")
                    on_done(i)
                retire(conn)
                if queue:
                    start()
        completed = True
    finally:
        if completed:
            for process in every:
                process.join(10)
        _stop_workers(every)


COMMITTED_RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"  # in a source checkout


def committed_seconds(preset: str, results_dir: Path = COMMITTED_RESULTS) -> dict[str, float]:
    """Seconds each paper's claims took in the committed results of `preset` (`quick.json`, or one file per paper
    under `standard/`); empty where they are absent or unreadable (an installed package has none)."""
    seconds: dict[str, float] = {}
    for path in [results_dir / f"{preset}.json", *sorted((results_dir / preset).glob("*.json"))]:
        try:
            rows = [(row["id"].split(".")[0], float(row["seconds"])) for row in json.loads(path.read_text())["claims"]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        for module, taken in rows:
            seconds[module] = seconds.get(module, 0.0) + taken
    return seconds


def longest_first(modules: list[str], preset: str, results_dir: Path = COMMITTED_RESULTS) -> list[int]:
    """Indices of `modules` in the order to start them on `--jobs` workers: longest first, by the seconds their
    claims took in the committed results of this preset (a paper missing from them first: it may be long), so that
    no long paper starts last while the other workers idle. Only the start order changes, never the results. The
    given order where those results are absent or unreadable (an installed package has none)."""
    seconds = committed_seconds(preset, results_dir)
    if not seconds:
        return list(range(len(modules)))
    return sorted(range(len(modules)), key=lambda i: -seconds.get(modules[i], math.inf))


def time_left(expected: dict[str, float | None], jobs: int, preset: str) -> str:
    """"~12 min left", the committed seconds of the papers still to finish shared by the workers ("" when none are
    known): what a user starting a long run can expect."""
    known = [s for s in expected.values() if s is not None]
    if not known:
        return ""
    missing = " (some papers not timed yet)" if len(known) < len(expected) else ""
    return f"~{sum(known) / max(1, min(jobs, len(expected))) / 60:.0f} min left by the committed {preset} results{missing}"


def plan_lines(chosen: list[tuple[Any, list[Claim]]], preset: str, seeds: int | None, jobs: int) -> list[str]:
    """What `reproduce --plan` prints: each chosen paper with the seconds its claims took in the committed results
    of `preset`, each claim with its kind and planned looks (seeds per look; --seeds makes one look), and the
    expected wall time on `jobs` workers. Nothing runs."""
    timed = committed_seconds(preset)
    lines = []
    for entry, claims in chosen:
        took = timed.get(entry.post.module)
        lines.append(f"{entry.post.module}: {len(claims)} claims, "
                     + (f"{took / 60:.1f} min in the committed {preset} results" if took is not None
                        else f"not in the committed {preset} results"))
        for claim in claims:
            looks = (seeds,) if seeds else claim.planned_looks(preset)
            lines.append(f"  {claim.id}  ({claim.kind}; seeds per look: {', '.join(map(str, looks))})")
    expected = time_left({e.post.module: timed.get(e.post.module) for e, _ in chosen}, jobs, preset)
    lines.append(f"expected: {expected.replace(' left', '')} on {jobs} worker(s)" if expected else
                 f"expected: unknown (no committed {preset} results for these papers)")
    return lines


def run_selected(chosen: list[tuple[Any, list[Claim]]], preset: str, out_dir: Path, seed: int,
                 progress: bool = True, seeds: int | None = None, jobs: int = 1, threads: int | None = None,
                 weights: dict[str, str] | None = None, images: str | None = None,
                 on_results: Callable[[list[ClaimResult]], None] = lambda done: None) -> list[ClaimResult]:
    """Run every chosen claim; papers run in `jobs` worker processes (each with `threads` torch threads, by default
    its share of the cores), or, when one paper is chosen, its seeds do (`paperzoo.seed_workers`); the results come
    back in the order chosen, identical to `jobs=1` at the same `threads`. `on_results` sees
    every result so far each time one or more finish (in the order they finished). `weights` (name -> checkpoint)
    and `images` (a folder) go to the papers that take them (see `paperzoo.cli`)."""
    from tqdm.auto import tqdm

    threads = threads or default_threads(jobs)
    seed_jobs = jobs if len(chosen) == 1 else 1
    plan = RunPlan(preset, Path(out_dir), seed, seeds, progress and (jobs == 1 or seed_jobs > 1),
                   tuple((weights or {}).items()), images, seed_jobs, threads)
    total = sum(len(claims) or 1 for _, claims in chosen)
    bar = tqdm(total=total, desc="claims", disable=not progress, dynamic_ncols=True)
    finished: list[ClaimResult] = []
    timed = committed_seconds(preset)
    expected = {entry.post.module: timed.get(entry.post.module) for entry, _ in chosen}
    if progress and time_left(expected, jobs, preset):
        bar.write(f"expected: {time_left(expected, jobs, preset).replace(' left', '')}")

    def report(results: list[ClaimResult]) -> None:
        for r in results:
            bar.write(f"{r.verdict:>15}  {r.id}  ({r.seconds:.0f} s)")
        bar.update(len(results))
        finished.extend(results)
        on_results(finished)

    configure_threads(threads)  # also in this process, whose environment the report records
    results: list[list[ClaimResult]] = [[] for _ in chosen]

    def one(i: int, result: ClaimResult) -> None:
        results[i].append(result)
        report([result])

    def paper_done(i: int) -> None:
        expected.pop(chosen[i][0].post.module, None)
        bar.set_postfix_str(time_left(expected, jobs, preset))

    try:
        with bar, sigterm_raises():
            if jobs == 1 or seed_jobs > 1:
                for i, (entry, claims) in enumerate(chosen):
                    bar.set_postfix_str(f"{entry.post.module}; {time_left(expected, jobs, preset)}")
                    run_paper(entry, claims, plan, on_result=functools.partial(one, i))
                    expected.pop(entry.post.module, None)
            else:
                _run_in_workers(chosen, plan, jobs, threads, longest_first([e.post.module for e, _ in chosen], preset),
                                one, paper_done)
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM through sigterm_raises: keep what finished
        done = [r for rs in results for r in rs]
        ids = {r.id for r in done}
        not_run = [c.id for _, claims in chosen for c in claims if c.id not in ids]
        raise RunStopped(done, not_run, getattr(e, "signum", signal.SIGINT)) from None
    return [r for rs in results for r in rs]


class RunStopped(Stopped):
    """`run_selected` stopped by a signal: `results` are the claims that finished (in the order chosen), `not_run`
    the ids of the others."""

    def __init__(self, results: list[ClaimResult], not_run: list[str], signum: int):
        super().__init__(f"stopped by {signal_name(signum)}: {len(results)} claims finished, "
                         f"{len(not_run)} not run", signum)
        self.results, self.not_run = results, not_run
