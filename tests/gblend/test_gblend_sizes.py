"""The two declared data sizes (the full-data size's epochs and window by the same-steps rule), the verdict the
claims' rule gives at the reported size, and the held-out trend behind the plateau precondition."""

import pytest

from paperzoo.criteria import Effect, Precondition, at_least, beats
from paperzoo.gblend.experiments import LONG_REGIME_SIZE, REGIME_SIZE, Runs, _val_trend
from paperzoo.gblend.method import Checkpoint
from paperzoo.gblend.model import FUSED
from paperzoo.gblend.sizes import Size, judge_as_claim, same_steps


def test_full_data_takes_the_judged_sizes_steps_in_whole_epochs():
    assert (REGIME_SIZE.steps_per_epoch, REGIME_SIZE.steps) == (6, 480)  # 800 // 128 = 6 steps, x 80 epochs
    full = same_steps(REGIME_SIZE, 3200)
    # 3,200 // 128 = 25 steps an epoch: ceil(480 / 25) = 20 epochs (500 steps); window 60 steps / 25 = 2.4 -> 2
    assert (full.train_examples, full.epochs, full.super_epoch, full.steps) == (3200, 20, 2, 500)


def test_standard_trains_the_regime_size_twice_as_long_with_the_same_window():
    assert (LONG_REGIME_SIZE.train_examples, LONG_REGIME_SIZE.super_epoch, LONG_REGIME_SIZE.steps) == (800, 10, 960)
    full = same_steps(LONG_REGIME_SIZE, 3200)
    # ceil(960 / 25) = 39 epochs (975 steps); the window is still 60 steps -> 2 epochs
    assert (full.epochs, full.super_epoch, full.steps) == (39, 2, 975)


def test_same_steps_keeps_a_window_of_at_least_one_epoch_within_the_run():
    small = Size(256, 8, 2)  # 2 steps an epoch, 16 steps, a window of 4 steps
    assert same_steps(small, 512) == Size(512, 4, 1)  # 4 steps an epoch: 4 epochs, window 4 steps = 1 epoch
    assert same_steps(Size(256, 2, 1), 3200) == Size(3200, 1, 1)  # 4 steps in one epoch of 25; window not 0
    with pytest.raises(ValueError, match="no batch"):
        same_steps(REGIME_SIZE, 100)


GAIN = Effect(0.01, "a test's bound")
ABOVE_CHANCE = Precondition("above chance", lambda m: at_least("accuracy", m["acc"], 0.2))


def _check(m):
    return beats("a - b", m["a"], m["b"], effect=GAIN)


def test_reported_size_is_judged_by_the_claims_own_rule():
    held = judge_as_claim({"acc": [0.5, 0.52, 0.51], "a": [0.60, 0.62, 0.61], "b": [0.50, 0.51, 0.50]}, _check,
                          (ABOVE_CHANCE,))
    assert held["verdict"] == "reproduced" and held["preconditions"][0]["held"] is True
    assert held["tests"][0]["outcome"] is True and held["tests"][0]["smallest_effect"] == 0.01
    refuted = judge_as_claim({"acc": [0.5, 0.52, 0.51], "a": [0.40, 0.43, 0.39], "b": [0.50, 0.51, 0.50]}, _check,
                             (ABOVE_CHANCE,))
    assert refuted["verdict"] == "not_reproduced"
    # a precondition not shown decides before the criterion is read: inconclusive, no tests
    unmet = judge_as_claim({"acc": [0.1, 0.12, 0.11], "a": [0.60, 0.62, 0.61], "b": [0.50, 0.51, 0.50]}, _check,
                           (ABOVE_CHANCE,))
    assert unmet["verdict"] == "inconclusive" and unmet["tests"] == []
    assert unmet["reason"].startswith("precondition not met: above chance")


def _history(val_acc: list[float], head: str) -> list[Checkpoint]:
    return [Checkpoint(i, {}, {}, {head: v}, {}, {}) for i, v in enumerate(val_acc)]


def test_val_trend_reads_the_prediction_head_and_early_stop_reads_the_naive_run():
    runs = Runs(epochs=10, super_epoch=2, train_examples=800)
    # image held-out accuracy rises 1 point an epoch throughout: over the second half (epochs 5-10) the slope is
    # 0.01 an epoch, i.e. 100 x 0.01 x 0.3 x 10 epochs = 3 points per 30% of training
    runs.history["image"] = [_history([0.5 + 0.01 * i for i in range(11)], "image")]
    runs.history["naive"] = [_history([0.6] * 6 + [0.6 - 0.02 * i for i in range(1, 6)], FUSED)]
    assert _val_trend(runs, "image") == [pytest.approx(3.0)]
    naive = _val_trend(runs, "naive")[0]
    assert naive < 0 and _val_trend(runs, "early_stop") == [naive]
