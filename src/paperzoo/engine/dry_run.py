"""`paperzoo reproduce --dry-run`: every training loop stops after a few steps, so that a preset's whole code path
(its models, data sets and schedules at the preset's sizes, one seed) runs in minutes on a CPU before a GPU user
spends hours on it.

The cap travels in the environment (`PAPERZOO_DRY_RUN_STEPS`), so the worker processes of `--jobs` and the ranks a
claim starts see it too. A loop that trains `steps` steps runs `dry_run_steps(steps)` of them; its schedule still
spans `steps`. The protocol fingerprints read `dry_run_steps(x)` as `x` (`paperzoo.code_digest`): the cap changes
no claim's protocol, and outside a dry run it changes nothing.
"""

from __future__ import annotations

import os

DRY_RUN_ENV = "PAPERZOO_DRY_RUN_STEPS"


def dry_run_steps(steps: int) -> int:
    """`steps`, or the dry run's cap when it is smaller."""
    cap = os.environ.get(DRY_RUN_ENV)
    return min(steps, int(cap)) if cap else steps
