import math

import numpy as np
import pytest

from paperzoo.criteria import (Effect, Precondition, at_least, at_most, beats, decide, every_seed, no_worse,
                               ratio_at_least)
from paperzoo.stats import bootstrap_ratio, log_ratio_interval, mean_interval, paired_difference, std, wilson

# Student t with 2 degrees of freedom has a closed form: P(T > t) = (1 - t / sqrt(t^2 + 2)) / 2, so its 97.5%
# quantile q solves q / sqrt(q^2 + 2) = 0.95: q^2 = 2 * 0.9025 / 0.0975.
T_975_DF2 = math.sqrt(2 * 0.9025 / 0.0975)
ANY = Effect(0.0, "test: any effect counts")


def test_mean_interval_is_the_student_t_interval_worked_by_hand():
    interval = mean_interval([1.0, 2.0, 3.0])  # mean 2, sd 1, standard error 1 / sqrt(3)
    half = T_975_DF2 / math.sqrt(3)
    assert interval.estimate == 2.0 and interval.n == 3
    assert interval.low == pytest.approx(2 - half, rel=1e-9) and interval.high == pytest.approx(2 + half, rel=1e-9)
    assert std([1.0, 2.0, 3.0]) == 1.0 and std([5.0]) == 0.0


def test_one_value_has_no_interval_and_a_constant_has_a_point_interval():
    one = mean_interval([0.7])
    assert one.estimate == 0.7 and math.isinf(one.low) and math.isinf(one.high)
    assert one.to_json()["low"] is None and "no interval" in str(one)
    constant = mean_interval([0.5, 0.5, 0.5])
    assert (constant.low, constant.high) == (0.5, 0.5)


def test_paired_difference_and_one_sided_test_worked_by_hand():
    test = paired_difference([3.0, 5.0, 7.0], [1.0, 2.0, 3.0])  # differences 2, 3, 4: mean 3, sd 1
    t = 3 / (1 / math.sqrt(3))
    assert test.difference.estimate == 3.0
    assert test.difference.low == pytest.approx(3 - T_975_DF2 / math.sqrt(3), rel=1e-9)
    assert test.p_value == pytest.approx((1 - t / math.sqrt(t * t + 2)) / 2, rel=1e-9)
    shifted = paired_difference([3.0, 5.0, 7.0], [1.0, 2.0, 3.0], margin=3.0)  # H1: mean > 3, t = 0
    assert shifted.p_value == pytest.approx(0.5)
    with pytest.raises(ValueError, match="one value per seed"):
        paired_difference([1.0, 2.0], [1.0])


def test_wilson_interval_matches_the_formula():
    z = 1.959963984540054
    n, p = 10, 0.8
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    interval = wilson(8, 10)
    assert interval.estimate == 0.8
    assert interval.low == pytest.approx(centre - half, rel=1e-9) and interval.high == pytest.approx(centre + half)
    assert wilson(0, 20).low == 0.0  # unlike the normal approximation, never below 0
    with pytest.raises(ValueError, match="correct <= total"):
        wilson(11, 10)


def test_bootstrap_ratio_is_seeded_exact_for_a_constant_ratio_and_refuses_few_values():
    constant = bootstrap_ratio([2.0 * i for i in range(1, 11)], [float(i) for i in range(1, 11)])
    assert (constant.estimate, constant.low, constant.high) == (2.0, 2.0, 2.0)
    a = [1.0, 1.4, 1.1, 1.9, 1.5, 1.2, 1.3, 1.6, 1.0, 1.7]
    b = [1.0, 1.1, 0.9, 1.2, 1.0, 1.1, 1.0, 1.2, 0.9, 1.1]
    first, again = bootstrap_ratio(a, b), bootstrap_ratio(a, b)
    assert first == again and first.estimate == pytest.approx(sum(a) / sum(b))
    assert first.low < first.estimate < first.high
    # with 3 seeds the percentiles would just be the extreme per-seed ratios: refused
    with pytest.raises(ValueError, match=">= 10 values"):
        bootstrap_ratio([2.1, 2.6, 3.9], [1.0, 1.0, 1.0])


def test_log_ratio_interval_worked_by_hand():
    interval = log_ratio_interval([2.0, 8.0], [1.0, 2.0])  # log-ratios ln 2, ln 4: mean 1.5 ln 2, sd ln 2 / sqrt 2
    half = 12.706204736174698 * (math.log(2) / math.sqrt(2)) / math.sqrt(2)  # t(0.975, 1 df) = tan(0.475 pi)
    assert interval.estimate == pytest.approx(2 ** 1.5)
    assert interval.low == pytest.approx(math.exp(1.5 * math.log(2) - half))
    assert interval.high == pytest.approx(math.exp(1.5 * math.log(2) + half))
    with pytest.raises(ValueError, match="positive"):
        log_ratio_interval([1.0, -1.0], [1.0, 1.0])


