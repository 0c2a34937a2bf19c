"""The optimiser study helper, the small networks, and the claims at the smoke preset."""

from pathlib import Path

import pytest
import torch

from paperzoo.batchnorm import BatchNorm1d, Curve, mlp, optimiser_study, small_cnn, train_sgd, tune_learning_rate
from paperzoo.batchnorm.experiments import CLAIMS
from paperzoo.batchnorm.study import gradient_change, gradient_noise, sampling_noise_ratio, sgd_curve
from paperzoo.claims import RunContext, run_claim


def test_curve_by_hand():
    curve = Curve(samples=[0, 10, 20, 30, 40], seconds=[0, 1, 2, 3, 4], loss=[2.0, 1.5, 1.0, 1.2, 0.8])
    assert curve.samples_to_reach(1.0) == 20
    assert curve.samples_to_reach(0.1) == float("inf")


def test_sampling_noise_ratio_by_hand():
    assert sampling_noise_ratio(1000, 32) == pytest.approx(32 * 999 / 968)  # 33.03
    assert sampling_noise_ratio(10, 1) == 1.0
    assert sampling_noise_ratio(10, 10) == float("inf")  # the whole set: no noise at all


def _linear_problem(n=12):
    torch.manual_seed(0)
    return torch.nn.Linear(3, 2), torch.randn(n, 3), torch.randint(0, 2, (n,))


def test_gradient_noise_is_zero_for_the_whole_set_and_exact_for_single_examples():
    """B = N draws every example: no noise. B = 1: the mean over draws tends to the per-example spread
    (1/N) sum_i ||g_i - g||^2, worked out here by enumerating the N per-example gradients."""
    model, x, y = _linear_problem()
    noise = gradient_noise(model, x, y, (1, 12), draws=3000, generator=torch.Generator().manual_seed(1))
    assert noise[12] == pytest.approx(0.0, abs=1e-12)

    def grad(xs, ys):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(xs), ys).backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])
    full = grad(x, y)
    spread = sum((grad(x[i:i + 1], y[i:i + 1]) - full).pow(2).sum().item() for i in range(12)) / 12
    assert noise[1] == pytest.approx(spread, rel=0.08)  # 3000 draws of 12 values


def test_gradient_noise_follows_the_one_over_b_law_and_leaves_the_model_alone():
    model, x, y = _linear_problem(n=40)
    before = [p.detach().clone() for p in model.parameters()]
    noise = gradient_noise(model, x, y, (1, 8), draws=4000, generator=torch.Generator().manual_seed(2))
    assert noise[1] / noise[8] == pytest.approx(sampling_noise_ratio(40, 8), rel=0.1)  # 8 * 39 / 32 = 9.75
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    with pytest.raises(ValueError, match="batch sizes"):
        gradient_noise(model, x, y, (41,), draws=1, generator=torch.Generator())


def test_sgd_curve_calls_on_epoch_before_training_and_after_each_epoch():
    torch.manual_seed(0)
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    seen = []
    model, _ = sgd_curve(lambda: mlp(inputs=5, hidden=4, layers=1, classes=3), x, y, batch=8, epochs=2, lr=0.1,
                         log_every=8, on_epoch=lambda done, m: seen.append((done, m[1].weight.sum().item())))
    assert [done for done, _ in seen] == [0, 1, 2]
    assert seen[0][1] != seen[-1][1] and seen[-1][1] == model[1].weight.sum().item()


