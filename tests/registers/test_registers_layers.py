"""Shared ViT layers (paperzoo.layers): equivalence with torch's own modules and hand-computed values."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from paperzoo.layers.attention import Attention
from paperzoo.layers.mlp import Mlp, SwiGLUFFN, swiglu_hidden
from paperzoo.layers.patch_embed import PatchEmbed
from paperzoo.layers.vit_block import Block, LayerScale


def test_attention_equals_torch_multihead_attention():
    torch.manual_seed(0)
    ours = Attention(16, 4).eval()
    ref = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(ours.qkv.weight)
        ref.in_proj_bias.copy_(ours.qkv.bias)
        ref.out_proj.weight.copy_(ours.proj.weight)
        ref.out_proj.bias.copy_(ours.proj.bias)
    x = torch.randn(3, 7, 16)
    expected, expected_weights = ref(x, x, x, average_attn_weights=False)
    torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=1e-5)
    out, weights = ours(x, return_attention=True)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights, expected_weights, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4, 7))


def test_attention_bad_input():
    with pytest.raises(ValueError, match="not divisible"):
        Attention(10, 3)
    with pytest.raises(ValueError, match=r"\(B, N, D\)"):
        Attention(8, 2)(torch.randn(8, 8))


def test_mlp_and_swiglu_by_hand():
    mlp = Mlp(2, 3)
    with torch.no_grad():
        mlp.fc1.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        mlp.fc1.bias.zero_()
        mlp.fc2.weight.copy_(torch.ones(2, 3))
        mlp.fc2.bias.zero_()
    x = torch.tensor([[1.0, -1.0]])
    expected = F.gelu(torch.tensor(1.0)) + F.gelu(torch.tensor(-1.0)) + F.gelu(torch.tensor(0.0))
    torch.testing.assert_close(mlp(x), expected.expand(1, 2))

    ffn = SwiGLUFFN(1, 1)
    with torch.no_grad():
        ffn.w12.weight.copy_(torch.tensor([[2.0], [3.0]]))  # gate 2x, value 3x
        ffn.w12.bias.zero_()
        ffn.w3.weight.fill_(1.0)
        ffn.w3.bias.zero_()
    torch.testing.assert_close(ffn(torch.tensor([[1.0]])), F.silu(torch.tensor([[2.0]])) * 3.0)


def test_swiglu_hidden_matches_dinov2_giant():
    assert swiglu_hidden(4 * 1536) == 4096  # ViT-g/14: mlp.w12 (8192, 1536), mlp.w3 (1536, 4096)
    assert swiglu_hidden(4 * 100) == 272  # int(400 * 2 / 3) = 266 -> next multiple of 8


def test_patch_embed_equals_unfold_and_linear():
    torch.manual_seed(0)
    embed = PatchEmbed(4, 3, 5)
    x = torch.randn(2, 3, 8, 12)
    patches = F.unfold(x, kernel_size=4, stride=4).transpose(1, 2)  # (B, N, 3*4*4), row-major
    expected = patches @ embed.proj.weight.reshape(5, -1).T + embed.proj.bias
    torch.testing.assert_close(embed(x), expected, atol=1e-5, rtol=1e-5)
    assert embed.grid(8, 12) == (2, 3)
    with pytest.raises(ValueError, match="not a multiple of the patch size 4"):
        embed(torch.randn(1, 3, 10, 12))
    with pytest.raises(ValueError, match=r"expected images \(B, 3, H, W\)"):
        embed(torch.randn(1, 1, 8, 8))


def test_block_is_prenorm_residual_with_layerscale():
    torch.manual_seed(0)
    block = Block(8, 2, init_values=0.5).eval()
    x = torch.randn(2, 5, 8)
    h = x + 0.5 * block.attn(block.norm1(x))
    torch.testing.assert_close(block(x), h + 0.5 * block.mlp(block.norm2(h)))
    out, weights = block(x, return_attention=True)
    torch.testing.assert_close(out, block(x), atol=1e-6, rtol=1e-5)
    assert weights.shape == (2, 2, 5, 5)
    assert torch.equal(LayerScale(3, 2.0).gamma, torch.full((3,), 2.0))
    assert isinstance(Block(8, 2).ls1, nn.Identity)
    with pytest.raises(ValueError, match="unknown ffn"):
        Block(8, 2, ffn="relu")
