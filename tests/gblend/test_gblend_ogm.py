"""OGM-GE coefficients by hand and the gradient modulation hooks."""

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


def test_hooks_scale_encoder_gradients_exactly():
    x = {"image": torch.randn(5, 6), "audio": torch.randn(5, 7)}
    y = torch.tensor([0, 1, 2, 3, 4])

    def grads(coefficients):
        torch.manual_seed(0)
        net = MultiModalNet({"image": 6, "audio": 7}, hidden=8, dim=4)
        if coefficients is not None:
            GradientModulator(net.encoders, noise=False).coefficients = coefficients
        blended_loss(net(**x), y, {FUSED: 1.0}).backward()
        return {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}

    plain = grads(None)
    scaled = grads({"image": 0.5, "audio": 0.2})
    for name, g in plain.items():  # the encoders' weight matrices are scaled; their biases, like the heads, are not
        factor = 1.0 if name.endswith("bias") else 0.5 if name.startswith("encoders.image") else \
            0.2 if name.startswith("encoders.audio") else 1.0
        torch.testing.assert_close(scaled[name], factor * g)


def test_noise_has_the_gradient_scale_and_can_be_disabled():
    torch.manual_seed(0)
    net = MultiModalNet({"image": 6, "audio": 7}, hidden=32, dim=16)
    modulator = GradientModulator(net.encoders)
    modulator.coefficients = {"image": 0.0, "audio": 0.0}
    x = {"image": torch.randn(8, 6), "audio": torch.randn(8, 7)}
    blended_loss(net(**x), torch.arange(8), {FUSED: 1.0}).backward()
    g = net.encoders["audio"][0][0].weight.grad
    assert g.abs().sum() > 0  # pure noise, since k = 0
    net.zero_grad()
    modulator.enabled = False
    blended_loss(net(**x), torch.arange(8), {FUSED: 1.0}).backward()
    reference = net.encoders["audio"][0][0].weight.grad.clone()
    net.zero_grad()
    blended_loss(net(**x), torch.arange(8), {FUSED: 1.0}).backward()
    torch.testing.assert_close(net.encoders["audio"][0][0].weight.grad, reference)  # deterministic when off
