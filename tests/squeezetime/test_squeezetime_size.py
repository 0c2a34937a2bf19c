"""SqueezeTime's parameter count against the official backbone's, counted by hand from the official layer
definitions (xinghaochen/SqueezeTime, `mmaction/models/backbones/SqueezeTime.py`: `ResNet`, `Bottleneck`, the CTL
`Conv2d`, the IOI `SpatialConv`; head `I2DHead.fc_cls`), and the candidate readings of the paper's 28.7M."""

import pytest
import torch

from paperzoo.squeezetime import SqueezeTime

OFFICIAL_K400_BACKBONE = 28_887_088  # the official `generate_model(50, n_input_channels=48, pos_dim=[56, 28, 14, 7])`
K400_HEAD = 2048 * 400 + 400  # I2DHead: nn.Linear(2048, 400)


def bn(c: int) -> int:
    return 2 * c  # nn.BatchNorm2d: weight + bias (running stats are buffers, not parameters)


def official_block(dim_in: int, planes: int, stride: int, pos: int) -> int:
    """One official `Bottleneck(in_planes, planes, stride, shortcut_conv, pos_dim)`, line by line."""
    p = planes
    n = 0
    if stride != 1:  # downsample = Conv2d(in, in, 2, stride=2, groups=in) [bias] + BatchNorm2d(in)
        n += dim_in * 1 * 2 * 2 + dim_in + bn(dim_in)
    n += dim_in * p + bn(p)  # conv1 = conv1x1x1 (bias=False), bn1
    # conv2 = CTL Conv2d(p, p, kernel_size=1, bias=False, pos_dim):
    n += p * p + bn(p) + p * p  # param_conv: 1x1 conv (no bias), BN, 1x1 conv (no bias)
    n += p * p  # temporal_conv: 1x1, bias=False
    n += p * p * 9 + p  # spatial_conv.short_conv: 3x3 with bias
    n += 16 * p * 9 + 16 + bn(16)  # glo_conv.0 (3x3, bias) + glo_conv.1
    n += 16 * 16 * 49 + 16 + bn(16)  # glo_conv.3 (7x7, bias) + glo_conv.4
    n += p * 16 * 9 + p  # glo_conv.6 (3x3, bias)
    n += 16 * pos * pos  # spatial_conv.pos_embed (1, 16, pos_dim, pos_dim)
    n += bn(p) + p * 4 * p + bn(4 * p)  # bn2, conv3 = conv1x1x1 (bias=False), bn3
    if dim_in != 4 * p:  # shortcut_conv, built by _make_layer for the first block: conv1x1x1 + BatchNorm2d
        n += dim_in * 4 * p + bn(4 * p)
    return n


def official_counts(frames: int = 16, layers=(3, 4, 6, 3), pos_dim=(56, 28, 14, 7)) -> list[int]:
    """[stem, layer1, layer2, layer3, layer4] of the official ResNet (widen_factor 1.0, spatial_stride [1, 2, 2, 2])."""
    counts = [3 * frames * 64 * 5 * 5 + bn(64)]  # conv1: Conv2d(3T, 64, 5, stride=2, bias=False), bn1
    dim = 64
    for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
        stage = 0
        for j in range(blocks):
            stage += official_block(dim, planes, 2 if i > 0 and j == 0 else 1, pos_dim[i])
            dim = 4 * planes
        counts.append(stage)
    return counts


def ours(model: SqueezeTime) -> list[int]:
    def count(prefix):
        return sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix))
    return [count("stem.")] + [count(f"stages.{i}.") for i in range(4)]


def k400(**kwargs) -> SqueezeTime:
    with torch.device("meta"):
        return SqueezeTime(400, **kwargs)


def test_k400_backbone_equals_the_official_count_stage_by_stage():
    official = official_counts()
    assert sum(official) == OFFICIAL_K400_BACKBONE
    model = k400()
    assert ours(model) == official  # stem, layer1..layer4 one by one
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_K400_BACKBONE + K400_HEAD
    assert model.fc.weight.numel() + model.fc.bias.numel() == K400_HEAD


@pytest.mark.parametrize("frames,size,layers", [(8, 224, (3, 4, 6, 3)), (32, 112, (3, 4, 6, 3)),
                                                (4, 64, (1, 2, 1, 1))])
def test_other_configurations_equal_the_official_count(frames, size, layers):
    pos = tuple(size // (4 * 2 ** i) for i in range(4))
    assert ours(k400(num_frames=frames, image_size=size, layers=layers)) == official_counts(frames, layers, pos)


def test_what_each_reading_of_the_papers_28_7m_gives():
    """The paper's 28.7M is not the released K400 configuration's count under any of the usual readings:
    fvcore's `parameter_count_table` (the official script's `__main__`) prints "{:.1f}M", i.e. 28.9M. Only a
    count without (most of) the 221,872 position-encoding parameters rounds to 28.7M."""
    total = OFFICIAL_K400_BACKBONE
    assert f"{total / 1e6:.1f}M" == "28.9M"  # what the official script would print for its backbone
    assert f"{(total + K400_HEAD) / 1e6:.1f}M" == "29.7M"  # with the 400-way head
    model = k400()
    pos = sum(p.numel() for n, p in model.named_parameters() if n.endswith("pos_embed"))
    norms = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters())
    assert pos == 16 * (3 * 56 ** 2 + 4 * 28 ** 2 + 6 * 14 ** 2 + 3 * 7 ** 2) == 221_872
    assert f"{(total - norms) / 1e6:.1f}M" == "28.8M"  # without BatchNorm: not 28.7M
    assert f"{sum(official_counts(frames=1)) / 1e6:.1f}M" == "28.8M"  # frames touch only the stem: 4,800 each
    assert f"{(total - pos) / 1e6:.1f}M" == "28.7M"  # without the position encodings: 28,665,216
    seven = sum(official_counts(pos_dim=(7, 7, 7, 7)))  # pos_dim=7, the constructors' default, in every stage
    assert seven == total - pos + 16 * 16 * 49 == 28_677_760 and f"{seven / 1e6:.1f}M" == "28.7M"
    assert f"{sum(official_counts(pos_dim=(64, 32, 16, 8))) / 1e6:.1f}M" == "29.0M"  # the class's default pos_dim
