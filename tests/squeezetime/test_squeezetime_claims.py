"""The claims at the smoke preset run end to end, and the train method learns."""

import pytest

from paperzoo.claims import RunContext, run_claim
from paperzoo.engine.trainer import TrainConfig, Trainer
from paperzoo.errors import ConfigError
from paperzoo.squeezetime.experiments import CLAIMS, VideoClassification, VideoConfig


def test_claims_run_at_smoke(tmp_path):
    memo = {}
    results = {c.id: run_claim(c, RunContext("smoke", tmp_path / c.id, memo=memo)) for c in CLAIMS}
    assert all(r.verdict != "error" for r in results.values()), {k: r.message for k, r in results.items()}
    size = results["squeezetime.size_and_cost"]
    assert size.verdict == "reproduced" and size.measured["backbone_params"] == 28_887_088
    keeps = results["squeezetime.keeps_time"].measured
    assert keeps["tsn_same_prediction_on_reversed_clip"] == 1.0  # TSN is order-blind by construction
    assert all(p.endswith(".png") for r in results.values() for p in r.figures)


def test_train_method_loss_falls():
    cfg = VideoConfig(n_train=64, n_test=32, train=TrainConfig(steps=20, batch_size=16, lr=3e-3, log_every=5,
                                                                progress=False))
    result = Trainer(VideoClassification(cfg), cfg.train).fit()
    _, losses = result.history.series("train", "loss")
    assert losses[-1] < losses[0]
    assert 0 <= result.final["test_acc"] <= 1


def test_folder_without_root_is_a_config_error():
    with pytest.raises(ConfigError, match="root="):
        VideoClassification(VideoConfig(data="folder"))
