"""The reward/KL frontier comparison of `dpo.frontier` (Rafailov et al. 2023, Figure 2 left) on hand-made checkpoints
whose answer is known (the claim itself runs at smoke preset in test_dpo_training.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from paperzoo.claims import Measurement, RunContext, run_claim
from paperzoo.dpo.experiments import CLAIMS, frontier_values
from paperzoo.dpo.frontier import (COMPLETIONS_PER_STEP, DPO_PAIRS_PER_STEP, MATCHED_KLS, RL_PROMPTS_PER_STEP,
                                   RL_SAMPLES, SCALES, compare_frontiers, frontier, frontier_reward, thin)

SFT = (0.0, 4.0)
FRONTIER = next(c for c in CLAIMS if c.id == "dpo.frontier")


PLATEAUED = {"rm_late_trend_pts": 0.5, "dpo_late_trend_pts": -0.5, "rlhf_late_trend_pts": 1.0}


def _judge(tmp_path: Path, seeds: list[tuple[list, list]], trends: dict = PLATEAUED):
    """The claim's preconditions and criterion on hand-made (DPO, RLHF) checkpoints, one pair of lists per seed, and
    the same late trends of the reward model and the policies on every seed."""
    rows = [{**frontier_values(dpo, rlhf, SFT)[1], **trends} for dpo, rlhf in seeds]
    per_seed = {key: [row[key] for row in rows] for key in rows[0]}
    claim = dataclasses.replace(FRONTIER, run=lambda ctx: Measurement({}, per_seed=per_seed))
    return run_claim(claim, RunContext("quick", tmp_path, seeds=list(range(len(seeds)))))


def _comparable(dpo: list, rlhf: list) -> bool | None:
    """The claim's precondition on the overlap, on three seeds with the same hand-made checkpoints."""
    values = frontier_values(dpo, rlhf, SFT)[1]
    return FRONTIER.preconditions[0].evaluate({k: [v] * 3 for k, v in values.items()})["held"]


def _shifted(points: list, dk: float = 0.0, dr: float = 0.0) -> list:
    return [(k + dk, r + dr) for k, r in points]


RLHF = [(1.0, 5.0), (2.0, 6.0), (4.0, 7.0), (8.0, 8.0), (3.0, 5.5), (6.0, 6.0)]  # the last two are dominated


def test_frontier_is_the_pareto_front_linear_between_points_and_flat_after():
    front = frontier(RLHF, SFT)
    assert front == [SFT, (1.0, 5.0), (2.0, 6.0), (4.0, 7.0), (8.0, 8.0)]
    assert frontier_reward(front, 3.0) == pytest.approx(6.5)
    assert frontier_reward(front, 20.0) == 8.0  # the best reward reached, at any larger KL budget
    assert frontier([(1.0, 3.0), (2.0, 3.5)], SFT) == [SFT]  # checkpoints below the start never beat it


def test_a_dominating_frontier_gives_positive_differences_at_every_matched_kl():
    c = compare_frontiers(_shifted(RLHF, dr=1.0), RLHF, SFT)
    assert (c.low, c.high, c.overlap_fraction, c.checkpoints_inside, c.checkpoints_compared) == (1.0, 8.0, 1.0, (6, 6), 6)
    assert len(c.kls) == MATCHED_KLS and c.low < c.kls[0] and c.kls[-1] < c.high  # bin centres, ends left out
    assert c.gaps == pytest.approx([1.0] * MATCHED_KLS) and _comparable(_shifted(RLHF, dr=1.0), RLHF)
    assert compare_frontiers(RLHF, _shifted(RLHF, dr=1.0), SFT).gaps == pytest.approx([-1.0] * MATCHED_KLS)


def test_the_comparison_holds_at_matched_kl_not_at_the_checkpoints_own_kls():
    """Same curve, DPO's checkpoints at other KLs: no difference between the frontiers (linear pieces)."""
    line = [(k, 4.0 + 0.5 * k) for k in (1.0, 3.0, 5.0, 7.0, 9.0)]
    c = compare_frontiers(_shifted(line, dk=0.5, dr=0.25), line, SFT)
    assert c.gaps == pytest.approx([0.0] * MATCHED_KLS, abs=1e-12)