def test_learning_rate_tuning_picks_the_fastest_rate_to_the_target_and_never_a_diverged_one():
    """A separable 2-class problem: a tiny rate cannot reach the target loss in the budget, a huge one diverges
    (NaN), a moderate one reaches it; among rates that reach it the fewest samples win."""
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    build = lambda: mlp(inputs=4, hidden=8, layers=1, classes=2, activation=torch.nn.ReLU)  # noqa: E731
    tuned = tune_learning_rate(build, x, y, batch=8, epochs=10, grid=(1e-4, 0.3, 1.0, 1e6), target=0.3,
                               log_every=8)
    assert tuned.samples_to_target[1e-4] == float("inf") and tuned.samples_to_target[1e6] == float("inf")
    assert tuned.final_loss[1e6] == float("inf")  # diverged: NaN loss counted as infinite
    fastest = min((0.3, 1.0), key=lambda lr: tuned.samples_to_target[lr])
    assert tuned.samples_to_target[fastest] < float("inf") and tuned.lr == fastest


def test_optimiser_study_counts_samples_and_lowers_loss():
    torch.manual_seed(0)
    x, y = torch.randn(40, 5), torch.randint(0, 3, (40,))
    curves = optimiser_study(lambda: mlp(inputs=5, hidden=8, layers=1, classes=3), x, y,
                             {"gd": 40, "sgd": 1, "mini": 8}, epochs=3, lr=0.1, log_every=20)
    for curve in curves.values():
        assert curve.samples[-1] == 120 and curve.loss[-1] < curve.loss[0]
    assert curves["gd"].samples == [0, 40, 80, 120]  # one log per full-batch step
    assert curves["gd"].loss[0] == curves["sgd"].loss[0]  # same initial weights
    with pytest.raises(ValueError, match="batch size"):
        optimiser_study(lambda: mlp(inputs=5, classes=3), x, y, {"big": 41}, epochs=1, lr=0.1, log_every=1)


