"""A paper's seeds in parallel: `paperzoo reproduce PAPER --jobs N` with one paper runs the measurements of each
`ctx.over_seeds` on N worker processes, so that one paper's run uses every core.

A seed's measurement is a closure over its claim's context. It travels to a worker by value (cloudpickle), with the
context and the paper's memo of trained models, and comes back with its row and the memo entries it added (the
models it trained), which join the memo of this process: the paper's later claims share them as in one process.
Workers are spawned, not forked (a forked torch process can deadlock in its thread pools), run with the same thread
count as one process would, and die with their parent. The measured values equal one process's because every
measurement derives its randomness from its own seed (tested for every paper in tests/test_seed_workers.py).
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from multiprocessing.connection import wait
from typing import Any, Callable

import cloudpickle

from paperzoo.claims import _death, _stop_workers, _worker_start


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
        known = set(ctx.memo)
        try:
            row = measure(seed)
            reply = ("row", (row, {k: v for k, v in ctx.memo.items() if k not in known}))
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
            on_row: Callable[[], None] = lambda: None) -> list[dict]:
        """`[measure(s) for s in seeds]`, measured on the workers; the memo entries each seed added join
        `ctx.memo` in seed order (an entry two seeds built keeps the first seed's, as one process would). A
        measurement that raised raises here; a worker that died raises `SeedWorkerDied`."""
        tasks = [cloudpickle.dumps((measure, ctx, seed)) for seed in seeds]
        while len(self._workers) < min(self.jobs, len(seeds)):
            self._start()
        replies: dict[int, tuple] = {}
        busy: dict[Any, int] = {}  # connection -> index of the seed it measures
        queue = list(range(len(seeds)))
        idle = [conn for conn, _ in self._workers]
        processes = {conn: process for conn, process in self._workers}
        while len(replies) < len(seeds):
            while queue and idle:
                conn = idle.pop()
                conn.send_bytes(tasks[queue[0]])
                busy[conn] = queue.pop(0)
            watched = {**{c: c for c in busy}, **{processes[c].sentinel: c for c in busy}}
            for conn in {watched[ready] for ready in wait(list(watched))}:
                try:
                    replies[busy[conn]] = cloudpickle.loads(conn.recv_bytes())
                except (EOFError, OSError):
                    process = processes[conn]
                    process.join(1)
                    self.close()
                    raise SeedWorkerDied(f"the worker measuring seed {seeds[busy[conn]]} died "
                                         f"({_death(process.exitcode)})") from None
                idle.append(conn)
                del busy[conn]
                on_row()
        rows = []
        for i in range(len(seeds)):
            kind, payload = replies[i]
            if kind == "raised":
                error, trace = payload
                raise error from (RuntimeError(f"in the worker measuring seed {seeds[i]}:\n{trace}") if trace
                                  else None)
            row, added = payload
            for key, value in added.items():
                ctx.memo.setdefault(key, value)
            rows.append(row)
        return rows

    def __reduce__(self):
        """A context that travels to a worker carries no workers: its own measurements run in that worker."""
        return _no_workers, ()

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
