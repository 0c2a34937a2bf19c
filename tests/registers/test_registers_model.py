"""The ViT with registers: shapes, gradients, token order, positional-embedding interpolation, and DINOv2
state-dict compatibility (names and shapes written from the official facebookresearch/dinov2 definitions)."""

import pytest
import torch

from paperzoo.errors import DataError, UserError
from paperzoo.registers import VisionTransformer, build_vit, load_dinov2, vit_base, vit_giant2, vit_large, vit_small


def tiny(registers=0, **kw):
    torch.manual_seed(0)
    return VisionTransformer(img_size=16, patch_size=4, in_chans=3, embed_dim=16, depth=2, num_heads=2,
                             init_values=1.0, num_registers=registers, **kw)


@pytest.mark.parametrize("registers", [0, 1, 4])
def test_shapes_and_every_parameter_gets_a_gradient(registers):
    model = tiny(registers, num_classes=5)
    x = torch.randn(2, 3, 16, 16)
    out = model.forward_features(x)
    assert out["x_norm_clstoken"].shape == (2, 16)
    assert out["x_norm_regtokens"].shape == (2, registers, 16)
    assert out["x_norm_patchtokens"].shape == (2, 16, 16)
    assert out["x_prenorm"].shape == (2, 1 + registers + 16, 16)
    logits = model(x)
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    masks = torch.zeros(2, 16, dtype=torch.bool)
    masks[:, 3] = True  # the mask token is used only where masks are given
    (logits.sum() + model.forward_features(x, masks)["x_norm_patchtokens"].pow(2).sum()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_registers_are_inserted_after_the_positional_embedding():
    model = tiny(3)
    x = torch.randn(2, 3, 16, 16)
    tokens = model.prepare_tokens(x)  # (B, 1 + 3 + 16, D)
    torch.testing.assert_close(tokens[:, 0], (model.cls_token + model.pos_embed[:, :1]).squeeze(1).expand(2, -1))
    torch.testing.assert_close(tokens[:, 1:4], model.register_tokens.expand(2, -1, -1))  # no position added
    torch.testing.assert_close(tokens[:, 4:], model.patch_embed(x) + model.pos_embed[:, 1:])


def test_attention_path_matches_fast_path():
    model = tiny(4).eval()
    x = torch.randn(2, 3, 16, 16)
    feats, weights = model.forward_with_attention(x)
    torch.testing.assert_close(feats["x_prenorm"], model.forward_features(x)["x_prenorm"], atol=1e-5, rtol=1e-5)
    assert weights.shape == (2, 2, 21, 21)


def test_masks_replace_patches_with_the_mask_token():
    model = tiny(0)
    with torch.no_grad():
        model.mask_token.fill_(7.0)
    masks = torch.zeros(1, 16, dtype=torch.bool)
    masks[0, 5] = True
    tokens = model.prepare_tokens(torch.randn(1, 3, 16, 16), masks)
    torch.testing.assert_close(tokens[0, 1 + 5], 7.0 + model.pos_embed[0, 1 + 5])


@pytest.mark.parametrize("offset,antialias", [(0.1, False), (0.0, True)])
def test_pos_embed_interpolation(offset, antialias):
    model = tiny(0, interpolate_offset=offset, interpolate_antialias=antialias)
    assert model.interpolate_pos_encoding(4, 4) is model.pos_embed  # training grid: unchanged
    with torch.no_grad():
        model.pos_embed[:, 1:] = torch.arange(16.0)[None, None]  # a constant field per channel
        model.pos_embed[:, 0] = -1.0
    resized = model.interpolate_pos_encoding(6, 3)
    assert resized.shape == (1, 1 + 18, 16)
    torch.testing.assert_close(resized[:, 1:], torch.arange(16.0).expand(1, 18, 16))  # constant stays constant
    assert torch.equal(resized[:, 0], model.pos_embed[:, 0])
    out = model.forward_features(torch.randn(1, 3, 24, 12))
    assert out["x_norm_patchtokens"].shape == (1, 18, 16)


def test_bad_inputs():
    with pytest.raises(ValueError, match="not a multiple of the patch size 4"):
        tiny(0)(torch.randn(1, 3, 18, 16))
    with pytest.raises(ValueError, match="num_registers must be >= 0"):
        tiny(-1)
    with pytest.raises(ValueError, match="unknown arch"):
        build_vit("vit_huge")


def dinov2_shapes(dim: int, depth: int, registers: int, swiglu: bool = False) -> dict:
    """The official state dict of dinov2_vit*14[_reg] (hub: img_size 518, patch 14, block_chunks=0,
    qkv/proj/ffn biases, LayerScale, SwiGLU width 4096 for ViT-g)."""
    shapes = {"cls_token": (1, 1, dim), "pos_embed": (1, 1 + 37 * 37, dim), "mask_token": (1, dim),
              "patch_embed.proj.weight": (dim, 3, 14, 14), "patch_embed.proj.bias": (dim,),
              "norm.weight": (dim,), "norm.bias": (dim,)}
    if registers:
        shapes["register_tokens"] = (1, registers, dim)
    for i in range(depth):
        b = f"blocks.{i}."
        shapes.update({b + "norm1.weight": (dim,), b + "norm1.bias": (dim,),
                       b + "attn.qkv.weight": (3 * dim, dim), b + "attn.qkv.bias": (3 * dim,),
                       b + "attn.proj.weight": (dim, dim), b + "attn.proj.bias": (dim,), b + "ls1.gamma": (dim,),
                       b + "norm2.weight": (dim,), b + "norm2.bias": (dim,), b + "ls2.gamma": (dim,)})
        if swiglu:
            shapes.update({b + "mlp.w12.weight": (8192, dim), b + "mlp.w12.bias": (8192,),
                           b + "mlp.w3.weight": (dim, 4096), b + "mlp.w3.bias": (dim,)})
        else:
            shapes.update({b + "mlp.fc1.weight": (4 * dim, dim), b + "mlp.fc1.bias": (4 * dim,),
                           b + "mlp.fc2.weight": (dim, 4 * dim), b + "mlp.fc2.bias": (dim,)})
    return shapes


@pytest.mark.parametrize("factory,dim,depth,swiglu", [(vit_small, 384, 12, False), (vit_base, 768, 12, False),
                                                      (vit_large, 1024, 24, False), (vit_giant2, 1536, 40, True)])
@pytest.mark.parametrize("registers", [0, 4])
def test_factories_have_dinov2_names_and_shapes(factory, dim, depth, swiglu, registers):
    with torch.device("meta"):  # shapes only: no memory, no init cost (ViT-g has 1.1B parameters)
        model = factory(registers)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == dinov2_shapes(dim, depth, registers, swiglu)
    # the _reg hub backbones resize positional embeddings with offset 0 and antialiasing, the others 0.1 / none
    assert (model.interpolate_offset, model.interpolate_antialias) == ((0.0, True) if registers else (0.1, False))


def test_vit_small_parameter_count():
    with torch.device("meta"):
        model = vit_small(0)
    # 12 x 1,775,232 (blocks) + 526,080 (pos_embed 1370 x 384) + 226,176 (patch conv) + 768 (norm) + 768 (cls, mask)
    assert sum(p.numel() for p in model.parameters()) == 22_056_576


def test_load_dinov2_roundtrip(tmp_path):
    torch.manual_seed(1)
    source = build_vit("vit_tiny", 4, img_size=56, depth=2)
    path = tmp_path / "tiny_reg4.pth"
    torch.save(source.state_dict(), path)
    loaded = load_dinov2(path, "vit_tiny", 4, depth=2)
    assert loaded.grid_size == 4  # read from pos_embed (1 + 16 tokens) with patch 14
    x = torch.randn(2, 3, 56, 56)
    source.eval()
    for key in ("x_norm_clstoken", "x_norm_regtokens", "x_norm_patchtokens", "x_prenorm"):
        torch.testing.assert_close(loaded.forward_features(x)[key], source.forward_features(x)[key])


def test_load_dinov2_clear_errors(tmp_path):
    with pytest.raises(DataError, match="no checkpoint at .*nothing is downloaded"):
        load_dinov2(tmp_path / "missing.pth")
    with pytest.raises(UserError, match="unknown arch"):
        load_dinov2(tmp_path / "missing.pth", arch="vit_huge")
    state = build_vit("vit_tiny", 4, img_size=28, depth=1).state_dict()
    path = tmp_path / "reg.pth"
    torch.save(state, path)
    with pytest.raises(DataError, match=r"unexpected keys \(1\): register_tokens(.|\n)*pass num_registers=4"):
        load_dinov2(path, "vit_tiny", 0, depth=1)
    del state["blocks.0.ls1.gamma"], state["norm.bias"]
    torch.save(state, path)
    with pytest.raises(DataError, match=r"missing keys \(2\): blocks.0.ls1.gamma, norm.bias"):
        load_dinov2(path, "vit_tiny", 4, depth=1)
    with pytest.raises(DataError, match="the checkpoint has 1 blocks, the model 12: is the arch right"):
        load_dinov2(path, "vit_tiny", 4)
    state["norm.bias"] = torch.zeros(5)
    state["blocks.0.ls1.gamma"] = torch.zeros(192)
    torch.save(state, path)
    with pytest.raises(DataError, match=r"shape mismatches \(1\): norm.bias: \(5,\) vs model \(192,\)"):
        load_dinov2(path, "vit_tiny", 4, depth=1)
    torch.save({"model": object()}, tmp_path / "code.pth")
    with pytest.raises(DataError, match="not a readable PyTorch state dict"):
        load_dinov2(tmp_path / "code.pth", "vit_tiny")
