"""The verdict rules (issue 30): the smallest effect of interest (equivalence, as two one-sided tests), Holm over a
claim's sub-tests, Pocock's sequential looks, log-scale ratios, test-set error in absolute accuracy thresholds, the
one plateau rule, claim kinds and protocol fingerprints; each against values worked out by hand or an independent
reference (statsmodels, published boundary constants)."""

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats as sps

from paperzoo.claims import Claim, Measurement, RunContext, fingerprint, run_claim, stream_seed
from paperzoo import criteria
from paperzoo.criteria import (Effect, Precondition, accuracy_at_least, beats, decide, late_trend, log_at_least, no_gain,
                               no_worse, plateau)
from paperzoo.stats import Interval, holm_rejects, mean_interval, pocock_level, with_test_set_error

T_975_DF2 = 4.302652729749464  # t(0.975, 2 df)


def test_beats_fails_when_its_interval_excludes_the_smallest_effect():
    # differences 0.1, 0.2, 0.3: mean 0.2, se 0.1 / sqrt(3); 95% interval 0.2 +- 4.3027 x 0.057735 = [-0.0484, 0.4484]
    a, b = [1.1, 1.2, 1.3], [1.0, 1.0, 1.0]
    low, high = 0.2 - T_975_DF2 * 0.1 / math.sqrt(3), 0.2 + T_975_DF2 * 0.1 / math.sqrt(3)
    assert (low, high) == pytest.approx((-0.0484, 0.4484), abs=1e-4)
    assert beats("a - b", a, b, effect=Effect(0.5, "hand")).outcome is False  # every effect >= 0.5 excluded
    assert beats("a - b", a, b, effect=Effect(0.4, "hand")).outcome is None  # 0.4 still inside the interval
    assert beats("a - b", a, b, effect=Effect(0.0, "hand")).outcome is None  # the old rule: only B winning refutes
    assert beats("a - b", [1.3, 1.4, 1.5], b, effect=Effect(0.5, "hand")).outcome is True  # low 0.15 > 0: holds
    test = beats("a - b", a, b, effect=Effect(0.5, "the paper's gap"))
    j = test.to_json()
    assert (j["smallest_effect"], j["refute_at"], j["effect_source"]) == (0.5, 0.5, "the paper's gap")


def test_the_refuting_p_value_is_statsmodels_two_one_sided_tests_upper_half():
    from statsmodels.stats.weightstats import ttost_paired

    a, b = np.array([0.61, 0.64, 0.60, 0.66, 0.62]), np.array([0.60, 0.62, 0.61, 0.63, 0.60])
    delta = 0.05
    _, _, (_, p_upper, _) = ttost_paired(a, b, -delta, delta)  # H0: mean(a - b) >= delta
    test = beats("a - b", a, b, effect=Effect(delta, "hand"))
    assert test.p_refute == pytest.approx(p_upper, rel=1e-9)
    assert test.outcome is (False if p_upper < 0.025 else None)


def test_no_worse_is_the_mirror_it_fails_when_a_is_shown_worse():
    margin = Effect(0.05, "hand")
    # differences -0.03, -0.02, -0.01: mean -0.02, interval [-0.0448, 0.0048]
    assert no_worse("a - b", [0.97, 0.98, 0.99], [1.0, 1.0, 1.0], effect=margin).outcome is True  # low > -0.05
    assert no_worse("a - b", [0.97, 0.98, 0.99], [1.0, 1.0, 1.0], effect=Effect(0.01, "hand")).outcome is None
    # differences -0.05, -0.04, -0.03: interval [-0.0648, -0.0152], wholly below 0: A is shown worse
    assert no_worse("a - b", [0.95, 0.96, 0.97], [1.0, 1.0, 1.0], effect=Effect(0.01, "hand")).outcome is False


