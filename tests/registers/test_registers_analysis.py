"""Each analysis step on a case with a known answer: planted outlier tokens, hand-computed similarities,
constructed attention patterns, probes on targets that are (or are not) linearly decodable."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from paperzoo.registers import VisionTransformer
from paperzoo.registers import analysis as A
from paperzoo.registers.study import study


def test_block_outputs_on_torch_transformer_encoder():
    """Any ViT whose blocks can be hooked: here torch's own encoder layers."""
    torch.manual_seed(0)
    layers = nn.ModuleList(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True) for _ in range(3))
    model = nn.Sequential(*layers).eval()
    x = torch.randn(2, 5, 8)
    outs = A.block_outputs(model, x, blocks=layers)
    h = x
    for layer, out in zip(layers, outs):
        h = layer(h)
        torch.testing.assert_close(out, h)
    assert len(outs) == 3
    assert not any(layer._forward_hooks for layer in layers)  # hooks removed
    with pytest.raises(ValueError, match="no blocks"):
        A.block_outputs(model, x, blocks=[])


def planted_model(layer: int, patch: int, size: float = 1000.0) -> VisionTransformer:
    """A tiny ViT whose block `layer` adds a huge vector to patch token `patch` of every image."""
    torch.manual_seed(0)
    model = VisionTransformer(img_size=16, patch_size=4, in_chans=1, embed_dim=16, depth=3, num_heads=2,
                              num_registers=0).eval()

    def plant(_module, _inputs, output):
        tokens = (output[0] if isinstance(output, tuple) else output).clone()  # the last block may add weights
        tokens[:, 1 + patch] += size
        return (tokens, *output[1:]) if isinstance(output, tuple) else tokens

    model.blocks[layer].register_forward_hook(plant)
    return model


def test_planted_outlier_is_found_at_its_layer_and_position():
    model = planted_model(layer=1, patch=5)
    x = torch.rand(4, 1, 16, 16)
    outs = A.block_outputs(model, x)
    norms = torch.stack([o[:, 1:].norm(dim=-1) for o in outs])  # (L, B, N)
    fractions = A.outlier_fraction_by_layer(norms, ratio=3.0)
    torch.testing.assert_close(fractions, torch.tensor([0.0, 1 / 16, 1 / 16]))
    assert A.first_outlier_layer(fractions, 0.01) == 1
    assert A.first_outlier_layer(torch.zeros(3), 0.01) is None
    mask = norms[-1] > A.relative_threshold(norms[-1])
    assert mask[:, 5].all() and mask.sum() == 4


def test_study_finds_the_planted_outlier():
    model = planted_model(layer=2, patch=0)
    torch.manual_seed(1)
    x = torch.rand(40, 1, 16, 16)
    s = study(model, x, labels=torch.arange(40) % 2)
    assert s.outliers[:, 0].all() and s.outliers.sum() == 40
    assert s.values["outlier_fraction"] == pytest.approx(1 / 16)
    assert s.values["first_outlier_layer"] == 3  # 1-based
    assert s.values["images_with_outlier"] == 40
    # the planted token always sits at position 0: every outlier is "at position 0" -> a perfect position probe
    assert s.values["position_acc_outlier"] == 1.0
    assert s.cls_maps.shape == (40, 2, 4, 4)
    fixed = study(model, x, threshold=1e9)
    assert fixed.values["outlier_tokens"] == 0 and math.isnan(fixed.values["neighbor_cos_outlier"])


def test_thresholds():
    norms = torch.tensor([1.0, 2.0, 3.0, 4.0, 100.0])
    assert A.relative_threshold(norms, 3.0) == 9.0
    torch.manual_seed(0)
    bimodal = torch.cat([torch.empty(980).uniform_(10, 20), torch.empty(20).uniform_(150, 300)])
    t = A.otsu_threshold(bimodal)
    assert 20 < t < 150
    assert ((bimodal > t).sum()) == 20
    with pytest.raises(ValueError, match="two distinct"):
        A.otsu_threshold(torch.ones(5))