def test_crossing_frontiers_have_differences_of_both_signs():
    dpo = [(1.0, 7.0), (8.0, 8.0)]  # ahead at low KL, behind at high KL
    rlhf = [(1.0, 5.0), (8.0, 10.0)]
    c = compare_frontiers(dpo, rlhf, SFT)
    assert c.gaps[0] > 0 > c.gaps[-1]
    assert c.gaps == pytest.approx([2.0 - 4.0 * (k - 1.0) / 7.0 for k in c.kls])


def test_disjoint_or_narrow_kl_ranges_are_not_comparable():
    apart = [(10.0, 9.0), (12.0, 10.0), (15.0, 11.0)]
    disjoint = compare_frontiers(apart, RLHF, SFT)
    assert disjoint.overlap_fraction == 0.0 and disjoint.kls == () and _comparable(apart, RLHF) is False
    assert frontier_values(apart, RLHF, SFT)[1]["reward_gap_mean"] is None
    narrow = [(7.0, 9.0), (9.0, 9.5), (12.0, 10.0)]  # overlap [7, 8] of [1, 12]
    assert compare_frontiers(narrow, RLHF, SFT).overlap_fraction == pytest.approx(1 / 11)
    assert _comparable(narrow, RLHF) is False
    few = [(1.0, 6.0), (8.0, 9.0), (8.5, 9.0)]  # a wide overlap, [1, 8] of [1, 8.5], with 2 DPO checkpoints in it
    c = compare_frontiers(few, RLHF, SFT)
    assert c.overlap_fraction == pytest.approx(7.0 / 7.5) and (c.checkpoints_inside, c.checkpoints_compared) == ((2, 6), 2)
    assert _comparable(few, RLHF) is False and _comparable([*few, (4.0, 8.0)], RLHF) is True


def test_the_overlap_fraction_is_judged_on_the_seeds_mean_not_on_every_seed():
    """One seed's narrower overlap (0.45 of the union) does not make three seeds incomparable; their mean decides."""
    wide = [(0.5, 5.0), (4.5, 6.0), (5.5, 7.0), (7.0, 7.5), (9.0, 8.0)]
    narrow = [(4.0, 6.0), (5.0, 7.0), (6.0, 7.5), (8.0, 9.5)]
    assert compare_frontiers(narrow, wide, SFT).overlap_fraction == pytest.approx(4.0 / 8.5)  # below 0.5 alone
    rows = [frontier_values(wide, RLHF, SFT)[1], frontier_values(wide, RLHF, SFT)[1],
            frontier_values(narrow, wide, SFT)[1]]
    fractions = [row["overlap_fraction"] for row in rows]
    assert min(fractions) < 0.5 < sum(fractions) / 3
    measured = {k: [row[k] for row in rows] for k in rows[0]}
    held = FRONTIER.preconditions[0].evaluate(measured)
    assert held["held"] is None  # three seeds' interval straddles 0.5: undecided, not refuted by the one seed
    assert FRONTIER.preconditions[0].evaluate({k: v * 3 for k, v in measured.items()})["held"] is True


def test_thinning_keeps_evenly_spaced_checkpoints_in_kl_order_blind_to_reward():
    points = [(float(k), 10.0 - k) for k in (5, 1, 3, 2, 4)]
    assert thin(points, 3) == [(1.0, 9.0), (3.0, 7.0), (5.0, 5.0)]
    assert thin(points, 5) == sorted(points) and thin(points, 9) == sorted(points) and thin(points, 0) == []


def test_both_methods_count_the_same_checkpoints_inside_the_overlap():
    """DPO's four checkpoints inside [1, 4] against RLHF's two: DPO's best one, at KL 2, is thinned away (its KL
    order keeps 1 and 4), so its frontier is the line between (1, 5) and (4, 6); outside points stay."""
    dpo = [(1.0, 5.0), (2.0, 9.0), (3.0, 5.5), (4.0, 6.0)]
    rlhf = [(0.5, 4.5), (1.0, 5.0), (4.0, 6.0), (6.0, 7.0)]
    c = compare_frontiers(dpo, rlhf, SFT)
    assert (c.low, c.high, c.checkpoints_inside, c.checkpoints_compared) == (1.0, 4.0, (4, 2), 2)
    assert c.gaps == pytest.approx([0.0] * MATCHED_KLS)  # without thinning DPO would lead by up to 3.5 at KL 2
    unthinned = [frontier_reward(frontier(dpo, SFT), k) - frontier_reward(frontier(rlhf, SFT), k) for k in c.kls]
    assert max(unthinned) > 3.0


