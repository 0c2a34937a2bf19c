"""OGM-GE coefficients by hand, the gradient modulation, its noise, and scores summed over micro-batches."""

import math

import pytest
import torch

from paperzoo.gblend.loss import blended_loss
from paperzoo.gblend.model import FUSED, MultiModalNet
from paperzoo.gblend.ogm import GradientModulator, ogm_coefficients


def test_coefficients_by_hand():
    # two examples, two classes: audio is confident and right, image is uniform
    y = torch.tensor([0, 1])
    audio = torch.tensor([[math.log(3.0), 0.0], [0.0, math.log(3.0)]])  # p(y) = 0.75 each -> s = 1.5
    image = torch.zeros(2, 2)  # p(y) = 0.5 each -> s = 1.0
    k = ogm_coefficients({"image": image, "audio": audio}, y, alpha=0.5)
    assert k["audio"] == pytest.approx(1 - math.tanh(0.5 * 1.5))  # rho_audio = 1.5 > 1: slowed down
    assert k["image"] == 1.0  # rho_image = 2/3


def test_coefficients_need_two_modalities():
    with pytest.raises(ValueError, match="exactly two"):
        ogm_coefficients({"image": torch.zeros(1, 2)}, torch.tensor([0]), 0.5)


def _backward(net, x, y):
    net.zero_grad()
    blended_loss(net(**x), y, {FUSED: 1.0}).backward()
    return {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}


def test_modulation_scales_encoder_weight_gradients_exactly():
    torch.manual_seed(0)
    net = MultiModalNet({"image": 6, "audio": 7}, hidden=8, dim=4)
    x, y = {"image": torch.randn(5, 6), "audio": torch.randn(5, 7)}, torch.tensor([0, 1, 2, 3, 4])
    plain = _backward(net, x, y)
    GradientModulator(net.encoders, alpha=0.5, noise=False).apply({"image": 0.5, "audio": 0.2})
    grads = {n: p.grad for n, p in net.named_parameters()}
    for name, g in plain.items():  # the encoders' weight matrices are scaled; their biases, like the heads, are not
        factor = 1.0 if name.endswith("bias") else 0.5 if name.startswith("encoders.image") else \
            0.2 if name.startswith("encoders.audio") else 1.0
        torch.testing.assert_close(grads[name], factor * g)


def test_noise_has_the_gradient_scale_and_can_be_disabled():
    torch.manual_seed(0)
    net = MultiModalNet({"image": 6, "audio": 7}, hidden=64, dim=32)
    modulator = GradientModulator(net.encoders, alpha=0.5)
    x, y = {"image": torch.randn(8, 6), "audio": torch.randn(8, 7)}, torch.arange(8)
    plain = _backward(net, x, y)
    modulator.apply({"image": 0.0, "audio": 0.0})  # k = 0: pure noise N(0, std(g)^2)
    for name in ("encoders.audio.1.0.weight", "encoders.image.1.0.weight"):  # 64 x 32 entries each
        noise = dict(net.named_parameters())[name].grad
        assert 0.8 < noise.std() / plain[name].std() < 1.25 and noise.mean().abs() < 0.2 * plain[name].std()
    _backward(net, x, y)
    modulator.observe({"image": torch.zeros(8, 10), "audio": torch.zeros(8, 10)}, y)
    modulator.enabled = False
    assert modulator.modulate() == {"image": 1.0, "audio": 1.0}  # still computed (equal scores: rho = 1)
    grads = {n: p.grad for n, p in net.named_parameters()}
    for name, g in plain.items():
        torch.testing.assert_close(grads[name], g)  # untouched when off


def test_scores_add_up_over_micro_batches_and_reset_each_step():
    g = torch.Generator().manual_seed(0)
    parts = {"image": 3 * torch.randn(6, 10, generator=g), "audio": torch.randn(6, 10, generator=g)}
    y = torch.arange(6)
    modulator = GradientModulator(MultiModalNet({"image": 6, "audio": 7}, hidden=8, dim=4).encoders, alpha=0.8)
    modulator.enabled = False
    for half in (slice(0, 2), slice(2, 6)):
        modulator.observe({m: v[half] for m, v in parts.items()}, y[half])
    whole = ogm_coefficients(parts, y, 0.8)
    assert min(whole.values()) < 1.0
    assert modulator.modulate() == pytest.approx(whole)
    modulator.observe({m: v[:2] for m, v in parts.items()}, y[:2])
    assert modulator.modulate() == pytest.approx(ogm_coefficients({m: v[:2] for m, v in parts.items()}, y[:2], 0.8))
