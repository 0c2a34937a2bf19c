"""Vision Transformers Need Registers (Darcet et al., ICLR 2024, arXiv 2309.16588): a DINOv2-compatible ViT with
registers, the loader of official checkpoints, and the artifact-analysis toolkit."""

from paperzoo.registers.dinov2 import check_state_dict, detect_layout, load_dinov2
from paperzoo.registers.model import (ARCHS, VisionTransformer, build_vit, vit_base, vit_giant2, vit_large, vit_small,
                                      vit_tiny)
from paperzoo.registers.train import RegistersClassification, RegistersConfig

__all__ = [
    "ARCHS",
    "RegistersClassification",
    "RegistersConfig",
    "VisionTransformer",
    "build_vit",
    "check_state_dict",
    "detect_layout",
    "load_dinov2",
    "vit_base",
    "vit_giant2",
    "vit_large",
    "vit_small",
    "vit_tiny",
]
