"""Baselines: shapes, the temporal shift by hand, TSN's order blindness, R(2+1)D's middle width, sizes."""

import pytest
import torch

from paperzoo.squeezetime import build_baseline, model_cost, temporal_shift

torch.manual_seed(0)


@pytest.mark.parametrize("name", ["r3d", "r2plus1d", "tsn", "tsm"])
def test_shapes_and_gradients(name):
    model = build_baseline(name, 4, num_frames=4, width_mult=0.125, layers=(1, 1, 1, 1))
    out = model(torch.randn(2, 3, 4, 32, 32))
    assert out.shape == (2, 4)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_temporal_shift_by_hand():
    b, t, c = 1, 3, 8  # fold = 1: channel 0 comes from the next frame, channel 1 from the previous one
    x = torch.arange(b * t * c, dtype=torch.float32).reshape(b * t, c, 1, 1)
    y = temporal_shift(x, t).reshape(t, c)
    x = x.reshape(t, c)
    assert y[:, 0].tolist() == [x[1, 0], x[2, 0], 0]
    assert y[:, 1].tolist() == [0, x[0, 1], x[1, 1]]
    assert torch.equal(y[:, 2:], x[:, 2:])


def test_tsn_ignores_frame_order_and_tsm_does_not():
    x = torch.randn(2, 3, 4, 32, 32)
    perm = torch.tensor([2, 0, 3, 1])
    tsn = build_baseline("tsn", 4, num_frames=4, width_mult=0.125, layers=(1, 1, 1, 1)).eval()
    tsm = build_baseline("tsm", 4, num_frames=4, width_mult=0.125, layers=(1, 1, 1, 1)).eval()
    assert torch.allclose(tsn(x), tsn(x[:, :, perm]), atol=1e-5)
    assert not torch.allclose(tsm(x), tsm(x[:, :, perm]), atol=1e-4)


def test_r2plus1d_middle_channels_follow_tran_et_al():
    model = build_baseline("r2plus1d", 4, num_frames=4)
    spatial = model.blocks[0].body[0][0]  # first factorised conv of the first 64->64 block
    assert spatial.out_channels == (3 * 9 * 64 * 64) // (9 * 64 + 3 * 64) == 144


def test_r3d18_size_and_cost_match_the_reference_numbers():
    cost = model_cost(lambda: build_baseline("r3d", 400), (1, 3, 16, 112, 112))
    assert abs(cost["params"] / 33.37e6 - 1) < 0.005  # torchvision's r3d_18: 33,371,472
    assert abs(cost["macs"] / 40.7e9 - 1) < 0.01  # R3D-18 at 16x112x112: 40.7 GFLOPs (multiply-adds)


def test_bad_name_and_bad_clip():
    with pytest.raises(ValueError, match="unknown baseline"):
        build_baseline("slowfast", 4)
    with pytest.raises(ValueError, match=r"expected clips \(B, 3, 4, H, W\)"):
        build_baseline("tsn", 4, num_frames=4)(torch.randn(1, 3, 5, 32, 32))
