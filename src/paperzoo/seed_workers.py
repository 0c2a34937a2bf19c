"""A paper's seeds in parallel: `paperzoo reproduce PAPER --jobs N` with one paper runs the measurements of each
`ctx.over_seeds` on N worker processes, so that one paper's run uses every core.

A seed's measurement is a closure over its claim's context. It travels to a worker by value (cloudpickle), with the
context and the paper's memo of trained models, and comes back with its row and what it wrote into the containers it
can reach: the memo entries it added (the models it trained) and the entries of the dicts and lists its closure holds
(a claim's `runs[seed] = ...`). Those writes are replayed here in seed order, so the claim and the paper's later
claims see what one process would have left.
A look of a sequential plan whose seeds leave a worker idle in the last round (3 seeds on 2 workers) fills it with
the first seed the plan's next look would add (`ctx.ahead_seeds`): only that seed's memo entries are kept (the
models it trained), never its row or its other writes, so the claim's numbers are those of its own seeds, and a
next look finds that seed's models trained (3, 5, 8 seeds on 2 workers: 4 rounds instead of 5).
Workers are spawned, not forked (a forked torch process can deadlock in its thread pools), run with the same thread
count as one process would, and die with their parent. The measured values equal one process's because every
measurement derives its randomness from its own seed (tested for every paper in tests/test_seed_workers.py).
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
import warnings
from multiprocessing.connection import wait
from typing import Any, Callable

import cloudpickle

from paperzoo.claims import _death, _stop_workers, _worker_start


def containers(measure: Callable, ctx) -> list:
    """The dicts and lists a measurement can write into that one process would keep: the paper's memo and those its
    closure holds, in a fixed order (the same here and in a worker)."""
    held = []
    for cell in measure.__closure__ or ():
        try:
            held.append(cell.cell_contents)
        except ValueError:  # an empty cell
            continue
    found, seen = [], set()
    for value in [ctx.memo, *held]:
        if isinstance(value, (dict, list)) and id(value) not in seen:
            seen.add(id(value))
            found.append(value)
    return found


def _contents(value):
    """What to compare against after the measurement, for the dicts and lists in `value` (nested too): a dict's
    entries (held, so that no object is freed and its address reused) and a list's length, each with its
    elements' own; None for anything else."""
    if isinstance(value, dict):
        return {k: (v, _contents(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_contents(v) for v in value]
    return None


def _written(value, before) -> tuple | None:
    """What the measurement wrote into `value` since `before`: (entries set or appended, writes into the nested
    dicts and lists it kept), or None when nothing."""
    if isinstance(value, dict):
        new = {k: v for k, v in value.items() if k not in before or before[k][0] is not v}
        nested = {k: w for k, v in value.items() if k in before and before[k][0] is v
                  and (w := _written(v, before[k][1])) is not None}
    elif isinstance(value, list):
        new = value[len(before):]
        nested = {i: w for i, v in enumerate(value[:len(before)]) if (w := _written(v, before[i])) is not None}
    else:
        return None
    return (new, nested) if new or nested else None


def _replay(value, written: tuple | None) -> None:
    if written is None:
        return
    new, nested = written
    for key, inner in nested.items():
        _replay(value[key], inner)
    if isinstance(value, dict):
        value.update(new)
    else:
        value.extend(new)


class SeedWorkerDied(RuntimeError):
    """A seed worker died (killed, out of memory) while it measured a seed."""


def _worker_main(conn, threads: int, parent: int) -> None:
    """Take (measure, ctx, seed) (None: stop), send back ("row", (row, memo entries added)) or ("raised", error)."""
    _worker_start(threads, parent)
    while True:
        try:
            task = conn.recv_bytes()
        except (EOFError, OSError):  # the parent is gone
            return
        if task == b"stop":
            return
        measure, ctx, seed = cloudpickle.loads(task)
        ctx.progress = False  # one progress bar: the parent's, over seeds
        reachable = containers(measure, ctx)
        before = [_contents(c) for c in reachable]
        try:
            row = measure(seed)
            reply = ("row", (row, [_written(c, b) for c, b in zip(reachable, before)]))
        except Exception as e:  # noqa: BLE001 - the parent re-raises it
            reply = ("raised", (e, traceback.format_exc()))
        try:
            conn.send_bytes(cloudpickle.dumps(reply))
        except Exception as e:  # noqa: BLE001 - the row or the error cannot be pickled
            conn.send_bytes(cloudpickle.dumps(("raised", (RuntimeError(f"cannot send seed {seed}'s result back "
                                                                         f"from its worker: {e}"), ""))))


class SeedWorkers:
    """`jobs` spawned processes with `threads` torch threads each, started at the first `map` and kept for the
    paper's claims; `close()` stops them."""

    def __init__(self, jobs: int, threads: int):
        self.jobs, self.threads = jobs, threads
        self._spawn = multiprocessing.get_context("spawn")
        self._workers: list[tuple[Any, Any]] = []  # (connection, process)

    def _start(self) -> None:
        ours, theirs = self._spawn.Pipe()
        process = self._spawn.Process(target=_worker_main, args=(theirs, self.threads, os.getpid()),
                                      name="paperzoo-seed-worker")
        process.start()
        theirs.close()
        self._workers.append((ours, process))

    def map(self, measure: Callable[[int], dict], ctx, seeds: list[int],
            on_row: Callable[[], None] = lambda: None, ahead: list[int] = ()) -> list[dict]:
        """`[measure(s) for s in seeds]`, measured on the workers; what each seed wrote into the memo and the
        containers of its closure is replayed here in seed order. The `ahead` seeds are measured after them, on
        workers that would otherwise wait, and only their memo entries are kept. A measurement that raised raises
        here (one of an `ahead` seed warns and is dropped: its own look will meet it); a worker that died raises
        `SeedWorkerDied`."""
        every = [*seeds, *ahead]
        while len(self._workers) < min(self.jobs, len(every)):
            self._start()
        replies: dict[int, tuple] = {}
        busy: dict[Any, int] = {}  # connection -> index into `every` of the seed it measures
        queue = list(range(len(every)))
        idle = [conn for conn, _ in self._workers]
        processes = {conn: process for conn, process in self._workers}
        try:
            while len(replies) < len(every):
                while queue and idle:
                    conn = idle.pop()
                    conn.send_bytes(cloudpickle.dumps((measure, ctx, every[queue[0]])))  # pickled when sent
                    busy[conn] = queue.pop(0)
                watched = {**{c: c for c in busy}, **{processes[c].sentinel: c for c in busy}}
                for conn in {watched[ready] for ready in wait(list(watched))}:
                    try:
                        replies[busy[conn]] = cloudpickle.loads(conn.recv_bytes())
                    except (EOFError, OSError):
                        process = processes[conn]
                        process.join(1)
                        self.close()
                        raise SeedWorkerDied(f"the worker measuring seed {every[busy[conn]]} died "
                                             f"({_death(process.exitcode)})") from None
                    idle.append(conn)
                    del busy[conn]
                    on_row()
        except BaseException:  # Ctrl-C, SIGTERM: a busy worker would finish its seed before it read "stop"
            self.terminate()
            raise
        rows = []
        for i in range(len(seeds)):
            kind, payload = replies[i]
            if kind == "raised":
                error, trace = payload
                raise error from (RuntimeError(f"in the worker measuring seed {seeds[i]}:\n{trace}") if trace
                                  else None)
            row, written = payload
            for container, entries in zip(containers(measure, ctx), written):
                _replay(container, entries)
            rows.append(row)
        for i in range(len(seeds), len(every)):
            kind, payload = replies[i]
            if kind == "row":
                _replay(ctx.memo, payload[1][0])  # containers() lists the memo first
            else:
                warnings.warn(f"seed {every[i]}, measured ahead for the claim's next look, raised "
                              f"{type(payload[0]).__name__}: {payload[0]}; that look measures it again (and raises "
                              "there if it fails again)", RuntimeWarning, stacklevel=2)
        return rows

    def __reduce__(self):
        """A context that travels to a worker carries no workers: its own measurements run in that worker."""
        return _no_workers, ()

    def terminate(self) -> None:
        """Stop the workers now, busy or not (their process groups get SIGTERM, then SIGKILL)."""
        _stop_workers([process for _, process in self._workers])
        self._workers = []

    def close(self) -> None:
        for conn, _ in self._workers:
            try:
                conn.send_bytes(b"stop")
            except OSError:
                pass
        processes = [process for _, process in self._workers]
        for process in processes:
            process.join(10)
        _stop_workers(processes)
        self._workers = []


def _no_workers() -> None:
    return None
