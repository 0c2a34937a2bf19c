"""`paperzoo train multiview_ssl` on the engine: a tiny run on real digits, the composite loss, config errors, and
2-rank DDP against one process on the union batch."""

import dataclasses
import json

import pytest
import torch

from paperzoo.config import apply_overrides, to_dict
from paperzoo.engine.trainer import TrainConfig, Trainer
from paperzoo.errors import ConfigError
from paperzoo.multigpu.launch import spawn_group
from paperzoo.multiview_ssl.methods import TRAIN_METHODS, MultiviewSSL, MultiviewSSLConfig
from multiview_ssl_helpers import identical_views_config, train_method_worker


def _tiny(steps: int, log_every: int, **kw) -> MultiviewSSLConfig:
    return MultiviewSSLConfig(channels=8, feature_dim=32, **kw, train=TrainConfig(
        steps=steps, batch_size=64, lr=2e-3, log_every=log_every, progress=False, device="cpu"))


def test_a_tiny_run_lowers_the_contrastive_loss_and_writes_its_outputs(tmp_path):
    cfg = _tiny(steps=40, log_every=5)
    spec = TRAIN_METHODS["multiview_ssl"]
    assert spec.config is MultiviewSSLConfig and spec.build is MultiviewSSL
    result = Trainer(spec.build(cfg), cfg.train, out_dir=tmp_path,
                     run_config={"method": "multiview_ssl", **to_dict(cfg)}).fit()
    _, losses = result.history.series("train", "loss")
    assert len(losses) == 8 and sum(losses[-2:]) / 2 < 0.9 * losses[0], losses
    assert losses[0] == pytest.approx(result.history.series("train", "l_cl")[1][0])  # no predictive terms
    assert losses[0] < torch.log(torch.tensor(2 * 64 - 1.0)).item() + 0.5  # near log(2B-1) at the start
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["method"] == "multiview_ssl" and config["views"]["crop_scale"] == [0.6, 1.0]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == list(range(5, 41, 5))
    assert (tmp_path / "checkpoints" / "last.safetensors").exists()
    probes = {"knn1_acc", "knn_acc", "linear_acc"}
    assert set(result.final) == probes | {f"pixels_{k}" for k in probes}
    assert all(0.1 < v <= 1 for v in result.final.values())
    # raw pixels of MNIST digits are linearly separable far above chance: the baseline is a real one
    assert result.final["pixels_linear_acc"] > 0.8


def test_the_composite_loss_is_the_weighted_sum_of_its_logged_terms_and_every_parameter_learns():
    cfg = _tiny(steps=2, log_every=1, lambda_fp=0.5, lambda_ip=2.0)
    result = Trainer(MultiviewSSL(cfg), cfg.train).fit()
    series = {k: result.history.series("train", k)[1] for k in ("loss", "l_cl", "l_fp", "l_ip")}
    for i in range(2):
        expected = series["l_cl"][i] + 0.5 * series["l_fp"][i] + 2.0 * series["l_ip"][i]
        assert series["loss"][i] == pytest.approx(expected, rel=1e-5)
    assert 0.5 < series["l_fp"][0] < 0.8  # BCE of untrained logits near 0 on pixels in [0, 1]
    method = MultiviewSSL(cfg)
    for lambdas, heads in (((0.5, 2.0), {"encoder", "decoder", "predictor"}), ((0.0, 0.0), {"encoder"})):
        method.cfg = dataclasses.replace(cfg, lambda_fp=lambdas[0], lambda_ip=lambdas[1])
        model = method.build_model()
        method.training_step(model, (method.data.train_x[:16], method.data.train_y[:16])).loss.backward()
        assert {n.split(".")[0] for n, _ in model.named_parameters()} == heads
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())  # DDP needs this


@pytest.mark.parametrize("override, message", [
    ("temperature=0", "temperature must be > 0"),
    ("lambda_ip=-1", "must be >= 0"),
    ("views.crop_scale=0.5,1.5", "views.crop_scale must be"),
    ("train.batch_size=1", "needs negatives"),
    ("knn_k=4001", "exceeds the 4000 training images"),
])
def test_config_mistakes_are_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        MultiviewSSL(apply_overrides(MultiviewSSLConfig(), [override]))
    with pytest.raises(ConfigError, match="fashion-mnist"):
        apply_overrides(MultiviewSSLConfig(), ["dataset=cifar"])


def test_two_rank_ddp_equals_one_process_on_the_union_batch():
    """With the global-batch InfoNCE, 2 ranks x 8 images take the same SGD steps as 1 process x 16 images."""
    ranks = spawn_group(train_method_worker, world_size=2, args=(8,), timeout_s=120)
    union_cfg, half_cfg = identical_views_config(16), identical_views_config(8)
    union = Trainer(MultiviewSSL(union_cfg), union_cfg.train).fit().model
    union = torch.cat([p.detach().reshape(-1) for p in union.parameters()])
    half = Trainer(MultiviewSSL(half_cfg), half_cfg.train).fit().model
    half = torch.cat([p.detach().reshape(-1) for p in half.parameters()])
    assert ranks[0] == ranks[1]
    assert (torch.tensor(ranks[0]) - union).abs().max() < 1e-5
    assert (half - union).abs().max() > 1e-3  # the comparison can tell a batch of 8 from 16
