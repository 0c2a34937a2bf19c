"""Statistics for claims measured over seeds, on top of `scipy.stats` (no distribution is re-derived here).

Every comparative criterion of a claim is decided on one of these intervals, never on one run's point values:
- `mean_interval`: mean of per-seed values with its 95% Student-t interval;
- `paired_difference`: the mean of per-seed differences a - b with its t-interval and a one-sided paired t-test;
- `resampled_interval`: the mean over repeated random train/test splits of the same data, with Nadeau & Bengio's
  corrected resampled t-interval (the splits overlap, so the plain t-interval is too narrow);
- `wilson`: Wilson score interval for an accuracy of k correct out of n test items;
- `log_ratio_interval`: the geometric-mean ratio a / b with a t-interval on the per-seed log-ratios (few seeds);
- `bootstrap_ratio`: percentile-bootstrap interval for mean(a) / mean(b) (at least 10 paired values: with 3 seeds the
  percentiles are just the smallest and largest per-seed ratios);
- `with_test_set_error`: an accuracy's interval over seeds widened by the sampling error of its finite test set.
The confidence level is 95% unless a sequential plan narrows it for its looks (`at_confidence`, `pocock_level`); each
t-based interval keeps its standard error and degrees of freedom, so that a one-sided p-value against any bound can
be read from it (`one_sided_p`, for Holm's correction over the sub-tests of a claim: `holm_rejects`).
An interval from one value is unbounded (-inf, inf): one seed cannot decide a comparison. When every value is the
same, the interval is that value: report unrounded per-seed values so that this means what it says.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
from scipy import stats as sps

CONFIDENCE = 0.95
_LEVEL = contextvars.ContextVar("confidence", default=CONFIDENCE)


def current_confidence() -> float:
    """The two-sided confidence of the intervals built now: 95%, or what `at_confidence` set for a sequential look."""
    return _LEVEL.get()


@contextlib.contextmanager
def at_confidence(level: float) -> Iterator[None]:
    """Build every interval inside the block at two-sided confidence `level` (a sequential plan's nominal level)."""
    if not 0 < level < 1:
        raise ValueError(f"a confidence level lies in (0, 1), got {level}")
    token = _LEVEL.set(level)
    try:
        yield
    finally:
        _LEVEL.reset(token)


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval; `method` says how it was computed. `se` and `df`: the
    standard error and degrees of freedom of a t-based interval (on the log scale when `log`), from which
    `one_sided_p` reads a p-value against any bound; None where the interval is not t-based."""

    estimate: float
    low: float
    high: float
    n: int
    method: str
    confidence: float = CONFIDENCE
    se: float | None = None
    df: float | None = None
    log: bool = False

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


def mean_interval(values: Sequence[float], confidence: float | None = None) -> Interval:
    """Mean with its two-sided Student-t interval: mean +- t_{n-1} * sd / sqrt(n)."""
    confidence = confidence or current_confidence()
    array = _values(values)
    mean = float(array.mean())
    if len(array) == 1:
        return Interval(mean, -math.inf, math.inf, 1, "t", confidence)
    if np.ptp(array) == 0:  # every seed gave the same value: the interval is that value (no rounding noise)
        return Interval(float(array[0]), float(array[0]), float(array[0]), len(array), "t", confidence, 0.0,
                        len(array) - 1)
    sem = float(sps.sem(array))
    low, high = sps.t.interval(confidence, len(array) - 1, loc=mean, scale=sem)
    return Interval(mean, float(low), float(high), len(array), "t", confidence, sem, len(array) - 1)


def resampled_interval(values: Sequence[float], test_train_ratio: float,
                       confidence: float | None = None) -> Interval:
    """Mean of J values measured on J random train/test splits of one data set, with the corrected resampled
    t-interval of Nadeau & Bengio ("Inference for the Generalization Error", Machine Learning 52, 2003, Eq. 11):
    mean +- t_{J-1} * sd * sqrt(1/J + n_test/n_train). The plain t-interval (the 1/J term alone) treats the splits
    as independent samples, which overlapping splits of the same items are not."""
    if test_train_ratio <= 0:
        raise ValueError(f"test_train_ratio must be > 0 (n_test / n_train), got {test_train_ratio}")
    confidence = confidence or current_confidence()
    array = _values(values)
    mean = float(array.mean())
    if len(array) == 1:
        return Interval(mean, -math.inf, math.inf, 1, "corrected resampled t", confidence)
    if np.ptp(array) == 0:
        return Interval(mean, mean, mean, len(array), "corrected resampled t", confidence, 0.0, len(array) - 1)
    scale = float(array.std(ddof=1)) * math.sqrt(1 / len(array) + test_train_ratio)
    low, high = sps.t.interval(confidence, len(array) - 1, loc=mean, scale=scale)
    return Interval(mean, float(low), float(high), len(array), "corrected resampled t", confidence, scale,
                    len(array) - 1)


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
                      confidence: float | None = None) -> PairedTest:
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


def wilson(correct: int, total: int, confidence: float | None = None) -> Interval:
    """Wilson score interval for a proportion of `correct` out of `total` (an accuracy on a test set)."""
    confidence = confidence or current_confidence()
    if total <= 0 or not 0 <= correct <= total:
        raise ValueError(f"need 0 <= correct <= total and total > 0, got {correct} of {total}")
    ci = sps.binomtest(int(correct), int(total)).proportion_ci(confidence, method="wilson")
    return Interval(correct / total, float(ci.low), float(ci.high), int(total), "wilson", confidence)


def log_ratio_interval(a: Sequence[float], b: Sequence[float], confidence: float | None = None) -> Interval:
    """exp(mean(log(a_i / b_i))), the geometric-mean ratio of paired positive values, with the t-interval of the
    log-ratios mapped back by exp."""
    first, second = _values(a), _values(b)
    if first.shape != second.shape or (first <= 0).any() or (second <= 0).any():
        raise ValueError(f"a log-ratio needs paired positive values, got {first.tolist()} and {second.tolist()}")
    logs = mean_interval(np.log(first / second), confidence)
    return Interval(math.exp(logs.estimate), math.exp(logs.low), math.exp(logs.high), logs.n, "t on log-ratios",
                    logs.confidence, logs.se, logs.df, log=True)


def log_mean_interval(values: Sequence[float], confidence: float | None = None) -> Interval:
    """exp(mean(log v)), the geometric mean of positive per-seed ratios, with the t-interval of the logs mapped back
    by exp (a ratio is judged on the log scale: its arithmetic interval can reach below zero)."""
    array = _values(values)
    if (array <= 0).any():
        raise ValueError(f"a log-scale interval needs positive values, got {array.tolist()}")
    logs = mean_interval(np.log(array), confidence)
    return Interval(math.exp(logs.estimate), math.exp(logs.low), math.exp(logs.high), logs.n, "t on logs",
                    logs.confidence, logs.se, logs.df, log=True)


def with_test_set_error(accuracies: Sequence[float], test_items: int, confidence: float | None = None) -> Interval:
    """Mean accuracy over seeds with an interval that also holds the sampling error of the `test_items` test
    examples every seed was scored on (one shared test set: more seeds do not shrink it). The half-width is the
    root-sum-square of the seeds' t half-width (n - 1 degrees of freedom) and the test set's normal half-width
    (binomial variance p(1 - p) / test_items): never narrower than either alone, so it keeps its coverage with a
    few seeds (a Welch-Satterthwaite t on the summed variances does not). One seed says nothing of the spread
    between seeds: unbounded."""
    if test_items <= 0:
        raise ValueError(f"test_items must be > 0, got {test_items}")
    confidence = confidence or current_confidence()
    array = _values(accuracies)
    mean = float(array.mean())
    if len(array) == 1:
        return Interval(mean, -math.inf, math.inf, 1, "t, seeds + test-set sampling", confidence)
    z = float(sps.norm.ppf((1 + confidence) / 2))
    seeds_half = float(sps.t.ppf((1 + confidence) / 2, len(array) - 1)) * float(array.std(ddof=1)) / math.sqrt(len(array))
    half = math.hypot(seeds_half, z * math.sqrt(mean * (1 - mean) / test_items))
    # se and df describe the interval as a normal one of the same width, for the refuting p-value under Holm
    return Interval(mean, mean - half, mean + half, len(array), "t, seeds + test-set sampling", confidence,
                    half / z, math.inf)


MIN_BOOTSTRAP = 10


def bootstrap_ratio(a: Sequence[float], b: Sequence[float], paired: bool = True, resamples: int = 2000,
                    seed: int = 0, confidence: float | None = None) -> Interval:
    """mean(a) / mean(b) with a percentile-bootstrap interval (seeded: the same inputs give the same interval).
    `paired` resamples seeds jointly (a[i] and b[i] were measured together)."""
    confidence = confidence or current_confidence()
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


def one_sided_p(interval: Interval, bound: float, below: bool) -> float:
    """The one-sided p-value, read from a t-based interval, of the hypothesis that the true value lies at or beyond
    `bound` on the far side: H0: value >= bound (`below`: the data say it is below) or H0: value <= bound. NaN
    where the interval has no standard error (not t-based, or one seed); 0 or 1 for a constant (se 0) interval."""
    if interval.se is None or interval.df is None:
        return math.nan
    estimate, bound = (math.log(interval.estimate), math.log(bound)) if interval.log else (interval.estimate, bound)
    if interval.se == 0:
        return 0.0 if (estimate < bound if below else estimate > bound) else 1.0
    statistic = (estimate - bound) / interval.se
    return float(sps.t.cdf(statistic, interval.df) if below else sps.t.sf(statistic, interval.df))


def holm_rejects(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Holm's step-down procedure (statsmodels' `multipletests`): which of the hypotheses are rejected with the
    family-wise error held at `alpha`. A NaN p-value (no interval) is never rejected."""
    from statsmodels.stats.multitest import multipletests

    p = np.nan_to_num(np.asarray(p_values, dtype=float), nan=1.0)
    return [bool(r) for r in multipletests(p, alpha=alpha, method="holm")[0]]


def pocock_level(looks: Sequence[int], alpha: float = 1 - CONFIDENCE) -> float:
    """The nominal two-sided confidence each look of a group-sequential plan uses so that the chance of ever
    crossing a boundary under the null stays `alpha` (Pocock's constant boundary; Jennison & Turnbull, "Group
    Sequential Methods", 2000, Sec. 2.3). `looks` are the cumulative sample sizes (seeds) of the looks; the
    z-statistics at them are jointly normal with correlation sqrt(n_i / n_j), and the constant c solves
    P(max_k |Z_k| >= c) = alpha. For equal spacing and alpha 0.05: c = 2.178 (2 looks), 2.289 (3), 2.361 (4),
    2.413 (5). One look: 1 - alpha. The t-statistics of few seeds use the same nominal level (the "significance
    level approach", J & T Sec. 3.3)."""
    sizes = [int(n) for n in looks]
    if not sizes or sizes != sorted(set(sizes)) or sizes[0] < 1:
        raise ValueError(f"looks must be increasing positive seed counts, got {list(looks)}")
    if len(sizes) == 1:
        return 1 - alpha
    from scipy.optimize import brentq

    n = np.array(sizes, dtype=float)
    correlation = np.sqrt(np.minimum.outer(n, n) / np.maximum.outer(n, n))
    mvn = sps.multivariate_normal(mean=np.zeros(len(n)), cov=correlation, seed=0)

    def crossing(c: float) -> float:
        inside = mvn.cdf(np.full(len(n), c), lower_limit=np.full(len(n), -c))
        return (1 - inside) - alpha

    c = brentq(crossing, sps.norm.isf(alpha / 2), sps.norm.isf(alpha / (2 * len(n))), xtol=1e-6)
    return float(1 - 2 * sps.norm.sf(c))
