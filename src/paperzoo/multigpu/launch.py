"""Run a function in N local processes that form a process group, the way torchrun would start them.

Used by the claims and tests on one machine: each process gets RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
MASTER_ADDR=127.0.0.1 and a free MASTER_PORT in its environment (so `paperzoo.engine` code runs exactly as under
torchrun), and OMP_NUM_THREADS=1 as torchrun sets it, so N processes do not fight over the cores. Results come back
through a queue; a rank that raises or dies fails the whole group (the others get `grace_s` to finish, then are
killed), as torchrun does.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_module
import socket
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class RankOutcome:
    """What became of one rank of `spawn_group`: its `status`, its return value or error text, and when."""

    rank: int
    status: str
    """One of "ok", "error" (raised), "died" (exited without a result), "killed" (still running at the end)."""
    value: Any = None
    """The return value, or the error text."""
    seconds: float = 0.0
    """From the group's start to this outcome."""


class GroupError(RuntimeError):
    """At least one rank failed; `outcomes` says what happened to each."""

    def __init__(self, outcomes: list[RankOutcome]):
        self.outcomes = outcomes
        lines = [f"rank {o.rank}: {o.status} after {o.seconds:.1f} s" + (f"\n{o.value}" if o.status == "error"
                 else f" (exit code {o.value})" if o.status == "died" else "") for o in outcomes]
        super().__init__("a rank of the local process group failed:\n" + "\n".join(lines))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(fn: Callable, rank: int, world_size: int, port: int, args: tuple, results) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size),
                       "LOCAL_WORLD_SIZE": str(world_size), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    try:
        results.put((rank, "ok", fn(*args)))
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which raises GroupError
        results.put((rank, "error", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-4)}"))


def spawn_group(fn: Callable, world_size: int = 2, args: tuple = (), timeout_s: float = 300.0,
                grace_s: float = 10.0) -> list[Any]:
    """[fn(*args) on rank 0, on rank 1, ...], each in its own process; `fn` must be importable (spawn).
    Raises GroupError when a rank fails and TimeoutError after `timeout_s`."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = free_port()
    saved = os.environ.get("OMP_NUM_THREADS")
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by the children at start(), as torchrun does
    try:
        procs = [ctx.Process(target=_entry, args=(fn, r, world_size, port, args, results), daemon=True)
                 for r in range(world_size)]
        for p in procs:
            p.start()
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS")
    started = time.monotonic()
    outcomes: dict[int, RankOutcome] = {}
    failed_at = None
    try:
        while len(outcomes) < world_size:
            now = time.monotonic() - started
            if now > timeout_s:
                raise TimeoutError(f"the local process group did not finish within {timeout_s:.0f} s")
            if failed_at is not None and now > failed_at + grace_s:
                break
            try:
                rank, status, value = results.get(timeout=0.1)
                outcomes[rank] = RankOutcome(rank, status, value, time.monotonic() - started)
            except queue_module.Empty:
                for rank, p in enumerate(procs):
                    if rank not in outcomes and p.exitcode is not None and p.exitcode != 0:
                        outcomes[rank] = RankOutcome(rank, "died", p.exitcode, time.monotonic() - started)
            if failed_at is None and any(o.status != "ok" for o in outcomes.values()):
                failed_at = time.monotonic() - started
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
            p.join(5)
        results.close()
        results.join_thread()
    for rank in range(world_size):
        outcomes.setdefault(rank, RankOutcome(rank, "killed", None, time.monotonic() - started))
    ordered = [outcomes[r] for r in range(world_size)]
    if any(o.status != "ok" for o in ordered):
        raise GroupError(ordered)
    return [o.value for o in ordered]
