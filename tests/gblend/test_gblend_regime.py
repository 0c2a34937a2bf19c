"""The regime precondition (naive fused OGR > best unimodal OGR) on hand-made loss curves, and the criterion of
claim 2 on hand-made numbers."""

import math

import pytest
import torch

from paperzoo.gblend.data import AVDigits, AVDigitsConfig, Split
from paperzoo.gblend.experiments import REGIME, Runs, _check_cause, _evidence, _first_train_examples, _gap_growth
from paperzoo.gblend.method import Checkpoint
from paperzoo.gblend.model import FUSED


def _history(head: str, train: list[float], val: list[float]) -> list[Checkpoint]:
    """One run's checkpoints with the given per-epoch train / held-out losses of `head`."""
    return [Checkpoint(i, {head: t}, {head: v}, {}, {}, {}) for i, (t, v) in enumerate(zip(train, val))]


def _runs(naive_end: list[tuple[float, float]], image_end: list[tuple[float, float]]) -> Runs:
    """Three seeds: every model starts at L^T = L^V = 2.3 and ends at the given (L^T, L^V); the image model is the
    best single modality (higher test accuracy than audio)."""
    runs = Runs(epochs=2, super_epoch=1, train_examples=800)
    runs.history["naive"] = [_history(FUSED, [2.3, 1.0, t], [2.3, 1.5, v]) for t, v in naive_end]
    runs.history["image"] = [_history("image", [2.3, 1.0, t], [2.3, 1.5, v]) for t, v in image_end]
    runs.history["audio"] = [_history("audio", [2.3, 1.0, 0.0], [2.3, 2.0, 2.2]) for _ in image_end]
    runs.test_acc = {"naive": [0.8] * 3, "image": [0.85] * 3, "audio": [0.3] * 3}
    return runs


# naive fused: dG = 2.3 - 0.8 = 1.5, dO = 0.8 - 0.0 = 0.8 -> OGR 0.53 (varied a little over seeds)
NAIVE = [(0.0, 0.8), (0.01, 0.85), (0.02, 0.75)]
# image: dG = 1.8, dO = 0.2 -> OGR 0.11
IMAGE = [(0.3, 0.5), (0.32, 0.5), (0.28, 0.52)]


def test_regime_holds_when_the_naive_model_overfits_more():
    values, per_seed = _evidence(_runs(NAIVE, IMAGE), ["naive"])
    assert values["best_unimodal"] == "image"
    assert per_seed["naive_fused_ogr"][0] == pytest.approx(0.8 / 1.5)
    assert per_seed["best_unimodal_ogr"][0] == pytest.approx(0.2 / 1.8)
    assert REGIME.evaluate(per_seed)["held"] is True


def test_regime_fails_when_the_single_modality_overfits_more():
    _, per_seed = _evidence(_runs(IMAGE, NAIVE), ["naive"])  # the curves swapped
    assert REGIME.evaluate(per_seed)["held"] is False


def test_regime_is_undecided_when_seeds_disagree():
    _, per_seed = _evidence(_runs([NAIVE[0], IMAGE[1], NAIVE[2]], [IMAGE[0], NAIVE[1], IMAGE[2]]), ["naive"])
    assert REGIME.evaluate(per_seed)["held"] is None


def test_gap_growth_is_the_change_of_val_minus_train():
    history = _history("fused@audio", [2.3, 1.0, 0.1], [2.4, 1.8, 1.9])
    assert _gap_growth(history, "fused@audio") == pytest.approx((1.9 - 0.1) - (2.4 - 2.3))


def _cause(ratio, fast_share, slow_share) -> dict:
    return {"ogr_ratio_fast_over_slow": ratio, "naive_fast_share_gap_growth": fast_share,
            "naive_slow_share_gap_growth": slow_share}


def test_cause_needs_both_unlike_modalities_and_the_fused_model_overfitting_through_the_fast_one():
    assert _check_cause(_cause([30.0, 25.0, 40.0], [1.2, 1.0, 1.4], [0.3, 0.2, 0.4])).outcome is True
    # unlike modalities, but the naive model's gap grows through the slow modality's share: refuted
    assert _check_cause(_cause([30.0, 25.0, 40.0], [0.3, 0.2, 0.4], [1.2, 1.0, 1.4])).outcome is False
    # the fused model overfits through the fast one, but the modalities hardly differ: refuted
    assert _check_cause(_cause([1.1, 1.2, 1.0], [1.2, 1.0, 1.4], [0.3, 0.2, 0.4])).outcome is False
    # seeds disagree on which share overfits more: undecided
    assert _check_cause(_cause([30.0, 25.0, 40.0], [1.2, 0.1, 1.4], [0.3, 1.0, 0.4])).outcome is None


def test_first_train_examples_keeps_the_other_splits():
    split = lambda n: Split(torch.arange(n).float(), torch.zeros(n), torch.arange(n) % 10)  # noqa: E731
    data = AVDigits(split(20), split(5), split(7), AVDigitsConfig())
    small = _first_train_examples(data, 8)
    assert len(small.train) == 8 and small.train.label.tolist() == list(range(8))
    assert small.val is data.val and small.test is data.test


def test_the_ogr_ratio_is_judged_on_the_log_scale():
    """A heavy-tailed ratio: [4, 8, 16] has the geometric mean 8 (arithmetic 9.33) and the interval
    exp(mean log +- t(0.975, 2) sd / sqrt(3)) = exp(ln 8 +- 4.3027 x ln 2 / sqrt(3)) = [1.430, 44.76]: it reaches
    below 2, so the test is undecided, never refuted."""
    decision = _check_cause(_cause([4.0, 8.0, 16.0], [1.2, 1.0, 1.4], [0.3, 0.2, 0.4]))
    ratio = decision.tests[0].interval
    half = 4.302652729911275 * math.log(2) / math.sqrt(3)
    assert ratio.estimate == pytest.approx(8.0)
    assert (ratio.low, ratio.high) == pytest.approx((8 * math.exp(-half), 8 * math.exp(half)))
    assert ratio.low == pytest.approx(1.430, abs=1e-3) and decision.tests[0].outcome is None
