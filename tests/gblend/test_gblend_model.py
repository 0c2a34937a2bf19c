"""The multi-head fusion network, the blended loss and where its gradients go."""

import pytest
import torch
import torch.nn.functional as F

from paperzoo.gblend.loss import blended_loss, head_losses
from paperzoo.gblend.model import FUSED, MultiModalNet

INPUTS = {"image": 12, "audio": 20}


def _batch(seed=0, b=6):
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(b, 12, generator=g), "audio": torch.randn(b, 4, 5, generator=g)}, \
        torch.randint(0, 10, (b,), generator=g)


def test_late_fusion_heads_and_shapes():
    torch.manual_seed(0)
    net = MultiModalNet(INPUTS, hidden=16, dim=8)
    x, _ = _batch()
    out = net(**x)
    assert set(out) == {"image", "audio", FUSED}
    assert all(v.shape == (6, 10) for v in out.values())
    assert net.prediction_head == FUSED
    mid = MultiModalNet(INPUTS, hidden=16, dim=8, fusion="mid")
    assert set(mid(**x)) == {FUSED}
    uni = MultiModalNet({"audio": 20}, hidden=16, dim=8)
    assert set(uni(audio=x["audio"])) == {"audio"} and uni.prediction_head == "audio"


def test_fused_parts_add_up_to_the_fused_logits():
    torch.manual_seed(1)
    net = MultiModalNet(INPUTS, hidden=16, dim=8).eval()
    x, _ = _batch()
    out = net(parts=True, **x)
    torch.testing.assert_close(out["fused@image"] + out["fused@audio"], out[FUSED])


def test_blended_loss_equals_hand_sum():
    torch.manual_seed(2)
    net = MultiModalNet(INPUTS, hidden=16, dim=8)
    x, y = _batch()
    out = net(**x)
    w = {"image": 0.2, "audio": 0.3, FUSED: 0.5}
    by_hand = sum(w[k] * F.cross_entropy(out[k], y) for k in w)
    torch.testing.assert_close(blended_loss(out, y, w), by_hand)
    losses = head_losses(out, y)
    torch.testing.assert_close(losses["audio"], F.cross_entropy(out["audio"], y))


def _grads(net, weights):
    net.zero_grad(set_to_none=True)
    x, y = _batch(3)
    blended_loss(net(**x), y, weights).backward()
    return {name: p.grad for name, p in net.named_parameters()}


def test_heads_get_gradients_only_from_their_terms():
    torch.manual_seed(3)
    net = MultiModalNet(INPUTS, hidden=16, dim=8)
    grads = _grads(net, {"image": 1.0, "audio": 0.0, FUSED: 0.0})
    for name, g in grads.items():
        if name.startswith(("encoders.image", "heads.image")):
            assert g is not None and g.abs().sum() > 0, name
        else:
            assert g is None, f"{name} received a gradient from a zero-weight term"
    grads = _grads(net, {FUSED: 1.0})
    assert grads["heads.image.weight"] is None and grads["heads.audio.weight"] is None
    assert grads["fused.weight"].abs().sum() > 0 and grads["encoders.audio.0.0.weight"].abs().sum() > 0


def test_gradient_is_linear_in_the_weights():
    torch.manual_seed(4)
    net = MultiModalNet(INPUTS, hidden=16, dim=8)
    a = _grads(net, {"audio": 1.0})["encoders.audio.0.0.weight"].clone()
    b = _grads(net, {FUSED: 1.0})["encoders.audio.0.0.weight"].clone()
    both = _grads(net, {"audio": 0.25, FUSED: 0.75})["encoders.audio.0.0.weight"]
    torch.testing.assert_close(both, 0.25 * a + 0.75 * b)


def test_clear_errors():
    with pytest.raises(ValueError, match="fusion must be"):
        MultiModalNet(INPUTS, fusion="early")
    with pytest.raises(ValueError, match="mid fusion needs two"):
        MultiModalNet({"image": 4}, fusion="mid")
    net = MultiModalNet(INPUTS, hidden=16, dim=8)
    x, y = _batch()
    with pytest.raises(ValueError, match="missing inputs"):
        net(image=x["image"])
    out = net(**x)
    with pytest.raises(ValueError, match="does not have"):
        blended_loss(out, y, {"video": 1.0})
    with pytest.raises(ValueError, match="all blending weights are zero"):
        blended_loss(out, y, {FUSED: 0.0})
