"""`paperzoo reproduce --dry-run`: training loops run only a few steps, so that a preset's whole code path (its
models, data sets, schedules and evaluations at the preset's sizes, one seed) runs in minutes on a CPU before a GPU
user spends hours on it.

The cap travels in the environment (`PAPERZOO_DRY_RUN_STEPS`), so the worker processes of `--jobs` and the ranks a
claim starts see it too. A loop that evaluates along the way keeps every evaluation and trains only the first `cap`
steps after each (`dry_run_skips`), so that what reads the evaluation history (a plateau trend, G-Blend's window)
has the history of the real run's length (the engine's `Trainer` also trains each step it logs, for the trends read
off its training logs); a loop without evaluations runs `dry_run_steps(steps)`. The protocol
fingerprints read `dry_run_steps(x)` as `x` and drop `if dry_run_skips(...): continue` (`paperzoo.code_digest`):
neither changes a claim's protocol, and outside a dry run neither changes anything.
"""

from __future__ import annotations

import bisect
import os
from typing import Sequence

DRY_RUN_ENV = "PAPERZOO_DRY_RUN_STEPS"


def _cap() -> int | None:
    cap = os.environ.get(DRY_RUN_ENV)
    return int(cap) if cap else None


def dry_run_steps(steps: int) -> int:
    """`steps`, or the dry run's cap when it is smaller."""
    cap = _cap()
    return min(steps, cap) if cap is not None else steps


def dry_run_skips(step: int, evaluated_at: Sequence[int]) -> bool:
    """In a dry run, whether to skip training step `step` (1-based) of a loop that evaluates after the sorted steps
    `evaluated_at`: all but the first `cap` steps after the latest evaluation before it. False outside a dry run."""
    cap = _cap()
    if cap is None:
        return False
    before = bisect.bisect_left(evaluated_at, step)
    last_evaluation = evaluated_at[before - 1] if before else 0
    return step - last_evaluation > cap
