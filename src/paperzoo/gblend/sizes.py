"""The two data sizes at which the G-Blend claims are reported (Wang, Tran, Feiszli, CVPR 2020, arXiv 1905.12681,
sections 3.1-3.2: the problem is a regime, the naive multi-modal network overfitting more than its best single
modality).

Both sizes are declared before any claim is judged:
- the judged size: the first 800 of AV-digits' 3,200 training pairs for 80 epochs (160 at standard and full), the
  setup chosen on a pilot seed to reach the paper's regime (docs/gblend.md); every claim's verdict is decided here;
- the full data: all 3,200 training pairs, for the fewest whole epochs that take at least the judged size's number
  of optimizer steps (the same budget in steps: 480 steps of 128 -> 20 epochs of 25 steps; 960 -> 39), with G-Blend's
  window n the whole number of epochs nearest the judged size's window in steps (60 steps -> 2 epochs of 25 steps).
  Reported beside every verdict, judged by the same rule (preconditions, then the criterion), never deciding it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from paperzoo.criteria import Decision, Precondition, Test, decide


@dataclass(frozen=True)
class Size:
    """One data size: training pairs, epochs and G-Blend's window n (the super-epoch), in epochs."""

    train_examples: int
    epochs: int
    super_epoch: int
    batch_size: int = 128

    @property
    def steps_per_epoch(self) -> int:
        return self.train_examples // self.batch_size

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch


def same_steps(judged: Size, train_examples: int) -> Size:
    """The size with `train_examples` pairs and the judged size's budget: the fewest whole epochs with at least its
    optimizer steps, and the window of whole epochs nearest its window's steps (at least one epoch)."""
    per_epoch = train_examples // judged.batch_size
    if per_epoch < 1:
        raise ValueError(f"{train_examples} training pairs make no batch of {judged.batch_size}")
    epochs = math.ceil(judged.steps / per_epoch)
    window = max(1, round(judged.super_epoch * judged.steps_per_epoch / per_epoch))
    return Size(train_examples, epochs, min(window, epochs), judged.batch_size)


def judge_as_claim(everything: dict, check: Callable[[dict], Test | Decision],
                   preconditions: Sequence[Precondition]) -> dict:
    """The verdict a claim's rule gives on `everything` (measured values and per-seed lists): "inconclusive" when a
    precondition is not shown to hold, else the criterion's decision; with the preconditions and tests behind it."""
    held = [p.evaluate(everything) for p in preconditions]
    shown = [{"text": p["text"], "held": p["held"], "detail": p["detail"]} for p in held]
    unmet = [p for p in held if p["held"] is not True]
    if unmet:
        reason = "; ".join(f"precondition {'not met' if p['held'] is False else 'undecided'}: {p['text']} "
                           f"({p['detail']})" for p in unmet)
        return {"verdict": "inconclusive", "reason": reason, "preconditions": shown, "tests": []}
    decision = check(everything)
    if isinstance(decision, Test):
        decision = decide(decision)
    verdict = {True: "reproduced", False: "not_reproduced", None: "inconclusive"}[decision.outcome]
    return {"verdict": verdict, "reason": decision.reason, "preconditions": shown,
            "tests": [t.to_json() for t in decision.tests]}
