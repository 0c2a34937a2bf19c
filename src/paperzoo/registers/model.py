"""A Vision Transformer with registers, parameter-compatible with DINOv2.

Darcet, Oquab, Mairal, Bojanowski, "Vision Transformers Need Registers", ICLR 2024, arXiv 2309.16588, Sec. 3:
R learnable register tokens are appended after the patch embedding, like [CLS] but without a positional embedding,
and discarded at the output. Token order (as in the official DINOv2 code): [CLS, reg_1..reg_R, patch_1..patch_N];
the positional embedding is added to [CLS, patches] before the registers are inserted.

Parameter names and shapes equal those of the official `dinov2_vit{s,b,l,g}14[_reg]` backbones (with
`block_chunks=0`), so their state dicts load with `strict=True`; `forward_features` returns DINOv2's dict.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from paperzoo.layers.patch_embed import PatchEmbed
from paperzoo.layers.vit_block import Block


class VisionTransformer(nn.Module):
    """ViT with `num_registers` register tokens (0 = plain ViT) and an optional linear head on the normalised
    [CLS] token (`num_classes=0`: no head, the output is the [CLS] feature, as DINOv2's backbones).

    `interpolate_offset` / `interpolate_antialias` reproduce DINOv2's positional-embedding resizing: the original
    backbones use (0.1, False), the `_reg` ones (0.0, True).
    """

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768,
                 depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 ffn: str = "mlp", init_values: float | None = None, num_registers: int = 0,
                 interpolate_offset: float = 0.1, interpolate_antialias: bool = False, num_classes: int = 0):
        super().__init__()
        if num_registers < 0:
            raise ValueError(f"num_registers must be >= 0, got {num_registers}")
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
        self.patch_size, self.embed_dim, self.num_registers = patch_size, embed_dim, num_registers
        self.num_prefix = 1 + num_registers  # [CLS] + registers, before the patches
        self.interpolate_offset, self.interpolate_antialias = interpolate_offset, interpolate_antialias
        self.grid_size = img_size // patch_size  # side of the patch grid the positional embedding was built for

        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid_size ** 2, embed_dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, num_registers, embed_dim)) if num_registers else None
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, qkv_bias, ffn, init_values)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        """DINOv2's init: truncated normal(0.02) for the positional embedding and linear weights, ~0 tokens."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        if self.register_tokens is not None:
            nn.init.normal_(self.register_tokens, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def interpolate_pos_encoding(self, rows: int, cols: int) -> torch.Tensor:
        """The (1, 1 + rows*cols, D) positional embedding for a `rows` x `cols` patch grid (bicubic resize of the
        patch part, as DINOv2 does; returned unchanged for the training grid)."""
        m = self.grid_size
        if rows == m and cols == m:
            return self.pos_embed
        pos = self.pos_embed.float()
        patch_pos = pos[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2)  # (1, D, m, m)
        if self.interpolate_offset:
            # DINOv2's historical scale factor, kept so that official checkpoints give the same outputs
            scale = ((rows + self.interpolate_offset) / m, (cols + self.interpolate_offset) / m)
            patch_pos = F.interpolate(patch_pos, scale_factor=scale, mode="bicubic",
                                      antialias=self.interpolate_antialias)
        else:
            patch_pos = F.interpolate(patch_pos, size=(rows, cols), mode="bicubic",
                                      antialias=self.interpolate_antialias)
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)  # (1, rows*cols, D)
        return torch.cat([pos[:, :1], patch_pos], dim=1).to(self.pos_embed.dtype)

    def prepare_tokens(self, x: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, H, W) -> (B, 1 + R + N, D): [CLS] and patches get positions, then registers are inserted."""
        tokens = self.patch_embed(x)  # (B, N, D); checks the image shape
        rows, cols = self.patch_embed.grid(x.shape[-2], x.shape[-1])
        if masks is not None:
            tokens = torch.where(masks.unsqueeze(-1), self.mask_token.to(tokens.dtype).unsqueeze(0), tokens)
        tokens = torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], dim=1)  # (B, 1 + N, D)
        tokens = tokens + self.interpolate_pos_encoding(rows, cols)
        if self.register_tokens is not None:
            registers = self.register_tokens.expand(len(tokens), -1, -1)  # (B, R, D)
            tokens = torch.cat([tokens[:, :1], registers, tokens[:, 1:]], dim=1)  # (B, 1 + R + N, D)
        return tokens

    def _split(self, x_prenorm: torch.Tensor, masks: torch.Tensor | None) -> dict:
        x_norm = self.norm(x_prenorm)
        return {"x_norm_clstoken": x_norm[:, 0],
                "x_norm_regtokens": x_norm[:, 1:self.num_prefix],
                "x_norm_patchtokens": x_norm[:, self.num_prefix:],
                "x_prenorm": x_prenorm,
                "masks": masks}

    def forward_features(self, x: torch.Tensor, masks: torch.Tensor | None = None) -> dict:
        """DINOv2's output dict: normalised [CLS] (B, D), registers (B, R, D), patches (B, N, D), and all tokens
        before the final norm `x_prenorm` (B, 1 + R + N, D)."""
        tokens = self.prepare_tokens(x, masks)
        for block in self.blocks:
            tokens = block(tokens)
        return self._split(tokens, masks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x)["x_norm_clstoken"])

    def forward_with_attention(self, x: torch.Tensor) -> tuple[dict, torch.Tensor]:
        """`forward_features` plus the last block's attention weights (B, heads, 1 + R + N, 1 + R + N), the one
        place where the softmax is formed explicitly."""
        tokens = self.prepare_tokens(x)
        for block in self.blocks[:-1]:
            tokens = block(tokens)
        tokens, weights = self.blocks[-1](tokens, return_attention=True)
        return self._split(tokens, None), weights

    def patch_grid(self, x: torch.Tensor) -> tuple[int, int]:
        return self.patch_embed.grid(x.shape[-2], x.shape[-1])


# DINOv2's architectures (hub defaults: 518 px, patch 14, LayerScale init 1.0; the `_reg` backbones resize the
# positional embedding with offset 0 and antialiasing). vit_tiny is DeiT-Ti's size, for quick CPU experiments.
ARCHS: dict[str, dict] = {
    "vit_tiny": dict(embed_dim=192, depth=12, num_heads=3),
    "vit_small": dict(embed_dim=384, depth=12, num_heads=6),
    "vit_base": dict(embed_dim=768, depth=12, num_heads=12),
    "vit_large": dict(embed_dim=1024, depth=24, num_heads=16),
    "vit_giant2": dict(embed_dim=1536, depth=40, num_heads=24, ffn="swiglu"),
}
"""The ViT sizes `build_vit` takes, by name: width, depth, heads (and the FFN of ViT-g) over DINOv2's defaults."""


def build_vit(arch: str, num_registers: int = 0, **overrides) -> VisionTransformer:
    """A DINOv2-configured ViT of the named size; keyword overrides win (e.g. img_size=224, num_classes=10)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose from: {', '.join(ARCHS)}")
    kwargs = dict(img_size=518, patch_size=14, init_values=1.0, num_registers=num_registers,
                  interpolate_offset=0.0 if num_registers else 0.1, interpolate_antialias=bool(num_registers))
    kwargs.update(ARCHS[arch])
    kwargs.update(overrides)
    return VisionTransformer(**kwargs)


def vit_tiny(num_registers: int = 0, **overrides) -> VisionTransformer:
    """ViT-Ti/14 (DeiT-Ti's size: width 192, 12 blocks, 3 heads; 5.7M parameters at 518 px): no official DINOv2
    weights, for CPU experiments."""
    return build_vit("vit_tiny", num_registers, **overrides)


def vit_small(num_registers: int = 0, **overrides) -> VisionTransformer:
    """DINOv2 ViT-S/14 (22M parameters); num_registers=4 is `dinov2_vits14_reg`."""
    return build_vit("vit_small", num_registers, **overrides)


def vit_base(num_registers: int = 0, **overrides) -> VisionTransformer:
    """DINOv2 ViT-B/14 (86M)."""
    return build_vit("vit_base", num_registers, **overrides)


def vit_large(num_registers: int = 0, **overrides) -> VisionTransformer:
    """DINOv2 ViT-L/14 (300M)."""
    return build_vit("vit_large", num_registers, **overrides)


def vit_giant2(num_registers: int = 0, **overrides) -> VisionTransformer:
    """DINOv2 ViT-g/14 (1.1B; SwiGLU FFN)."""
    return build_vit("vit_giant2", num_registers, **overrides)