def test_dpo_and_rlhf_score_the_same_completions_per_step_over_the_same_steps():
    assert DPO_PAIRS_PER_STEP * 2 == RL_PROMPTS_PER_STEP * RL_SAMPLES == COMPLETIONS_PER_STEP
    assert {"policy_steps"} <= {f.name for f in dataclasses.fields(SCALES["quick"])}
    assert not {"dpo_steps", "rl_steps"} & {f.name for f in dataclasses.fields(SCALES["quick"])}


def test_claim_verdicts_on_hand_made_seeds(tmp_path: Path):
    dominating = _judge(tmp_path / "a", [(_shifted(RLHF, dr=d), RLHF) for d in (0.9, 1.0, 1.2)])
    assert dominating.verdict == "reproduced", dominating.reason
    assert [t["outcome"] for t in dominating.tests] == [True, True]
    behind = _judge(tmp_path / "b", [(_shifted(RLHF, dr=d), RLHF) for d in (-0.9, -1.0, -1.2)])
    assert behind.verdict == "not_reproduced", behind.reason
    crossing = [([(1.0, 7.0 + d), (4.0, 8.0), (8.0, 8.5)], [(1.0, 5.0), (4.0, 6.5), (8.0, 9.5)]) for d in (0, .1, .2)]
    crossed = _judge(tmp_path / "c", crossing)  # ahead on average, behind at the largest KLs
    assert crossed.verdict == "not_reproduced" and [t["outcome"] for t in crossed.tests] == [True, False]
    noisy = _judge(tmp_path / "d", [(_shifted(RLHF, dr=d), RLHF) for d in (1.0, -0.5, 0.2)])
    assert noisy.verdict == "inconclusive" and noisy.reason.startswith("the interval straddles")
    apart = _judge(tmp_path / "e", [([(10.0, 9.0), (12.0, 10.0), (15.0, 11.0)], RLHF)] * 3)
    assert apart.verdict == "inconclusive" and "precondition not met: the frontiers are comparable" in apart.reason
    assert apart.tests == [] and apart.summary["overlap_fraction"]["mean"] == 0.0
    untrained = _judge(tmp_path / "f", [(_shifted(RLHF, dr=1.0), _shifted(RLHF, dr=-d)) for d in (3.5, 3.6, 3.7)])
    assert untrained.verdict == "inconclusive" and "RLHF is a trained baseline" in untrained.reason


def test_a_reward_model_or_policy_still_improving_keeps_the_claim_from_deciding(tmp_path: Path):
    dominating = [(_shifted(RLHF, dr=d), RLHF) for d in (0.9, 1.0, 1.2)]
    rising_rm = _judge(tmp_path / "a", dominating, {**PLATEAUED, "rm_late_trend_pts": 6.0})
    assert rising_rm.verdict == "inconclusive" and "the reward model reached a plateau" in rising_rm.reason
    rising_rlhf = _judge(tmp_path / "b", dominating, {**PLATEAUED, "rlhf_late_trend_pts": 5.0})
    assert rising_rlhf.verdict == "inconclusive" and "rlhf_late_trend_pts = 5 [5, 5] <= 2: fails" in rising_rlhf.reason



def test_a_policys_reward_trend_is_in_points_of_the_vowel_fraction():
    """Rewards rising by 1.6 vowels per 30% of 100 steps over the second half: 10 points of the vowel fraction
    (1.6 / 16), the unit of the shared plateau rule."""
    from types import SimpleNamespace

    from paperzoo.dpo.experiments import _reward_trend
    from paperzoo.engine.metrics import MetricsLogger

    history = MetricsLogger(None)
    for step in range(10, 101, 10):
        history.log(step, "eval", {"task_reward": 5.0 + 1.6 * step / 30})
    pipe = SimpleNamespace(task=SimpleNamespace(completion_len=16))
    assert _reward_trend(pipe, SimpleNamespace(history=history)) == pytest.approx(10.0)
