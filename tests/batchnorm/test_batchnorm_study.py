"""The optimiser study helper, the small networks, and the claims at the smoke preset."""

from pathlib import Path

import pytest
import torch

from paperzoo.batchnorm import BatchNorm1d, Curve, mlp, optimiser_study, small_cnn, train_sgd
from paperzoo.batchnorm.experiments import CLAIMS
from paperzoo.claims import RunContext, run_claim


def test_curve_by_hand():
    curve = Curve(samples=[0, 10, 20, 30, 40], seconds=[0, 1, 2, 3, 4], loss=[2.0, 1.5, 1.0, 1.2, 0.8])
    assert curve.samples_to_reach(1.0) == 20
    assert curve.samples_to_reach(0.1) == float("inf")
    assert curve.noise() == pytest.approx(torch.tensor([0.2, -0.4]).std().item())


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


def test_claims_run_at_smoke(tmp_path: Path):
    memo: dict = {}
    for claim in CLAIMS:
        result = run_claim(claim, RunContext("smoke", tmp_path / claim.id, memo=memo))
        assert result.verdict in ("reproduced", "not_reproduced"), result.message
