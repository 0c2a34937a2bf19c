"""Criteria and preconditions of claims, decided on intervals over seeds (see `paperzoo.stats`).

A `Test` compares one interval with a threshold fixed before the run, and a comparative test also states the
smallest effect of interest (`Effect`: its size and where the number comes from). On the same interval:
- the claim's direction holds (the bound nearest the threshold lies on the claim's side) -> the test holds;
- the interval excludes every effect as large as the smallest effect of interest (the far bound lies short of
  `refute_at`) -> the test fails: an equivalence, as in two one-sided tests;
- only in between is it undecided (`None`): then the claim is `inconclusive`: the data cannot tell.
For "A beats B" (`beats`), the claim side is a - b > margin and `refute_at` is the smallest effect; for
non-inferiority (`no_worse`) the mirror: it holds when the interval excludes every loss as large as the margin,
and fails when it excludes every difference >= 0 (A shown worse than B). An interval narrower than the gap
between the threshold and `refute_at` therefore always decides. A test without an effect (an absolute threshold such as "accuracy >= 0.97")
fails only when its whole interval lies on the other side of the threshold.

`decide` joins the tests of a criterion ("A and B"): reproduced when every test holds; refuted only when a failing
test survives Holm's correction over the criterion's tests (each test's one-sided p-value against its `refute_at`),
so that K sub-tests do not give K chances of a false refutation; the reason names the sub-test that decided.

An `every_seed` test is for exact properties (an equivalence to float tolerance, a count): it holds only when every
seed satisfies it, and fails otherwise; it is never undecided.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from paperzoo.stats import (Interval, current_confidence, holm_rejects, log_mean_interval, log_ratio_interval,
                            mean_interval, one_sided_p, paired_difference, resampled_interval, with_test_set_error)

_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
_OPPOSITE = {">": operator.le, ">=": operator.lt, "<": operator.ge, "<=": operator.gt}


@dataclass(frozen=True)
class Effect:
    """The smallest effect of interest of a comparative test, in the units of the test's interval (accuracy as a
    fraction, a ratio for ratio tests), and where that number comes from: the paper's reported effect, a stated
    fraction of it, or a practical bound."""

    size: float
    source: str

    def __post_init__(self):
        if not (math.isfinite(self.size) and self.size >= 0) or not self.source.strip():
            raise ValueError(f"an Effect needs a finite size >= 0 and its source in words, got {self!r}")


@dataclass(frozen=True)
class Test:
    label: str  # what is compared, in words: "test accuracy", "per-rank - none (moved digits)"
    interval: Interval
    direction: str  # the claim's side of the threshold: ">", ">=", "<" or "<="
    threshold: float
    per_seed: tuple[float, ...] = ()
    effect: Effect | None = None  # the smallest effect of interest (comparative tests)
    refute_at: float | None = None  # the bound the far end of the interval must fall short of to fail the test

    def __post_init__(self):
        if self.direction not in _COMPARE:
            raise ValueError(f"direction must be one of {sorted(_COMPARE)}, got {self.direction!r}")
        if self.refute_at is None:
            object.__setattr__(self, "refute_at", self.threshold)
        upward = self.direction in (">", ">=")
        if (self.refute_at < self.threshold) if upward else (self.refute_at > self.threshold):
            raise ValueError(f"{self.label}: refute_at {self.refute_at} lies on the wrong side of the threshold "
                             f"{self.threshold} for direction {self.direction!r}")

    @property
    def _bounds(self) -> tuple[float, float]:
        """(near, far): the bound nearest the threshold must hold for True; the farthest must fail for False."""
        if self.direction in (">", ">="):
            return self.interval.low, self.interval.high
        return self.interval.high, self.interval.low

    @property
    def outcome(self) -> bool | None:
        holds, fails = _COMPARE[self.direction], _OPPOSITE[self.direction]
        if self.interval.method == "every seed":  # NaN compares False: a NaN seed fails the property
            return all(holds(v, self.threshold) for v in self.per_seed)
        near, far = self._bounds
        if holds(near, self.threshold):
            return True
        if fails(far, self.refute_at):
            return False
        return None

    @property
    def p_refute(self) -> float:
        """One-sided p-value of "the effect reaches `refute_at` on the claim's side" (small: the data refute the
        test); 0 or 1 for an exact (every-seed) test; NaN where the interval carries no standard error."""
        if self.interval.method == "every seed" or self.interval.se == 0:  # exact: refuted exactly when it fails
            return 0.0 if self.outcome is False else 1.0
        return one_sided_p(self.interval, self.refute_at, below=self.direction in (">", ">="))

    def describe(self) -> str:
        word = {True: "holds", False: "fails", None: "undecided"}[self.outcome]
        effect = ""
        if self.effect is not None:
            side = "<" if self.direction in (">", ">=") else ">"
            effect = (f" (smallest effect {self.effect.size:.4g}: {self.effect.source}; fails when the whole interval "
                      f"is {side} {self.refute_at:.4g})")
        return f"{self.label} = {self.interval} {self.direction} {self.threshold:.4g}{effect}: {word}"

    def to_json(self) -> dict:
        return {"label": self.label, "interval": self.interval.to_json(), "direction": self.direction,
                "threshold": self.threshold, "refute_at": self.refute_at,
                "smallest_effect": None if self.effect is None else self.effect.size,
                "effect_source": None if self.effect is None else self.effect.source,
                "per_seed": list(self.per_seed), "outcome": self.outcome}


@dataclass(frozen=True)
class Decision:
    outcome: bool | None  # True: reproduced, False: not reproduced, None: undecided (inconclusive)
    reason: str
    tests: tuple[Test, ...] = ()


def decide(*tests: Test) -> Decision:
    """All tests hold -> True. Refuted (False) only when a test fails and Holm's procedure over the K tests' refuting
    p-values, at the one-sided level of the intervals being built ((1 - confidence) / 2: 2.5%, or a sequential
    plan's nominal level), rejects it; a test that fails alone but not after the correction leaves the criterion
    undecided. With one test this is the test's own outcome."""
    if not tests:
        raise ValueError("a criterion needs at least one test")
    text = "; ".join(t.describe() for t in tests)
    outcomes = [t.outcome for t in tests]
    if all(o is True for o in outcomes):
        return Decision(True, text, tests)
    if False not in outcomes:
        return Decision(None, text, tests)
    if len(tests) == 1:
        return Decision(False, text, tests)
    alpha = (1 - current_confidence()) / 2
    rejected = holm_rejects([t.p_refute if t.outcome is False else 1.0 for t in tests], alpha)
    deciding = [t.label for t, r in zip(tests, rejected) if r]
    if deciding:
        return Decision(False, f"refuted by {', '.join(deciding)} (Holm over {len(tests)} tests): {text}", tests)
    failing = [t.label for t, o in zip(tests, outcomes) if o is False]
    return Decision(None, f"{', '.join(failing)} fails alone but not after Holm's correction over {len(tests)} "
                          f"tests: {text}", tests)


def all_of(*tests: Test) -> Decision:
    """A precondition of several parts: holds when every part holds, fails when any part fails, else undecided (a
    regime is shown, not a hypothesis refuted: no correction)."""
    outcomes = [t.outcome for t in tests]
    outcome = False if False in outcomes else None if None in outcomes else True
    return Decision(outcome, "; ".join(t.describe() for t in tests), tests)


def at_least(label: str, values: Sequence[float], threshold: float, strict: bool = False,
             effect: Effect | None = None) -> Test:
    """The mean over seeds is >= (or >) `threshold`, on its t-interval. With `effect` (when the values are
    per-seed differences): fails when the interval excludes every value >= `effect.size`."""
    return Test(label, mean_interval(values), ">" if strict else ">=", threshold, tuple(values), effect,
                None if effect is None else max(threshold, effect.size))


def at_most(label: str, values: Sequence[float], threshold: float, strict: bool = False) -> Test:
    """The mean over seeds is <= (or <) `threshold`, on its t-interval (an absolute bound; for "A is no better than
    B" use `no_gain`)."""
    return Test(label, mean_interval(values), "<" if strict else "<=", threshold, tuple(values))


def accuracy_at_least(label: str, accuracies: Sequence[float], threshold: float, test_items: int) -> Test:
    """An absolute threshold on an accuracy: the mean over seeds >= `threshold` on an interval that holds both the
    seeds' spread and the sampling error of the `test_items` examples it was scored on."""
    return Test(label, with_test_set_error(accuracies, test_items), ">=", threshold, tuple(accuracies))


def accuracy_at_most(label: str, accuracies: Sequence[float], threshold: float, test_items: int) -> Test:
    """An absolute upper bound on an accuracy ("fails: near chance"), on the interval of `accuracy_at_least`."""
    return Test(label, with_test_set_error(accuracies, test_items), "<", threshold, tuple(accuracies))


def beats(label: str, a: Sequence[float], b: Sequence[float], margin: float = 0.0, *, effect: Effect) -> Test:
    """A beats B by more than `margin`: the paired per-seed difference a - b is > margin on its t-interval; fails
    when the interval excludes every difference as large as `effect.size` (>= margin)."""
    differences = tuple(x - y for x, y in zip(a, b, strict=True))
    return Test(label, paired_difference(a, b, margin).difference, ">", margin, differences, effect,
                max(margin, effect.size))


def beats_over_splits(label: str, a: Sequence[float], b: Sequence[float], test_train_ratio: float, *,
                      effect: Effect) -> Test:
    """A beats B where each pair (a_i, b_i) was measured on the i-th random train/test split of the same items
    (not on independent seeds): the mean difference > 0 on the corrected resampled t-interval."""
    differences = tuple(x - y for x, y in zip(a, b, strict=True))
    return Test(label, resampled_interval(differences, test_train_ratio), ">", 0.0, differences, effect, effect.size)


def no_worse(label: str, a: Sequence[float], b: Sequence[float], *, effect: Effect) -> Test:
    """Non-inferiority with margin `effect.size` (the smallest loss that would matter): holds when the paired
    interval of a - b excludes every loss as large as the margin (low >= -margin); fails when it excludes every
    difference >= 0 (A is shown worse than B); undecided only when the interval is wider than the margin."""
    differences = tuple(x - y for x, y in zip(a, b, strict=True))
    return Test(label, paired_difference(a, b).difference, ">=", -effect.size, differences, effect, 0.0)


def no_gain(label: str, a: Sequence[float], b: Sequence[float], *, effect: Effect) -> Test:
    """A is no better than B ("naive fusion does not beat the best single modality"): the mirror of `beats`. Holds
    when the paired interval of a - b excludes every gain as large as `effect.size` (high < effect); fails when it
    excludes every difference <= 0 (A shown better than B)."""
    differences = tuple(x - y for x, y in zip(a, b, strict=True))
    return Test(label, paired_difference(a, b).difference, "<", effect.size, differences, effect, 0.0)


def ratio_at_least(label: str, a: Sequence[float], b: Sequence[float], k: float, *, effect: Effect) -> Test:
    """The geometric-mean ratio a / b over seeds >= k, on the t-interval of the per-seed log-ratios; fails when the
    interval excludes every ratio as large as `effect.size` (>= k)."""
    ratios = tuple(x / y for x, y in zip(a, b, strict=True))
    return Test(label, log_ratio_interval(a, b), ">=", k, ratios, effect, max(k, effect.size))


def log_at_least(label: str, ratios: Sequence[float], k: float, *, effect: Effect) -> Test:
    """Per-seed positive ratios whose geometric mean is >= k, on the t-interval of their logs (a heavy-tailed
    ratio's arithmetic interval can reach below zero); fails when it excludes every ratio >= `effect.size`."""
    return Test(label, log_mean_interval(ratios), ">=", k, tuple(ratios), effect, max(k, effect.size))


def log_at_most(label: str, ratios: Sequence[float], k: float) -> Test:
    """Per-seed positive ratios whose geometric mean is <= k, on the t-interval of their logs (an absolute bound on
    a ratio, judged on the log scale)."""
    return Test(label, log_mean_interval(ratios), "<=", k, tuple(ratios))


def every_seed(label: str, values: Sequence[float], direction: str, threshold: float) -> Test:
    """An exact property that must hold on every seed (shown as the range of the per-seed values)."""
    values = tuple(float(v) for v in values)
    interval = Interval(max(values) if direction in ("<", "<=") else min(values), min(values), max(values),
                        len(values), "every seed", current_confidence())
    return Test(label, interval, direction, threshold, values)


@dataclass(frozen=True)
class Precondition:
    """The regime the claim is about, shown to hold before the claim is judged ("the baseline is above chance by
    >= 10 points"). `check` gets the measured values and returns a bool, a `Test` or a `Decision` (from `all_of`;
    an undecided one leaves the precondition undecided: `held` None); `shows` names the measured values the report
    prints beside it."""

    text: str
    check: Callable[[dict], bool | Test | Decision]
    shows: tuple[str, ...] = ()

    def evaluate(self, measured: dict) -> dict:
        result = self.check(measured)
        if isinstance(result, Test):
            result = all_of(result)
        if isinstance(result, Decision):
            return {"text": self.text, "held": result.outcome, "values": {t.label: t.to_json() for t in result.tests},
                    "detail": result.reason}
        values = {k: measured[k] for k in self.shows}
        return {"text": self.text, "held": bool(result), "values": values,
                "detail": ", ".join(f"{k} = {v}" for k, v in values.items())}


PLATEAU_TAIL = 0.3  # a plateau's trend is stated per 30% of training
PLATEAU_POINTS = 2.0  # the one default: the seeds' mean trend rises by <= 2 points per 30% of training


def late_rise(steps: Sequence[int], values: Sequence[float], tail: float = PLATEAU_TAIL) -> float:
    """Points (x100) a metric recorded at `steps` gained over the last `tail` of training: the final value minus
    the first one recorded at or after step (1 - tail) x the last step (a reported quantity; plateaus are judged on
    `late_trend`)."""
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


def plateau(label: str, keys: Sequence[str], points: float = PLATEAU_POINTS, why: str = "",
            measure: str = "the least-squares trend of the held-out metric over the second half of training "
                           "(`late_trend`)") -> Precondition:
    """The one plateau rule: for each per-seed trend in `keys` (points per 30% of training, `measure` says how it
    was computed), the seeds' mean trend is <= `points` on its t-interval (not "on every seed": more seeds make the
    rule sharper, never harder to pass). Held when every model's interval lies at or below `points`, not met when
    one lies wholly above, else undecided. A threshold other than `PLATEAU_POINTS` needs its reason in `why`."""
    if points != PLATEAU_POINTS and not why.strip():
        raise ValueError(f"{label}: a plateau threshold other than the default {PLATEAU_POINTS:g} points needs its "
                         "reason (why=...)")
    reason = f" ({why})" if why else ""
    text = (f"{label} reached a plateau: {measure} rises by <= {points:g} points per 30% of training, on the seeds' "
            f"mean with its 95% interval{reason}")
    return Precondition(text, lambda m: all_of(*(at_most(k, m[k], points) for k in keys)), tuple(keys))
