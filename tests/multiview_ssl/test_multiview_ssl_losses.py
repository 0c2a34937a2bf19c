import math

import pytest
import torch

from paperzoo.multiview_ssl import (
    composite_ssl_loss, forward_predictive_loss, info_nce, inverse_predictive_loss, jsd_contrastive,
)


def test_info_nce_orthogonal_pairs_hand_value():
    # B=2: z_x = [e1, e2], z_s = [e1, e2]; each view: positive cos 1, two negatives cos 0.
    e = torch.eye(2)
    t = 0.5
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2))
    assert info_nce(e, e.clone(), t).item() == pytest.approx(expected, rel=1e-6)


def test_info_nce_identical_embeddings_is_log_2b_minus_1():
    z = torch.ones(3, 4)
    assert info_nce(z, z.clone()).item() == pytest.approx(math.log(5), rel=1e-6)


def test_info_nce_matches_independent_loop_and_is_symmetric():
    g = torch.Generator().manual_seed(0)
    zx, zs = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    t = 0.3
    views = torch.nn.functional.normalize(torch.cat([zx, zs]), dim=1)
    total = 0.0
    for i in range(8):
        j = (i + 4) % 8
        num = math.exp(float(views[i] @ views[j]) / t)
        den = sum(math.exp(float(views[i] @ views[k]) / t) for k in range(8) if k != i)
        total += -math.log(num / den)
    assert info_nce(zx, zs, t).item() == pytest.approx(total / 8, rel=1e-5)
    assert info_nce(zs, zx, t).item() == pytest.approx(info_nce(zx, zs, t).item(), rel=1e-6)


def test_jsd_hand_value_orthogonal():
    e = torch.eye(2)
    t = 1.0
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731
    assert jsd_contrastive(e, e.clone(), t).item() == pytest.approx(sp(-1.0) + sp(0.0), rel=1e-6)


def test_gradients_reach_the_right_parameters():
    torch.manual_seed(0)
    enc_x, enc_s = torch.nn.Linear(6, 4), torch.nn.Linear(6, 4)
    dec, pred = torch.nn.Linear(4, 6), torch.nn.Linear(4, 4)
    x, s = torch.randn(5, 6), torch.rand(5, 6)
    zx, zs = enc_x(x), enc_s(s)
    loss = composite_ssl_loss(info_nce(zx, zs), forward_predictive_loss(dec, zx, s),
                              inverse_predictive_loss(pred, zx, zs), lambda_fp=0.1, lambda_ip=1.0)
    loss.backward()
    for m in (enc_x, enc_s, dec, pred):
        assert m.weight.grad is not None and m.weight.grad.abs().sum() > 0
    # forward-predictive alone never touches the signal encoder
    enc_s.zero_grad()
    zx = enc_x(x)
    forward_predictive_loss(dec, zx, s, kind="mse").backward()
    assert enc_s.weight.grad is None or enc_s.weight.grad.abs().sum() == 0


def test_composite_weights():
    l = composite_ssl_loss(torch.tensor(1.0), torch.tensor(2.0), torch.tensor(3.0), lambda_fp=0.5, lambda_ip=2.0)
    assert l.item() == pytest.approx(1 + 1 + 6)
    assert composite_ssl_loss(torch.tensor(1.0)).item() == 1.0


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="equal shape"):
        info_nce(torch.ones(3, 4), torch.ones(2, 4))
    with pytest.raises(ValueError, match="temperature"):
        info_nce(torch.eye(2), torch.eye(2), temperature=0)
    with pytest.raises(ValueError, match="required"):
        composite_ssl_loss(torch.tensor(1.0), lambda_fp=0.1)
    with pytest.raises(ValueError, match="kind"):
        forward_predictive_loss(torch.nn.Identity(), torch.ones(2, 3), torch.ones(2, 3), kind="l1")
