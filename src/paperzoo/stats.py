"""Statistics for claims measured over seeds, on top of `scipy.stats` (no distribution is re-derived here).

Every comparative criterion of a claim is decided on one of these intervals, never on one run's point values:
- `mean_interval`: mean of per-seed values with its 95% Student-t interval;
- `paired_difference`: the mean of per-seed differences a - b with its t-interval and a one-sided paired t-test;
- `resampled_interval`: the mean over repeated random train/test splits of the same data, with Nadeau & Bengio's
  corrected resampled t-interval (the splits overlap, so the plain t-interval is too narrow);
- `wilson`: Wilson score interval for an accuracy of k correct out of n test items;
- `log_ratio_interval`: the geometric-mean ratio a / b with a t-interval on the per-seed log-ratios (few seeds);
- `bootstrap_ratio`: percentile-bootstrap interval for mean(a) / mean(b) (at least 10 paired values: with 3 seeds the
  percentiles are just the smallest and largest per-seed ratios).
An interval from one value is unbounded (-inf, inf): one seed cannot decide a comparison. When every value is the
same, the interval is that value: report unrounded per-seed values so that this means what it says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as sps

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval; `method` says how it was computed."""

    estimate: float
    low: float
    high: float
    n: int
    method: str
    confidence: float = CONFIDENCE

    def to_json(self) -> dict:
        bound = lambda v: None if math.isinf(v) or math.isnan(v) else v  # noqa: E731  (JSON has no inf)
        return {"estimate": self.estimate, "low": bound(self.low), "high": bound(self.high), "n": self.n,
                "method": self.method, "confidence": self.confidence}

    def __str__(self) -> str:
        if math.isinf(self.low) or math.isinf(self.high):
            return f"{self.estimate:.4g} (n = {self.n}, no interval)"
        return f"{self.estimate:.4g} [{self.low:.4g}, {self.high:.4g}]"


def _values(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or len(array) == 0:
        raise ValueError(f"expected a non-empty 1-D sequence of numbers, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"values must be finite, got {array.tolist()}")
    return array


def std(values: Sequence[float]) -> float:
    """Sample standard deviation (ddof = 1); 0 for one value."""
    array = _values(values)
    return float(array.std(ddof=1)) if len(array) > 1 else 0.0


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean with its two-sided Student-t interval: mean +- t_{n-1} * sd / sqrt(n)."""
    array = _values(values)
    mean = float(array.mean())
    if len(array) == 1:
        return Interval(mean, -math.inf, math.inf, 1, "t")
    if np.ptp(array) == 0:  # every seed gave the same value: the interval is that value (no rounding noise)
        return Interval(float(array[0]), float(array[0]), float(array[0]), len(array), "t")
    sem = float(sps.sem(array))
    low, high = sps.t.interval(confidence, len(array) - 1, loc=mean, scale=sem)
    return Interval(mean, float(low), float(high), len(array), "t", confidence)


def resampled_interval(values: Sequence[float], test_train_ratio: float,
                       confidence: float = CONFIDENCE) -> Interval:
    """Mean of J values measured on J random train/test splits of one data set, with the corrected resampled
    t-interval of Nadeau & Bengio ("Inference for the Generalization Error", Machine Learning 52, 2003, Eq. 11):
    mean +- t_{J-1} * sd * sqrt(1/J + n_test/n_train). The plain t-interval (the 1/J term alone) treats the splits
    as independent samples, which overlapping splits of the same items are not."""
    if test_train_ratio <= 0:
        raise ValueError(f"test_train_ratio must be > 0 (n_test / n_train), got {test_train_ratio}")
    array = _values(values)
    mean = float(array.mean())
    if len(array) == 1:
        return Interval(mean, -math.inf, math.inf, 1, "corrected resampled t")
    if np.ptp(array) == 0:
        return Interval(mean, mean, mean, len(array), "corrected resampled t")
    scale = float(array.std(ddof=1)) * math.sqrt(1 / len(array) + test_train_ratio)
    low, high = sps.t.interval(confidence, len(array) - 1, loc=mean, scale=scale)
    return Interval(mean, float(low), float(high), len(array), "corrected resampled t", confidence)


@dataclass(frozen=True)
class PairedTest:
    """Per-seed differences a - b: their mean with its t-interval, and the one-sided paired t-test of
    H1: mean(a - b) > margin."""

    difference: Interval
    margin: float
    p_value: float

    def to_json(self) -> dict:
        return {"difference": self.difference.to_json(), "margin": self.margin, "p_value": self.p_value}


def paired_difference(a: Sequence[float], b: Sequence[float], margin: float = 0.0,
                      confidence: float = CONFIDENCE) -> PairedTest:
    first, second = _values(a), _values(b)
    if first.shape != second.shape:
        raise ValueError(f"paired values need one value per seed on both sides, got {len(first)} and {len(second)}")
    differences = first - second
    interval = mean_interval(differences, confidence)
    if len(differences) == 1:
        p_value = math.nan
    elif np.ptp(differences) == 0:  # a constant difference: the test is decided by its sign
        p_value = 0.0 if differences[0] > margin else 1.0
    else:
        p_value = float(sps.ttest_1samp(differences, margin, alternative="greater").pvalue)
    return PairedTest(interval, margin, p_value)


def wilson(correct: int, total: int, confidence: float = CONFIDENCE) -> Interval:
    """Wilson score interval for a proportion of `correct` out of `total` (an accuracy on a test set)."""
    if total <= 0 or not 0 <= correct <= total:
        raise ValueError(f"need 0 <= correct <= total and total > 0, got {correct} of {total}")
    ci = sps.binomtest(int(correct), int(total)).proportion_ci(confidence, method="wilson")
    return Interval(correct / total, float(ci.low), float(ci.high), int(total), "wilson", confidence)


def log_ratio_interval(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """exp(mean(log(a_i / b_i))), the geometric-mean ratio of paired positive values, with the t-interval of the
    log-ratios mapped back by exp."""
    first, second = _values(a), _values(b)
    if first.shape != second.shape or (first <= 0).any() or (second <= 0).any():
        raise ValueError(f"a log-ratio needs paired positive values, got {first.tolist()} and {second.tolist()}")
    logs = mean_interval(np.log(first / second), confidence)
    return Interval(math.exp(logs.estimate), math.exp(logs.low), math.exp(logs.high), logs.n, "t on log-ratios",
                    confidence)


MIN_BOOTSTRAP = 10


def bootstrap_ratio(a: Sequence[float], b: Sequence[float], paired: bool = True, resamples: int = 2000,
                    seed: int = 0, confidence: float = CONFIDENCE) -> Interval:
    """mean(a) / mean(b) with a percentile-bootstrap interval (seeded: the same inputs give the same interval).
    `paired` resamples seeds jointly (a[i] and b[i] were measured together)."""
    first, second = _values(a), _values(b)
    if min(len(first), len(second)) < MIN_BOOTSTRAP:
        raise ValueError(f"a bootstrap interval needs >= {MIN_BOOTSTRAP} values per side, got {len(first)} and "
                         f"{len(second)}; use log_ratio_interval for a few seeds")
    if (second <= 0).any():
        raise ValueError("the denominator must be positive for a ratio interval")
    ratio = float(first.mean() / second.mean())
    result = sps.bootstrap((first, second), lambda x, y, axis=-1: x.mean(axis) / y.mean(axis), paired=paired,
                           vectorized=True, n_resamples=resamples, confidence_level=confidence,
                           method="percentile", rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    if math.isnan(low):  # every resample gave the same ratio
        low = high = ratio
    return Interval(ratio, float(low), float(high), len(first), "bootstrap", confidence)
