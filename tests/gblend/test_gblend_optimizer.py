"""Why every strategy trains with SGD: a constant loss weight scales an SGD step, and Adam cancels it.

G-Blend's weights w_k (and OGM-GE's factors k_u) are meant to set step sizes. A head trained only by w_k L_k is the
plain case: with our training step and the claims' optimizer its update must scale with w_k; with Adam the update
would be the same whatever w_k (which is why the strategies no longer train with Adam).
"""

from dataclasses import replace

import pytest
import torch

from paperzoo.engine.trainer import Trainer
from paperzoo.gblend.data import AVDigits, AVDigitsConfig, Split
from paperzoo.gblend.experiments import _train_config
from paperzoo.gblend.method import LR, MultiModalConfig, MultiModalMethod

N = 16


def _data() -> AVDigits:
    g = torch.Generator().manual_seed(0)

    def split():
        return Split(torch.rand(N, 1, 28, 28, generator=g), torch.randn(N, 1, 40, 51, generator=g),
                     torch.arange(N) % 10)

    return AVDigits(split(), split(), split(), AVDigitsConfig())


def _first_step(w_image: float, optimizer: str) -> dict[str, torch.Tensor]:
    """{parameter: change} after one step of offline G-Blend with weights (w_image, w_audio, w_fused) = (w_image,
    0.5, 0.5), with the claims' training config (one epoch of one batch) and `optimizer`."""
    train = replace(_train_config(1, seed=0, batch=N, n_train=N), optimizer=optimizer)
    cfg = MultiModalConfig(blend="offline", weights=(w_image, 0.5, 0.5), hidden=16, dim=8, train_eval_size=N,
                           train=train)
    method = MultiModalMethod(cfg, _data())
    start = {}
    build = method.build_model

    def build_and_keep():
        model = build()
        start.update({name: p.detach().clone() for name, p in model.named_parameters()})
        return model

    method.build_model = build_and_keep
    model = Trainer(method, cfg.train).fit().model
    return {name: p.detach() - start[name] for name, p in model.named_parameters()}


def test_the_claims_train_with_sgd_and_momentum():
    for cfg in (_train_config(80, seed=0, n_train=800), MultiModalConfig().train):
        assert (cfg.optimizer, cfg.momentum, cfg.lr, cfg.schedule) == ("sgd", 0.9, LR, "constant")


def test_sgd_scales_the_step_of_a_head_with_its_weight():
    full, half = _first_step(0.8, "sgd"), _first_step(0.4, "sgd")
    for name in ("heads.image.weight", "heads.image.bias"):  # driven by w_image L_image alone
        assert full[name].abs().sum() > 0
        torch.testing.assert_close(half[name], 0.5 * full[name])
    torch.testing.assert_close(half["heads.audio.weight"], full["heads.audio.weight"])  # w_audio unchanged


def test_adam_would_cancel_that_weight():
    full, half = _first_step(0.8, "adam"), _first_step(0.4, "adam")
    for name in ("heads.image.weight", "heads.image.bias"):
        assert full[name].abs().sum() > 0
        torch.testing.assert_close(half[name], full[name], rtol=1e-3, atol=1e-3 * LR)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_zero_weight_head_does_not_move(optimizer):
    step = _first_step(0.0, optimizer)
    assert step["heads.image.weight"].abs().sum() == 0 and step["heads.audio.weight"].abs().sum() > 0
