"""The nets of the paper's speed table (arXiv 2405.08344, Table 1) at their published widths: X3D-XS built from the
X3D paper's layout, TSM-R18 and SqueezeTime, counted against the published parameter and FLOP numbers."""

import pytest
import torch

from paperzoo.squeezetime.published import COMPARED_NETS, PUBLISHED, build_published
from paperzoo.squeezetime.x3d import X3D, X3DBlock, se_width
from paperzoo.squeezetime.zoo import model_cost


def _cost(key: str, size: int | None = None) -> dict[str, float]:
    return model_cost(lambda: build_published(key, size), PUBLISHED[key].shape(1, size))


def test_x3d_xs_matches_the_published_counts():
    # PySlowFast model zoo (the X3D authors' code): X3D-XS 0.60 GFLOPs at 4x160x160 and 3.8M parameters;
    # PyTorchVideo's model zoo: 3.79M; the SqueezeTime table: 3.80M
    at_160 = _cost("x3d_xs", 160)
    assert at_160["params"] == pytest.approx(3.79e6, rel=0.005)
    assert at_160["macs"] == pytest.approx(0.60e9, rel=0.02)
    # the timed input, the published 182x182 inference crop: 0.84 GMACs (the table's 0.9 is PyTorchVideo's 0.91)
    assert PUBLISHED["x3d_xs"].shape() == (1, 3, 4, 182, 182)
    assert _cost("x3d_xs")["macs"] == pytest.approx(0.839e9, rel=0.005)


def test_x3d_xs_layout():
    model = X3D(400)
    blocks = [m for m in model.modules() if isinstance(m, X3DBlock)]
    assert len(blocks) == 3 + 5 + 11 + 7  # the depth factor 2.2 on X3D's (1, 2, 5, 3)
    squeeze_excited = [b for b in blocks if not isinstance(b.body[5], torch.nn.Identity)]
    assert len(squeeze_excited) == 2 + 3 + 6 + 4  # every other block of each stage, from its first
    assert [se_width(c) for c in (54, 108, 216, 432)] == [8, 8, 16, 32]  # rounded to multiples of 8, >= 8
    depthwise = blocks[0].body[3]
    assert depthwise.groups == depthwise.in_channels == 54 and depthwise.stride == (1, 2, 2)


def test_x3d_sees_frame_order_and_checks_its_input():
    torch.manual_seed(0)
    model = X3D(5).eval()
    clip = torch.rand(2, 3, 4, 64, 64)  # (B, C, T, H, W)
    with torch.no_grad():
        logits = model(clip)
        reversed_logits = model(clip.flip(2))
    assert logits.shape == (2, 5)
    assert not torch.allclose(logits, reversed_logits, atol=1e-6)  # temporal convs: not order-blind
    with pytest.raises(ValueError, match="expected clips"):
        model(torch.rand(1, 3, 8, 64, 64))


def test_tsm_r18_matches_the_tables_counts():
    # Table 1: TSM-R18 11.2M parameters (the backbone, without the 400-way classifier) and 19.0 GFLOPs, which is
    # our count at 8x256x256; it is timed on the 8x224x224 crops of the authors' TSM config: 8 x ResNet-18's 1.82
    cost = _cost("tsm_r18")
    assert PUBLISHED["tsm_r18"].shape() == (1, 3, 8, 224, 224)
    assert cost["params"] - (512 * 400 + 400) == pytest.approx(11.2e6, rel=0.005)
    assert cost["macs"] == pytest.approx(8 * 1.82e9, rel=0.01)
    assert _cost("tsm_r18", 256)["macs"] == pytest.approx(19.0e9, rel=0.01)


def test_squeezetime_is_timed_at_the_papers_input():
    net = PUBLISHED["squeezetime"]
    assert net.shape(4) == (4, 3, 16, 224, 224)
    assert _cost("squeezetime")["macs"] - 2048 * 400 == pytest.approx(5.5e9, rel=0.01)  # backbone, no head
    assert set(COMPARED_NETS) == set(PUBLISHED) - {"squeezetime"}