def test_no_gain_holds_when_every_gain_as_large_as_the_effect_is_excluded():
    effect = Effect(0.05, "hand")
    assert no_gain("naive - best", [0.99, 1.0, 1.01], [1.0, 1.0, 1.0], effect=effect).outcome is True  # high 0.0248
    assert no_gain("naive - best", [1.1, 1.2, 1.3], [1.0, 1.0, 1.0], effect=effect).outcome is None  # [-0.05, 0.45]
    assert no_gain("naive - best", [1.2, 1.21, 1.22], [1.0, 1.0, 1.0], effect=effect).outcome is False  # low > 0


def test_an_interval_narrower_than_the_smallest_effect_always_decides():
    rng = np.random.default_rng(0)
    for _ in range(200):
        centre, spread = rng.uniform(-1, 1), rng.uniform(0.001, 0.05)
        a = centre + spread * rng.standard_normal(5)
        test = beats("a - b", a, np.zeros(5), effect=Effect(1.0, "wider than any interval here"))
        if test.interval.high - test.interval.low < 1.0:
            assert test.outcome is not None


def test_holm_on_three_p_values_worked_by_hand():
    # sorted 0.01 <= 0.05 / 3 rejects; then 0.03 > 0.05 / 2 stops: only the first
    assert holm_rejects([0.01, 0.04, 0.03], 0.05) == [True, False, False]
    # 0.01 <= 0.0167, 0.02 <= 0.025, 0.03 <= 0.05: all three
    assert holm_rejects([0.01, 0.02, 0.03], 0.05) == [True, True, True]
    assert holm_rejects([float("nan"), 0.001], 0.05) == [False, True]  # no interval: never rejected


def _t_test(label: str, estimate: float, se: float, df: float = 100.0) -> criteria.Test:
    half = sps.t.ppf(0.975, df) * se
    return criteria.Test(label, Interval(estimate, estimate - half, estimate + half, 101, "t", 0.95, se, df), ">", 0.0,
                effect=Effect(0.0, "hand"))


def test_a_refutation_must_survive_holm_over_the_claims_tests():
    failing = _t_test("x", -1.0, 0.45)  # p = P(T_100 < -2.22) ~ 0.014: below 0.025 alone, above 0.025 / 2
    p = sps.t.cdf(-1.0 / 0.45, 100)
    assert 0.0125 < p < 0.025 and failing.p_refute == pytest.approx(p)
    holding = _t_test("y", 5.0, 0.1)
    assert decide(failing).outcome is False
    joined = decide(holding, failing)
    assert joined.outcome is None and "not after Holm" in joined.reason
    clear = _t_test("z", -3.0, 0.45)  # p ~ 5e-9: survives the correction, and the reason names it
    decided = decide(holding, failing, clear)
    assert decided.outcome is False and decided.reason.startswith("refuted by z (Holm over 3 tests)")


def test_pocock_constants_match_the_published_values():
    # Jennison & Turnbull (2000), Table 2.1: two-sided alpha 0.05, K equally spaced looks
    for looks, c in [((1, 2), 2.178), ((1, 2, 3), 2.289), ((1, 2, 3, 4), 2.361), ((1, 2, 3, 4, 5), 2.413)]:
        assert sps.norm.isf((1 - pocock_level(looks)) / 2) == pytest.approx(c, abs=2e-3)
    assert pocock_level((3,)) == pytest.approx(0.95)
    assert pocock_level((3, 5)) > 0.95  # each look is stricter than a single one
    with pytest.raises(ValueError, match="increasing"):
        pocock_level((5, 3))


def _toy(run, check, **kw) -> Claim:
    return Claim(id="toy.seq", paper="Toy", statement="s", paper_reports="r", criterion="c", run=run, check=check,
                 kind="empirical", **kw)


