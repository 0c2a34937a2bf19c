"""Criteria and preconditions of claims, decided on intervals over seeds (see `paperzoo.stats`).

A `Test` compares one interval with a threshold fixed before the run. Its outcome is True when the whole interval
lies on the claim's side, False when the whole interval lies on the other side, and None (undecided) when the
interval straddles the threshold: then the claim is `inconclusive`, not refuted. `decide` joins the tests of a
criterion ("A and B"): any False refutes, else any None leaves it undecided.

An `every_seed` test is for exact properties (an equivalence to float tolerance, a count): it holds only when every
seed satisfies it, and fails otherwise; it is never undecided.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from paperzoo.stats import Interval, log_ratio_interval, mean_interval, paired_difference, resampled_interval

_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
_OPPOSITE = {">": operator.le, ">=": operator.lt, "<": operator.ge, "<=": operator.gt}


@dataclass(frozen=True)
class Test:
    label: str  # what is compared, in words: "test accuracy", "per-rank - none (moved digits)"
    interval: Interval
    direction: str  # the claim's side of the threshold: ">", ">=", "<" or "<="
    threshold: float
    per_seed: tuple[float, ...] = ()

    def __post_init__(self):
        if self.direction not in _COMPARE:
            raise ValueError(f"direction must be one of {sorted(_COMPARE)}, got {self.direction!r}")

    @property
    def outcome(self) -> bool | None:
        holds, fails = _COMPARE[self.direction], _OPPOSITE[self.direction]
        if self.interval.method == "every seed":  # NaN compares False: a NaN seed fails the property
            return all(holds(v, self.threshold) for v in self.per_seed)
        # the bound nearest the threshold must hold for True; the farthest must fail for False
        near, far = ((self.interval.low, self.interval.high) if self.direction in (">", ">=")
                     else (self.interval.high, self.interval.low))
        if holds(near, self.threshold):
            return True
        if fails(far, self.threshold):
            return False
        return None

    def describe(self) -> str:
        word = {True: "holds", False: "fails", None: "undecided"}[self.outcome]
        return f"{self.label} = {self.interval} {self.direction} {self.threshold:.4g}: {word}"

    def to_json(self) -> dict:
        return {"label": self.label, "interval": self.interval.to_json(), "direction": self.direction,
                "threshold": self.threshold, "per_seed": list(self.per_seed), "outcome": self.outcome}


@dataclass(frozen=True)
class Decision:
    outcome: bool | None  # True: reproduced, False: not reproduced, None: undecided (inconclusive)
    reason: str
    tests: tuple[Test, ...] = ()


def decide(*tests: Test) -> Decision:
    if not tests:
        raise ValueError("a criterion needs at least one test")
    outcomes = [t.outcome for t in tests]
    outcome = False if False in outcomes else None if None in outcomes else True
    return Decision(outcome, "; ".join(t.describe() for t in tests), tests)


def at_least(label: str, values: Sequence[float], threshold: float, strict: bool = False) -> Test:
    """The mean over seeds is >= (or >) `threshold`, on its t-interval."""
    return Test(label, mean_interval(values), ">" if strict else ">=", threshold, tuple(values))


def at_most(label: str, values: Sequence[float], threshold: float, strict: bool = False) -> Test:
    """The mean over seeds is <= (or <) `threshold`, on its t-interval."""
    return Test(label, mean_interval(values), "<" if strict else "<=", threshold, tuple(values))


def beats(label: str, a: Sequence[float], b: Sequence[float], margin: float = 0.0) -> Test:
    """A beats B by more than `margin`: the paired per-seed difference a - b is > margin on its t-interval."""
    differences = tuple(x - y for x, y in zip(a, b))
    return Test(label, paired_difference(a, b, margin).difference, ">", margin, differences)


def beats_over_splits(label: str, a: Sequence[float], b: Sequence[float], test_train_ratio: float) -> Test:
    """A beats B where each pair (a_i, b_i) was measured on the i-th random train/test split of the same items
    (not on independent seeds): the mean difference > 0 on the corrected resampled t-interval."""
    differences = tuple(x - y for x, y in zip(a, b, strict=True))
    return Test(label, resampled_interval(differences, test_train_ratio), ">", 0.0, differences)


def no_worse(label: str, a: Sequence[float], b: Sequence[float], margin: float) -> Test:
    """Non-inferiority: A is no worse than B by more than `margin` (a - b >= -margin on the paired interval)."""
    differences = tuple(x - y for x, y in zip(a, b))
    return Test(label, paired_difference(a, b).difference, ">=", -margin, differences)


def ratio_at_least(label: str, a: Sequence[float], b: Sequence[float], k: float) -> Test:
    """The geometric-mean ratio a / b over seeds >= k, on the t-interval of the per-seed log-ratios."""
    ratios = tuple(x / y for x, y in zip(a, b))
    return Test(label, log_ratio_interval(a, b), ">=", k, ratios)


def every_seed(label: str, values: Sequence[float], direction: str, threshold: float) -> Test:
    """An exact property that must hold on every seed (shown as the range of the per-seed values)."""
    values = tuple(float(v) for v in values)
    interval = Interval(max(values) if direction in ("<", "<=") else min(values), min(values), max(values),
                        len(values), "every seed")
    return Test(label, interval, direction, threshold, values)


@dataclass(frozen=True)
class Precondition:
    """The regime the claim is about, shown to hold before the claim is judged ("the baseline is above chance by
    >= 10 points"). `check` gets the measured values and returns a bool or a `Test` (whose outcome must be True;
    an undecided Test leaves the precondition undecided: `held` None); `shows` names the measured values the
    report prints beside it."""

    text: str
    check: Callable[[dict], bool | Test]
    shows: tuple[str, ...] = ()

    def evaluate(self, measured: dict) -> dict:
        result = self.check(measured)
        if isinstance(result, Test):
            return {"text": self.text, "held": result.outcome, "values": {result.label: result.to_json()},
                    "detail": result.describe()}
        values = {k: measured[k] for k in self.shows}
        return {"text": self.text, "held": bool(result), "values": values,
                "detail": ", ".join(f"{k} = {v}" for k, v in values.items())}


PLATEAU_TAIL = 0.3  # a plateau is judged on the last 30% of training


def late_rise(steps: Sequence[int], values: Sequence[float], tail: float = PLATEAU_TAIL) -> float:
    """Points (x100) a metric recorded at `steps` gained over the last `tail` of training: the final value minus
    the first one recorded at or after step (1 - tail) x the last step; > 0 while the model is still learning."""
    if not steps or len(steps) != len(values):
        raise ValueError(f"need one value per recorded step, got {len(steps)} steps and {len(values)} values")
    start = next(v for s, v in zip(steps, values) if s >= (1 - tail) * steps[-1])
    return 100 * (values[-1] - start)


def late_trend(steps: Sequence[int], values: Sequence[float], tail: float = PLATEAU_TAIL, window: float = 0.5) -> float:
    """Points (x100) a metric rises per `tail` of training on the least-squares line through the evaluations in the
    last `window` of training (>= 3 of them). Less noisy than `late_rise`, which differences two single
    evaluations: with 6 evaluations in the window its standard error is about 0.7x one evaluation's, against 1.4x."""
    if not steps or len(steps) != len(values):
        raise ValueError(f"need one value per recorded step, got {len(steps)} steps and {len(values)} values")
    points = [(s, v) for s, v in zip(steps, values) if s >= (1 - window) * steps[-1]]
    if len(points) < 3:
        raise ValueError(f"a trend needs >= 3 evaluations in the last {window:.0%} of training, got {len(points)}")
    x, y = np.array([p[0] for p in points], dtype=float), np.array([p[1] for p in points], dtype=float)
    slope = float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())
    return 100 * slope * tail * steps[-1]


def plateau(label: str, keys: Sequence[str], points: float, tail: float = PLATEAU_TAIL,
            measure: str | None = None) -> Precondition:
    """Precondition: each per-seed rise in `keys` (`late_rise`, or what `measure` says, e.g. `late_trend`) is <=
    `points` on every seed."""
    measure = measure or f"test accuracy rises by <= {points:g} points over the last {tail:.0%} of training"
    text = f"{label} reached a plateau: {measure}, on every seed"
    return Precondition(text, lambda m: decide(*(every_seed(k, m[k], "<=", points) for k in keys)).outcome is True,
                        tuple(keys))