def test_a_test_holds_fails_or_is_undecided_by_where_its_interval_lies():
    assert at_least("acc", [0.98, 0.985, 0.99], 0.97).outcome is True
    assert at_least("acc", [0.90, 0.91, 0.92], 0.97).outcome is False
    assert at_least("acc", [0.96, 0.975, 0.99], 0.97).outcome is None  # the interval straddles 0.97
    assert at_least("acc", [0.99], 0.97).outcome is None  # one seed decides nothing
    assert at_most("error", [0.01, 0.011, 0.012], 0.02).outcome is True
    # equal on every seed: "beats" (strictly greater) fails, "no worse" holds
    assert beats("a - b", [0.5, 0.6, 0.7], [0.5, 0.6, 0.7], effect=ANY).outcome is False
    assert no_worse("a - b", [0.5, 0.6, 0.7], [0.5, 0.6, 0.7], effect=Effect(0.02, "test")).outcome is True
    assert ratio_at_least("a / b", [2.0, 4.0, 6.0], [1.0, 2.0, 3.0], 2.0, effect=Effect(2.0, "test")).outcome is True
    assert every_seed("diff", [0.0, 1e-7, 2e-6], "<=", 1e-5).outcome is True
    assert every_seed("diff", [0.0, 1e-7, 2e-5], "<=", 1e-5).outcome is False  # one bad seed is enough
    assert every_seed("diff", [0.0, float("nan")], "<=", 1e-5).outcome is False  # a NaN seed fails
    # the "<" side: True below the whole interval, False above it, None across it
    assert at_most("error", [0.01, 0.011, 0.012], 0.011, strict=True).outcome is None
    assert at_most("error", [0.03, 0.031, 0.032], 0.02).outcome is False
    assert at_most("error", [0.02, 0.02, 0.02], 0.02, strict=True).outcome is False  # equal is not below
    assert at_least("acc", [0.97, 0.97, 0.97], 0.97).outcome is True and \
        at_least("acc", [0.97, 0.97, 0.97], 0.97, strict=True).outcome is False
    assert no_worse("a - b", [0.5, 0.6, 0.7], [0.6, 0.7, 0.8], effect=Effect(0.02, "test")).outcome is False


def test_decide_joins_tests_and_says_why():
    holds, fails, undecided = (at_least("x", [1.0, 1.0, 1.0], 0.5), at_least("y", [0.0, 0.0, 0.0], 0.5),
                               at_least("z", [0.4, 0.5, 0.6], 0.5))
    assert decide(holds, holds).outcome is True
    assert decide(holds, undecided).outcome is None
    assert decide(undecided, fails).outcome is False
    assert "z = 0.5 [" in decide(undecided).reason and "undecided" in decide(undecided).reason
    with pytest.raises(ValueError, match="at least one test"):
        decide()


def test_precondition_reports_its_numbers():
    by_value = Precondition("baseline above chance", lambda m: m["acc"] >= 0.2, ("acc",)).evaluate({"acc": 0.1})
    assert by_value == {"text": "baseline above chance", "held": False, "values": {"acc": 0.1}, "detail": "acc = 0.1"}
    by_test = Precondition("trained", lambda m: at_least("acc", m["acc"], 0.6)).evaluate({"acc": [0.9, 0.91, 0.92]})
    assert by_test["held"] is True and by_test["values"]["acc"]["interval"]["estimate"] == pytest.approx(0.91)
    one_seed = Precondition("trained", lambda m: at_least("acc", m["acc"], 0.6)).evaluate({"acc": [0.9]})
    assert one_seed["held"] is None  # undecided, not refuted


def test_late_rise_reads_the_last_thirty_percent():
    from paperzoo.criteria import late_rise

    steps = [20, 40, 60, 80, 100]
    # the first evaluation at or after step 70 is step 80 (0.6); the final is 0.63: 3 points
    assert late_rise(steps, [0.2, 0.4, 0.5, 0.6, 0.63]) == pytest.approx(3.0)
    assert late_rise(steps, [0.2, 0.4, 0.5, 0.6, 0.55]) == pytest.approx(-5.0)  # falling is a plateau too
    with pytest.raises(ValueError, match="one value per recorded step"):
        late_rise(steps, [0.1, 0.2])


def test_corrected_resampled_interval_worked_by_hand():
    from paperzoo.criteria import beats_over_splits
    from paperzoo.stats import resampled_interval

    values = [0.1, 0.3, 0.2, 0.4]  # mean 0.25, sd 0.129099; halves: sqrt(1/4 + 1) = 1.118034; t_{3, 0.975} = 3.182446
    half_width = 3.182446 * 0.1290994 * 1.1180340
    interval = resampled_interval(values, 1.0)
    assert (interval.estimate, interval.low, interval.high) == pytest.approx((0.25, 0.25 - half_width,
                                                                               0.25 + half_width), abs=1e-6)
    plain = mean_interval(values)  # the uncorrected interval: sqrt(1/4) instead of sqrt(1/4 + 1), 2.236x narrower
    assert (interval.high - interval.low) / (plain.high - plain.low) == pytest.approx(math.sqrt(5), rel=1e-6)
    with pytest.raises(ValueError, match="test_train_ratio"):
        resampled_interval(values, 0.0)
    # a difference a paired t-interval calls decided, the corrected interval leaves undecided
    a, b = [0.30, 0.34, 0.26, 0.32, 0.28], [0.25, 0.25, 0.25, 0.25, 0.25]
    assert beats("a - b", a, b, effect=ANY).outcome is True
    assert beats_over_splits("a - b", a, b, 1.0, effect=Effect(0.1, "test")).outcome is None


def test_late_trend_is_the_least_squares_rise_per_thirty_percent_over_the_second_half():
    from paperzoo.criteria import late_trend

    steps = list(range(10, 101, 10))  # 10 evaluations; the second half is steps 50..100 (6 of them)
    rising = [0.5 + 0.001 * s for s in steps]  # +0.1 per 100 steps: 3 points per 30 steps
    assert late_trend(steps, rising) == pytest.approx(3.0)
    # the first half (however steep) is not looked at; the second half's fit agrees with numpy's polyfit
    noisy = [0.1, 0.3, 0.5, 0.7, 0.80, 0.82, 0.78, 0.81, 0.79, 0.80]
    slope = np.polyfit(steps[4:], noisy[4:], 1)[0]  # per step
    assert late_trend(steps, noisy) == pytest.approx(100 * slope * 30) and abs(late_trend(steps, noisy)) < 1
    with pytest.raises(ValueError, match=">= 3 evaluations"):
        late_trend([10, 20], [0.1, 0.2])