def test_seeds_are_added_only_while_the_claim_is_undecided(tmp_path):
    ctx = RunContext("quick", tmp_path, seed=3, stream="toy")
    seen = []

    def run(c):  # a clear effect whose interval needs more than 3 seeds at the Pocock level
        seen.append(len(c.seeds))
        values = [1.0, 0.2, 1.8, 1.1, 0.9][:len(c.seeds)]
        return Measurement({}, per_seed={"gain": values})

    check = lambda m: beats("gain", m["gain"], [0.0] * len(m["gain"]), effect=Effect(0.1, "hand"))  # noqa: E731
    result = run_claim(_toy(run, check, looks={"quick": (3, 5)}), ctx)
    assert seen == [3, 5] and [look["seeds"] for look in result.looks] == [3, 5]
    assert result.looks[0]["verdict"] == "inconclusive" and result.verdict == "reproduced"
    assert result.seeds == [stream_seed(3, "toy", i) for i in range(5)] and result.seeds[:3] == ctx.seeds
    assert result.confidence == pytest.approx(pocock_level((3, 5)))
    assert result.tests[0]["interval"]["confidence"] == pytest.approx(result.confidence)

    seen.clear()
    decided_early = _toy(lambda c: seen.append(len(c.seeds)) or Measurement({}, per_seed={"gain": [1.0, 1.1, 1.2]}),
                         check, looks={"quick": (3, 5)})
    assert run_claim(decided_early, ctx).looks == [{"seeds": 3, "verdict": "reproduced"}] and seen == [3]

    seen.clear()
    regime_missing = replace(decided_early, preconditions=(Precondition("regime", lambda m: False),))
    assert len(run_claim(regime_missing, ctx).looks) == 1 and seen == [3]  # more seeds do not bring a regime


def test_ratios_are_judged_on_the_log_scale():
    ratios = [1.0, 100.0]  # geometric mean 10; the arithmetic interval would reach below zero
    test = log_at_least("ratio", ratios + [10.0], 2.0, effect=Effect(2.0, "hand"))
    assert test.interval.estimate == pytest.approx(10.0) and test.interval.low > 0
    # log-ratios 0, 4.605, 2.303: mean 2.303, sd 2.303, se 1.3295; interval exp(2.303 +- 4.3027 x 1.3295)
    assert test.interval.low == pytest.approx(math.exp(math.log(10) - T_975_DF2 * math.log(10) / math.sqrt(3)))


def test_an_absolute_accuracy_threshold_holds_the_test_sets_sampling_error():
    # seeds 0.978, 0.979, 0.980 on 1,000 test digits: the seeds' t half-width 4.3027 x 0.001 / sqrt(3) = 0.002484
    # and the test set's 1.96 x sqrt(0.979 x 0.021 / 1000) = 0.008887 add as a root-sum-square: 0.009228
    interval = with_test_set_error([0.978, 0.979, 0.980], 1000)
    half = math.hypot(T_975_DF2 * 0.001 / math.sqrt(3), 1.959964 * math.sqrt(0.979 * 0.021 / 1000))
    assert half == pytest.approx(0.009228, abs=1e-6)
    assert (interval.low, interval.high) == pytest.approx((0.979 - half, 0.979 + half), abs=1e-7)
    assert accuracy_at_least("acc", [0.980, 0.981, 0.982], 0.97, 1000).outcome is True  # low 0.97218
    assert accuracy_at_least("acc", [0.975, 0.976, 0.977], 0.97, 1000).outcome is None  # the plain t-interval: True
    assert with_test_set_error([0.98], 1000).low == -math.inf  # one seed: no spread between seeds
    # seeds that disagree: never narrower than the seeds-only t-interval (a Welch-Satterthwaite t with df ~2.3
    # on the summed variances would be, and would cover less than 95% with three seeds)
    spread = [0.90, 0.95, 0.99]
    seeds_only = mean_interval(spread)
    wide = with_test_set_error(spread, 1000)
    assert wide.high - wide.low > seeds_only.high - seeds_only.low


def test_a_log_scale_p_value_is_the_one_sample_t_test_of_the_logs():
    ratios = [1.5, 2.5, 4.0, 3.0]
    test = log_at_least("ratio", ratios, 1.2, effect=Effect(1.8, "hand"))
    expected = sps.ttest_1samp(np.log(ratios), math.log(1.8), alternative="less").pvalue
    assert test.p_refute == pytest.approx(expected, rel=1e-9)


