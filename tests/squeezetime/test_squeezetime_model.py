"""SqueezeTime model: shapes, the squeeze reshape, the TFC weights, gradients, the K400 size, bad input."""

import pytest
import torch

from paperzoo.squeezetime import ChannelTimeConv, SqueezeTime, TemporalWeights, model_cost, squeeze_time
from paperzoo.squeezetime.zoo import build_video_model, parameter_count

torch.manual_seed(0)


def tiny(**kwargs) -> SqueezeTime:
    defaults = dict(num_classes=5, num_frames=4, width_mult=0.125, image_size=32, layers=(1, 1, 1, 1))
    return SqueezeTime(**{**defaults, **kwargs})


@pytest.mark.parametrize("frames,size", [(4, 32), (8, 48), (16, 64), (3, 40)])
def test_output_shape_for_frames_and_sizes(frames, size):
    model = tiny(num_frames=frames, image_size=size).eval()
    out = model(torch.randn(2, 3, frames, size, size))
    assert out.shape == (2, 5) and torch.isfinite(out).all()


def test_other_input_size_than_position_encoding_works():
    model = tiny(image_size=32).eval()  # encodings sized for 32x32, interpolated for 64x48
    assert model(torch.randn(1, 3, 4, 64, 48)).shape == (1, 5)


def test_squeeze_keeps_frame_order_channel_is_c_times_t_plus_t():
    b, c, t, h, w = 2, 3, 5, 4, 4
    x = torch.arange(b * c * t * h * w, dtype=torch.float32).reshape(b, c, t, h, w)
    y = squeeze_time(x)
    assert y.shape == (b, c * t, h, w)
    for ci in range(c):
        for ti in range(t):
            assert torch.equal(y[:, ci * t + ti], x[:, ci, ti])


def test_tfc_weights_depend_on_input():
    weights = TemporalWeights(8).eval()
    with torch.no_grad():
        weights.net[2].running_mean.normal_()  # a trained-looking BN so the weights are not all equal
    a, b = torch.randn(1, 8, 6, 6), torch.randn(1, 8, 6, 6) * 3 + 1
    wa, wb = weights(a), weights(b)
    assert wa.shape == (1, 8, 1, 1)
    assert ((wa > 0) & (wa < 1)).all()
    assert not torch.allclose(wa, wb, atol=1e-3)


def test_tfc_reweights_channels_before_the_conv():
    layer = ChannelTimeConv(4, 4, pos_size=4, kind="tfc").eval()
    x = torch.randn(1, 4, 4, 4)
    w = layer.weights(x)
    expected = torch.nn.functional.conv2d(x * w, layer.conv.weight, padding=1)
    assert torch.allclose(layer(x), expected, atol=1e-6)


def test_every_parameter_gets_a_gradient():
    # eval-mode BN: in training mode the bias of a downsampling BN is followed only by conv + BN (body and
    # shortcut), whose batch mean cancels any constant shift, so its gradient is exactly zero (as in the official net)
    model = tiny(dropout=0.0).eval()
    model(torch.randn(2, 3, 4, 32, 32)).logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_ablation_kinds_differ_in_parameters():
    counts = {k: parameter_count(tiny(ctl=k)) for k in ("conv", "tfc", "tfc_ioi")}
    assert counts["conv"] < counts["tfc"] < counts["tfc_ioi"]


def test_k400_configuration_size_and_cost():
    cost = model_cost(lambda: SqueezeTime(400), (1, 3, 16, 224, 224))
    head = 2048 * 400 + 400
    assert cost["params"] == 29_706_688  # the official backbone (28,887,088) + the 2048x400 head
    assert abs((cost["params"] - head) / 28.7e6 - 1) < 0.01
    assert abs(cost["macs"] / 5.5e9 - 1) < 0.01


def test_frame_count_only_changes_the_stem():
    p4, p16 = (parameter_count(tiny(num_frames=t, width_mult=1.0)) for t in (4, 16))
    assert p16 - p4 == 3 * 5 * 5 * 64 * 12


def test_bad_input_is_a_clear_error():
    model = tiny()
    with pytest.raises(ValueError, match=r"expected clips \(B, 3, 4, H, W\)"):
        model(torch.randn(2, 3, 8, 32, 32))
    with pytest.raises(ValueError, match="expected a clip batch"):
        squeeze_time(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="ctl must be"):
        tiny(ctl="lstm")
    with pytest.raises(ValueError, match="unknown video model"):
        build_video_model("x3d", 4)
