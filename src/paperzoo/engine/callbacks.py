"""Callbacks for `Trainer(method, cfg, callbacks=[...])`: any callable that takes a `TrainState`.

The trainer calls every callback, on every rank, with a `TrainState`:

  phase "train"   at each log step (`train.log_every`), with the training metrics averaged over the steps since the
                  last log and over the ranks (loss, the method's metrics, lr)
  phase "eval"    after each periodic evaluation (`train.eval_every`), with the held-out metrics
  phase "final"   after the final evaluation, with its metrics

`state.model` is the unwrapped model (read it; changing it changes the run), `state.out_dir` the run folder (None
without one). A callback that sets `state.stop = True` in phase "train" or "eval" ends the run after that step:
the trainer saves the last checkpoint of that step, evaluates, calls the callbacks with phase "final" and returns;
`TrainResult.steps` is that step. Under DDP the run stops when any rank's callback asks (every rank learns it
through a collective, so all stop after the same step). A logger of your own is a writer
(`Trainer(writers=[...])`, `paperzoo.engine.metrics`), not a callback.

  EarlyStopping    stops when a metric has not improved for `patience` evaluations (or logs)
  BestCheckpoint   keeps the model of the best evaluation so far: `checkpoints/best.safetensors` beside `last`
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from paperzoo.engine.checkpoint import save_checkpoint
from paperzoo.engine.distributed import is_main
from paperzoo.errors import ConfigError


def _metric(state, name: str) -> float:
    if name not in state.metrics:
        raise ConfigError(f"metric {name!r} is not among the {state.phase} metrics at step {state.step}: "
                          f"{', '.join(sorted(state.metrics)) or '(none: the method evaluates nothing)'}")
    return float(state.metrics[name])


class _Tracker:
    """The best value of one metric so far, by `mode` ("max" or "min"), with a margin `min_delta`."""

    def __init__(self, metric: str, mode: Literal["max", "min"], min_delta: float):
        if mode not in ("max", "min"):
            raise ConfigError(f"mode must be 'max' or 'min', got {mode!r}")
        if not min_delta >= 0:
            raise ConfigError(f"min_delta must be >= 0, got {min_delta!r}")
        self.metric, self.mode, self.min_delta = metric, mode, min_delta
        self.best: float | None = None
        self.best_step: int | None = None

    def improves(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        return value > self.best + self.min_delta if self.mode == "max" else value < self.best - self.min_delta


class EarlyStopping(_Tracker):
    """Stop the run when `metric` has not improved (by more than `min_delta`, in direction `mode`) for `patience`
    calls in `phase` ("eval": evaluations, which need `train.eval_every`; "train": log steps). After the run,
    `best`, `best_step` and `stopped_step` (None when it ran to the end) say what happened. Keep the best model with
    `BestCheckpoint`."""

    def __init__(self, metric: str, mode: Literal["max", "min"] = "max", patience: int = 3, min_delta: float = 0.0,
                 phase: Literal["eval", "train"] = "eval"):
        super().__init__(metric, mode, min_delta)
        if patience < 1:
            raise ConfigError(f"patience must be >= 1, got {patience}")
        if phase not in ("eval", "train"):
            raise ConfigError(f"phase must be 'eval' or 'train', got {phase!r}")
        self.patience, self.phase = patience, phase
        self.waited = 0
        self.stopped_step: int | None = None

    def __call__(self, state) -> None:
        if state.phase != self.phase:
            return
        value = _metric(state, self.metric)
        if self.improves(value):
            self.best, self.best_step, self.waited = value, state.step, 0
            return
        self.waited += 1
        if self.waited >= self.patience:
            state.stop = True
            self.stopped_step = state.step


class BestCheckpoint(_Tracker):
    """Save the model whenever `metric` of an evaluation (periodic or final) is the best so far: to `path`, by
    default `<run folder>/checkpoints/best.safetensors` beside `last.safetensors` (no file without a run folder).
    The file holds the model's weights, the step and `{"metric", "value", "mode"}` in its extra metadata (no
    optimizer state: it is for using the model, `load_checkpoint(path, model=model)`, not for resuming). Rank 0
    writes it. `best` and `best_step` say which evaluation it is."""

    def __init__(self, metric: str, mode: Literal["max", "min"] = "max", min_delta: float = 0.0,
                 path: str | Path | None = None):
        super().__init__(metric, mode, min_delta)
        self.path = Path(path) if path is not None else None
        self.written: Path | None = None

    def target(self, state) -> Path | None:
        """Where the best checkpoint goes for this run (None: nowhere)."""
        if self.path is not None:
            return self.path
        return Path(state.out_dir) / "checkpoints" / "best.safetensors" if state.out_dir is not None else None

    def __call__(self, state) -> None:
        if state.phase not in ("eval", "final"):
            return
        value = _metric(state, self.metric)
        if not self.improves(value):
            return
        self.best, self.best_step = value, state.step
        path = self.target(state)
        if path is None or not is_main():
            return
        save_checkpoint(path, model=state.model, step=state.step,
                        extra={"metric": self.metric, "value": value, "mode": self.mode})
        self.written = path
        if state.out_dir is not None and path.resolve().is_relative_to(Path(state.out_dir).resolve()):
            from paperzoo import run_folders

            record = getattr(run_folders, "record", None)  # the run folder's manifest, where there is one
            if record is not None:
                record(Path(state.out_dir), "train", path)