def test_holm_uses_the_level_of_the_look_whatever_the_order_of_the_tests():
    from paperzoo.criteria import every_seed
    from paperzoo.stats import at_confidence

    level = pocock_level((3, 5, 8))
    with at_confidence(level):
        exact = every_seed("diff", [0.0, 0.0, 0.0], "<=", 1e-5)
        p = (1 - level) / 2 * 0.8  # fails alone at the look's level, not after Holm over two tests
        estimate = sps.t.ppf(p, 100) * 0.45  # a t-test whose refuting p-value is p
        failing = criteria.Test("t", Interval(estimate, estimate - 3.0, estimate + 0.1, 101, "t", level, 0.45, 100.0),
                                ">", 0.0, effect=Effect(0.0, "hand"))
        assert failing.p_refute == pytest.approx(p)
        assert decide(exact, failing).outcome is None and decide(failing, exact).outcome is None
        assert exact.interval.confidence == pytest.approx(level)


def test_the_plateau_rule_judges_the_seeds_mean_trend_on_its_interval():
    rule = plateau("both models", ("a", "b"))
    assert rule.evaluate({"a": [0.9, 1.0, 1.1], "b": [-0.1, 0.0, 0.1]})["held"] is True  # [0.75, 1.25] <= 2
    assert rule.evaluate({"a": [3.0, 3.1, 3.2], "b": [0.0, 0.0, 0.0]})["held"] is False  # [2.75, 3.45] > 2
    assert rule.evaluate({"a": [0.5, 2.0, 3.5], "b": [0.0, 0.0, 0.0]})["held"] is None  # straddles 2
    # one slow seed no longer fails the rule on its own (the mean of [0.5, 0.6, 2.4] is 1.17 [-1.4, 3.7]: undecided)
    assert rule.evaluate({"a": [0.5, 0.6, 2.4], "b": [0.0, 0.0, 0.0]})["held"] is None
    assert "per 30% of training" in rule.text
    with pytest.raises(ValueError, match="needs its reason"):
        plateau("x", ("a",), points=3.0)
    assert "(noisy metric)" in plateau("x", ("a",), points=3.0, why="noisy metric").text


def test_the_plateau_statistic_agrees_with_numpy_polyfit():
    steps = list(range(10, 101, 10))
    values = [0.3, 0.5, 0.6, 0.66, 0.7, 0.71, 0.73, 0.72, 0.74, 0.745]
    second_half = [(s, v) for s, v in zip(steps, values) if s >= 50]
    slope = np.polyfit([s for s, _ in second_half], [v for _, v in second_half], 1)[0]
    assert late_trend(steps, values) == pytest.approx(100 * slope * 0.3 * 100)


def test_effects_and_kinds_are_validated():
    with pytest.raises(ValueError, match="source"):
        Effect(0.1, " ")
    with pytest.raises(ValueError, match="size >= 0"):
        Effect(-0.1, "hand")
    with pytest.raises(ValueError, match="wrong side"):
        criteria.Test("x", Interval(0.0, -1.0, 1.0, 3, "t"), ">", 0.5, refute_at=0.1)
    with pytest.raises(ValueError, match="kind must be one of"):
        _toy(lambda c: Measurement({}), lambda m: True).__class__(
            id="toy.k", paper="p", statement="s", paper_reports="r", criterion="c", run=lambda c: Measurement({}),
            check=lambda m: True, kind="finding")
    with pytest.raises(ValueError, match="looks"):
        _toy(lambda c: Measurement({}), lambda m: True, looks={"quick": (5, 3)})


def test_the_fingerprint_follows_the_protocol_and_lands_in_the_results(tmp_path):
    claim = _toy(lambda c: Measurement({"x": 2}), lambda m: m["x"] > 1)
    assert fingerprint(claim) == fingerprint(replace(claim))
    assert fingerprint(replace(claim, criterion="x > 2")) != fingerprint(claim)
    assert fingerprint(replace(claim, looks={"quick": (3, 5)})) != fingerprint(claim)
    assert fingerprint(replace(claim, kind="check")) != fingerprint(claim)
    result = run_claim(claim, RunContext("smoke", tmp_path))
    assert (result.kind, result.fingerprint) == ("empirical", fingerprint(claim))