def test_networks_shapes_and_norm_layers():
    assert mlp(norm="batch")(torch.rand(4, 1, 28, 28)).shape == (4, 10)
    assert sum(isinstance(m, BatchNorm1d) for m in mlp(norm="batch")) == 3
    for norm in ("batch", "group", "none"):
        assert small_cnn(norm)(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_train_sgd_probe_leaves_running_stats_alone():
    torch.manual_seed(0)
    x, y = torch.randn(64, 1, 4, 4), torch.randint(0, 10, (64,))
    model = mlp(inputs=16, norm="batch")
    run = train_sgd(model, x, y, x, y, steps=4, batch=16, lr=0.1, eval_every=2, probe_layer=model[3], probe_x=x)
    assert run.steps == [0, 2, 4] and len(run.probe) == 3 and run.probe[0].shape == (64, 100)
    assert model[2].num_batches_tracked.item() == 4  # only the training steps count


def test_train_sgd_snapshots_are_copies_taken_at_their_steps():
    torch.manual_seed(0)
    x, y = torch.randn(32, 1, 2, 2), torch.randint(0, 10, (32,))
    model = mlp(inputs=4, hidden=5, layers=1)
    start = model[1].weight.detach().clone()
    run = train_sgd(model, x, y, x, y, steps=3, batch=8, lr=0.5, eval_every=3, snapshot_steps=(0, 2))
    assert sorted(run.snapshots) == [0, 2]
    assert torch.equal(run.snapshots[0]["1.weight"], start)  # before any step, and not changed by later steps
    assert not torch.equal(run.snapshots[2]["1.weight"], start)
    assert not torch.equal(run.snapshots[2]["1.weight"], model[1].weight)  # step 3 moved the model on


def test_probe_runs_in_inference_mode_so_bn_does_not_renormalise_it():
    """In train mode a BN layer maps any probe batch to mean beta and spread |gamma| by construction; in inference
    mode (running statistics) the probe's statistics follow the input: a shifted probe gives a shifted output."""
    torch.manual_seed(0)
    x, y = torch.randn(64, 1, 4, 4), torch.randint(0, 10, (64,))
    model = mlp(inputs=16, norm="batch")
    run = train_sgd(model, x, y, x, y, steps=2, batch=16, lr=0.1, eval_every=2, probe_layer=model[3], probe_x=x + 5)
    # BN1d output before the sigmoid, on a probe batch 5 units away from the data: far from mean 0 in eval mode
    assert run.probe[-1].mean(0).abs().mean() > 1.0


def test_gradient_change_is_zero_for_the_first_layer_and_positive_behind_it():
    """Santurkar et al.'s measure on a 2-layer linear net: nothing precedes the first layer, so its gradient does not
    change; the second layer's gradient changes once the first layer took its step (by hand: G2 = dL/dz2 x h^T and
    h = W1 x moves by -lr G1 x)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Linear(5, 3))
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    first = gradient_change(net, net[0], x, y, lr=0.5)
    assert first == {"relative_change": 0.0, "cosine": pytest.approx(1.0)}
    second = gradient_change(net, net[1], x, y, lr=0.5)
    assert second["relative_change"] > 1e-3 and second["cosine"] < 1
    assert gradient_change(net, net[1], x, y, lr=0.0)["relative_change"] == 0.0  # no step, no change
    assert [p.grad for p in net.parameters()] == [None] * 4  # the model itself is untouched


def test_claims_run_at_smoke_over_two_seeds(tmp_path: Path):
    memo: dict = {}
    results = {c.id: run_claim(c, RunContext("smoke", tmp_path / c.id, memo=memo, seeds=[0, 1])) for c in CLAIMS}
    for result in results.values():
        assert result.verdict != "error", result.message
    for claim_id in ("batchnorm.minibatch_sgd", "batchnorm.trains_faster", "batchnorm.less_covariate_shift", "batchnorm.small_batch_limit",
                     "batchnorm.eval_mode_pitfall", "batchnorm.gradient_ics_not_reduced"):
        assert all(len(v) == 2 for v in results[claim_id].per_seed.values()), claim_id
    eval_mode = results["batchnorm.eval_mode_pitfall"].per_seed
    assert eval_mode["changed_by_batch_running_stats"] == [0.0, 0.0]  # eval mode: a prediction ignores its batch
    change = results["batchnorm.gradient_ics_not_reduced"].per_seed
    points = [k for k in change if k.startswith("relative_change_bn_step")]
    assert len(points) == 5 and all(v > 0 for k in points for v in change[k])  # 5 points of training, 2 seeds
    noise = results["batchnorm.minibatch_sgd"].per_seed
    assert all(a > b for a, b in zip(noise["gradient_noise_b1"], noise["gradient_noise_b32"]))
    small = results["batchnorm.small_batch_limit"].per_seed
    assert small["bn_error_b8"] == small["bn_error_b8_equal_steps"]  # the largest batch defines equal steps


def test_small_batch_limit_is_judged_only_at_a_plateau_and_tuned_rates_must_reach_the_target():
    claims = {c.id: c for c in CLAIMS}
    plateau = claims["batchnorm.small_batch_limit"].preconditions[0]
    flat = {f"late_trend_{k}_b{b}_pts": [0.5, 0.6, 0.7] for k in ("bn", "gn") for b in (32, 8, 2)}
    assert plateau.evaluate({**flat, "batch_sizes": [32, 8, 2]})["held"] is True  # mean [0.45, 0.95] <= 2
    rising_middle = {**flat, "late_trend_gn_b8_pts": [3.0, 3.5, 4.0], "batch_sizes": [32, 8, 2]}
    assert plateau.evaluate(rising_middle)["held"] is True  # only the largest and the smallest batch are judged
    rising_small = {**flat, "late_trend_bn_b2_pts": [3.0, 3.5, 4.0], "batch_sizes": [32, 8, 2]}
    assert plateau.evaluate(rising_small)["held"] is False  # still improving
    enough = claims["batchnorm.minibatch_sgd"].preconditions[0]
    assert enough.evaluate({"gd_samples_to_target": [9000, 8000], "minibatch_samples_to_target": [600, 700]})["held"]
    assert not enough.evaluate({"gd_samples_to_target": [9000, float("inf")],
                                "minibatch_samples_to_target": [600, 700]})["held"]
