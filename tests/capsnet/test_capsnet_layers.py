"""Capsule layers: squash, margin loss, routing, the paper's parameter counts, masking, bad input."""

import math

import pytest
import torch

from paperzoo.capsnet import (CapsNet, CapsNetConfig, DigitCaps, capsnet_loss, dynamic_routing, margin_loss,
                              parameter_count, squash)

SMALL = CapsNetConfig(conv_channels=8, primary_types=2, decoder_hidden=(16, 32))


def test_squash_values_by_hand():
    v = squash(torch.tensor([[3.0, 4.0], [0.3, 0.4]]))
    # |s| = 5: 25/26 * s/5; |s| = 0.5: 0.25/1.25 * s/0.5
    assert torch.allclose(v[0], torch.tensor([25 / 26 * 0.6, 25 / 26 * 0.8]), atol=1e-6)
    assert torch.allclose(v[1], torch.tensor([0.2 * 0.6, 0.2 * 0.8]), atol=1e-6)
    assert v.norm(dim=1).max() < 1


def test_squash_of_zero_vector_is_zero_with_finite_gradient():
    s = torch.zeros(2, 16, requires_grad=True)
    v = squash(s)
    v.sum().backward()
    assert torch.equal(v.detach(), torch.zeros(2, 16))
    assert torch.isfinite(s.grad).all()


def test_squash_along_other_dim():
    s = torch.randn(4, 8, 3)
    assert torch.allclose(squash(s, dim=1), squash(s.transpose(1, 2)).transpose(1, 2), atol=1e-6)


def test_margin_loss_hand_worked():
    # present class 0 at 0.95 (> m+: 0); absent 0.5: 0.5 * 0.4^2 = 0.08; absent 0.05 (< m-): 0
    assert margin_loss(torch.tensor([[0.95, 0.5, 0.05]]), torch.tensor([0])).item() == pytest.approx(0.08)
    # present at 0.2: 0.7^2 = 0.49; absent 0.3: 0.5 * 0.2^2 = 0.02
    assert margin_loss(torch.tensor([[0.2, 0.3]]), torch.tensor([0])).item() == pytest.approx(0.51)
    # batch mean, and a two-hot target (two digits present)
    both = margin_loss(torch.tensor([[0.2, 0.3], [0.95, 0.5]]), torch.tensor([[1.0, 1.0], [1.0, 1.0]]))
    assert both.item() == pytest.approx((0.49 + 0.36 + 0 + 0.16) / 2)


def test_margin_loss_rejects_mismatched_targets():
    with pytest.raises(ValueError, match="do not match"):
        margin_loss(torch.rand(2, 10), torch.ones(2, 5))


def test_first_iteration_coupling_is_uniform_and_sums_to_one():
    u_hat = torch.randn(3, 20, 5, 4)
    _, couplings = dynamic_routing(u_hat, iterations=3, return_coupling=True)
    assert torch.allclose(couplings[0], torch.full((3, 20, 5), 0.2))
    for c in couplings:
        assert torch.allclose(c.sum(2), torch.ones(3, 20), atol=1e-6)  # over the parents


def test_agreement_raises_coupling_of_agreeing_parent():
    torch.manual_seed(0)
    u_hat = torch.randn(1, 30, 3, 4)
    u_hat[:, :, 0] = torch.tensor([1.0, 2.0, 0.0, -1.0])  # every child predicts the same pose for parent 0
    _, couplings = dynamic_routing(u_hat, iterations=3, return_coupling=True)
    assert (couplings[1][0, :, 0] > 1 / 3).all()
    assert (couplings[2][0, :, 0] > couplings[1][0, :, 0]).all()


def test_routing_matches_loop_reference():
    torch.manual_seed(1)
    u_hat = torch.randn(2, 6, 3, 4)
    b = torch.zeros(2, 6, 3)
    for r in range(3):  # Procedure 1, one child and one parent at a time
        c = b.softmax(2)
        v = torch.stack([squash(sum(c[:, i, j, None] * u_hat[:, i, j] for i in range(6))) for j in range(3)], 1)
        for i in range(6):
            for j in range(3):
                b[:, i, j] += (u_hat[:, i, j] * v[:, j]).sum(-1)
    assert torch.allclose(dynamic_routing(u_hat, 3), v, atol=1e-6)


def test_routing_rejects_bad_input():
    with pytest.raises(ValueError, match="children, parents, dim"):
        dynamic_routing(torch.randn(2, 6, 3))
    with pytest.raises(ValueError, match="at least 1 iteration"):
        dynamic_routing(torch.randn(2, 6, 3, 4), iterations=0)


def test_digitcaps_predictions_equal_tiled_matmul():
    layer = DigitCaps(children=12, in_dim=8, parents=4, out_dim=6)
    u = torch.randn(3, 12, 8)
    tiled = layer.weight[None].expand(3, -1, -1, -1, -1) @ u[:, :, None, :, None].expand(-1, -1, 4, -1, -1)
    assert torch.allclose(layer.predictions(u), tiled.squeeze(-1), atol=1e-5)
    with pytest.raises(ValueError, match=r"\(batch, 12, 8\)"):
        layer.predictions(torch.randn(3, 11, 8))


def test_paper_parameter_count():
    model = CapsNet()
    assert model.cfg.primary_capsules == 1152
    assert parameter_count(model) == 8_215_568  # paper: 8.2M
    assert parameter_count(model) - parameter_count(model.decoder) == 6_804_224  # paper: 6.8M without decoder
    assert CapsNetConfig(image_size=36).primary_capsules == 32 * 10 * 10  # MultiMNIST network


def test_forward_backward_shapes_and_every_parameter_gets_gradient():
    torch.manual_seed(0)
    model = CapsNet(SMALL)
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([1, 2, 3, 4])
    lengths, v, recon = model(x, y)
    assert lengths.shape == (4, 10) and v.shape == (4, 10, 16) and recon.shape == (4, 1, 28, 28)
    assert ((lengths > 0) & (lengths < 1)).all()
    loss, margin, rec = capsnet_loss(lengths, recon, x, y)
    assert loss.item() == pytest.approx(margin.item() + 0.0005 * rec.item(), rel=1e-5)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        assert torch.isfinite(p.grad).all(), name


def test_decoder_masks_by_true_label_in_training_and_longest_capsule_in_eval():
    torch.manual_seed(0)
    model = CapsNet(SMALL)
    with torch.no_grad():
        model.digits.weight.mul_(1e3)  # capsules long enough that the masked decoders differ visibly
    x = torch.rand(4, 1, 28, 28)
    model.eval()
    lengths, v, recon = model(x, torch.zeros(4, dtype=torch.long))  # labels are ignored in eval
    longest = lengths.argmax(1)
    assert torch.allclose(recon, model.decoder(v, longest))
    other = (longest + 1) % 10
    model.train()
    _, v, recon = model(x, other)
    assert torch.allclose(recon, model.decoder(v, other))
    assert not torch.allclose(recon, model.decoder(v, longest))


def test_wrong_image_size_names_the_expected_size():
    model = CapsNet(SMALL)
    with pytest.raises(ValueError, match=r"\(batch, 1, 28, 28\).*image_size=28"):
        model(torch.rand(2, 1, 36, 36))
    with pytest.raises(ValueError, match="too small"):
        CapsNet(CapsNetConfig(image_size=12))


def test_gradcheck_routing():
    u_hat = torch.randn(1, 4, 3, 2, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda u: dynamic_routing(u, 3), (u_hat,))
    assert math.isfinite(squash(torch.zeros(3, dtype=torch.double)).sum().item())