def test_neighbor_cosine_by_hand():
    # 2x2 grid: a, b on the top row; c, d below. a=b=c=(1,0), d=(0,1)
    tokens = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    cos = A.neighbor_cosine(tokens, (2, 2))
    # a: neighbours b (1), c (1) -> 1; b: a (1), d (0) -> 0.5; c: a (1), d (0) -> 0.5; d: b (0), c (0) -> 0
    torch.testing.assert_close(cos, torch.tensor([[1.0, 0.5, 0.5, 0.0]]))
    cos = A.neighbor_cosine(torch.randn(1, 12, 4).expand(2, -1, -1)[:, :1].expand(2, 12, 4), (3, 4))
    torch.testing.assert_close(cos, torch.ones(2, 12))  # identical tokens: cosine 1 everywhere, borders included
    with pytest.raises(ValueError, match="do not fill a 3x3 grid"):
        A.neighbor_cosine(torch.randn(1, 8, 4), (3, 3))


def test_patch_pixels_and_positions():
    images = torch.randn(2, 3, 8, 12)
    expected = F.unfold(images, kernel_size=4, stride=4).transpose(1, 2)  # (B, N, C*4*4)
    torch.testing.assert_close(A.patch_pixels(images, 4), expected)
    assert A.patch_positions(2, (2, 3)).tolist() == [[0, 1, 2, 3, 4, 5]] * 2
    with pytest.raises(ValueError, match="not a multiple"):
        A.patch_pixels(images, 5)


def test_probes_on_decodable_and_random_targets():
    torch.manual_seed(0)
    y = torch.randint(0, 4, (400,))
    x = F.one_hot(y, 4).float() * 3 + 0.1 * torch.randn(400, 4)
    assert A.probe_accuracy(x[:200], y[:200], x[200:], y[200:]) == 1.0
    noise = torch.randn(400, 4)
    assert A.probe_accuracy(noise[:200], y[:200], noise[200:], y[200:]) < 0.45  # chance = 0.25
    w = torch.randn(4, 3)
    assert A.probe_mse(x[:200], x[:200] @ w + 1, x[200:], x[200:] @ w + 1, alpha=1e-6) < 1e-8
    targets = torch.randn(400, 3)
    assert A.probe_mse(x[:200], targets[:200], x[200:], targets[200:]) > 0.8  # ~ the targets' variance
    with pytest.raises(ValueError, match="needs >= 2 training"):
        A.probe_accuracy(x[:1], y[:1], x, y)


def test_cls_attention_maps_drop_prefix_and_renormalise():
    # 1 image, 1 head, [CLS] + 2 registers + 4 patches; [CLS] attends 0.5 to register 1, rest split 1:1:1:2
    attn = torch.zeros(1, 1, 7, 7)
    attn[0, 0, 0] = torch.tensor([0.0, 0.5, 0.0, 0.1, 0.1, 0.1, 0.2])
    maps = A.cls_attention_maps(attn, num_prefix=3, grid=(2, 2))
    torch.testing.assert_close(maps, torch.tensor([[[[0.2, 0.2], [0.2, 0.4]]]]))
    region = torch.tensor([[[False, False], [False, True]]])
    torch.testing.assert_close(A.attention_mass(maps, region), torch.tensor([0.4]))
    with pytest.raises(ValueError, match="prefix tokens"):
        A.cls_attention_maps(attn, num_prefix=1, grid=(2, 2))
    with pytest.raises(ValueError, match=r"\(B, heads, N, N\)"):
        A.cls_attention_maps(attn[0], 3, (2, 2))


def test_class_probes_compare_token_types_on_the_same_images():
    """Normal tokens of the images without a high-norm token carry the class; in the images with one they are
    noise. Probed on the images with a high-norm token only (those the outlier probe sees), the normal token's
    class accuracy is at chance (0.5); probed on every image it would be ~0.75."""
    from paperzoo.registers.study import _probe

    torch.manual_seed(0)
    b, grid, d = 400, (4, 4), 8
    n = grid[0] * grid[1]
    labels = torch.randint(0, 2, (b,))
    has = torch.arange(b) % 2 == 0  # every other image has a high-norm token (both halves hold some)
    tokens = torch.randn(b, n, d)
    tokens[~has, :, :2] = F.one_hot(labels[~has], 2).float()[:, None, :] * 5  # decodable where there is no outlier
    outliers = torch.zeros(b, n, dtype=torch.bool)
    outliers[has, 0] = True
    norms = tokens.norm(dim=-1) + 100 * outliers
    values = {}
    _probe(values, tokens, tokens[:, 0], norms, outliers, torch.randn(b, n, 3), labels, grid, 3000, seed=0)
    assert values["class_acc_normal"] < 0.65, values
    assert values["class_acc_cls"] < 0.65, values  # [CLS] (here token 0) on the same images too
    assert values["class_acc_topnorm"] > 0.7, values  # on every image, by its definition
