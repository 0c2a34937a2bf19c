"""Loading official DINOv2 backbones (`dinov2_vit{s,b,l,g}14[_reg]_pretrain.pth`) from a local file.

Nothing is downloaded: the user passes the path of a checkpoint they have. The file is read with
`torch.load(weights_only=True)`, which never unpickles code. The patch-grid size is read from the checkpoint's
positional embedding (518 px for the official files), so checkpoints trained at other sizes load too; the size
(arch, depth) and the number of registers are read from the state dict when not given.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from paperzoo.engine.checkpoint import state_dict_mismatches
from paperzoo.errors import DataError, UserError
from paperzoo.registers.model import ARCHS, VisionTransformer, build_vit


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no checkpoint at {path}: nothing is downloaded here; pass the path of a local DINOv2 "
                        "file such as dinov2_vits14_reg4_pretrain.pth")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise DataError(f"{path} is not a readable PyTorch state dict ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise DataError(f"{path} does not hold a flat state dict of tensors (name -> tensor)")
    return state


def check_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise a `DataError` naming every missing key, unexpected key and shape mismatch."""
    mismatches = state_dict_mismatches(model, state)
    if not mismatches:
        return
    expected = model.state_dict()
    lines = [f"{source} does not match the model:", *mismatches]
    if "register_tokens" in state and "register_tokens" not in expected:
        lines.append(f"  hint: the checkpoint has {state['register_tokens'].shape[1]} registers; "
                     f"pass num_registers={state['register_tokens'].shape[1]}")
    elif "register_tokens" in expected and "register_tokens" not in state:
        lines.append("  hint: the checkpoint has no registers; pass num_registers=0")
    if _depth(state) != _depth(expected):
        lines.append(f"  hint: the checkpoint has {_depth(state)} blocks, the model {_depth(expected)}: "
                     "is the arch right?")
    raise DataError("\n".join(lines))


def _depth(state: dict) -> int:
    return len({k.split(".")[1] for k in state if k.startswith("blocks.")})


DINOV2_KEYS = ("cls_token", "pos_embed", "patch_embed.proj.weight", "norm.weight")


def detect_layout(state: dict[str, torch.Tensor], source: str = "checkpoint") -> dict:
    """arch, number of registers, depth and patch size of a DINOv2-layout state dict; a `DataError` when it is not
    one (a key of DINOv2's backbones missing, or a width none of its sizes has)."""
    missing = [k for k in DINOV2_KEYS if k not in state] + ([] if _depth(state) else ["blocks.<i>.*"])
    if missing:
        raise DataError(f"{source} is not a DINOv2-layout state dict (the keys of dinov2_vit*14[_reg]_pretrain.pth): "
                        f"no {', '.join(missing)}")
    width = state["cls_token"].shape[-1]
    arch = next((name for name, a in ARCHS.items() if a["embed_dim"] == width), None)
    if arch is None:
        widths = ", ".join(f"{a['embed_dim']} ({name})" for name, a in ARCHS.items())
        raise DataError(f"{source}: width {width} is none of DINOv2's sizes: {widths}")
    registers = state["register_tokens"].shape[1] if "register_tokens" in state else 0
    return {"arch": arch, "num_registers": registers, "depth": _depth(state),
            "patch_size": state["patch_embed.proj.weight"].shape[-1]}


def load_dinov2(path: str | Path, arch: str | None = None, num_registers: int | None = None,
                **overrides) -> VisionTransformer:
    """Our ViT with the weights of a local DINOv2 checkpoint, loaded with strict=True.

    `arch`: vit_small | vit_base | vit_large | vit_giant2 (| vit_tiny); `num_registers`: 4 for the `_reg` files.
    Left out (None), both and the depth are read from the checkpoint (`detect_layout`).
    """
    if arch is not None and arch not in ARCHS:
        raise UserError(f"unknown arch {arch!r}; choose from: {', '.join(ARCHS)}")
    state = read_state_dict(path)
    if arch is None or num_registers is None:
        layout = detect_layout(state, str(path))
        if arch is None:
            arch = layout["arch"]
            overrides.setdefault("depth", layout["depth"])
            overrides.setdefault("patch_size", layout["patch_size"])
        num_registers = layout["num_registers"] if num_registers is None else num_registers
    patch_size = overrides.pop("patch_size", 14)
    if "pos_embed" in state and state["pos_embed"].dim() == 3:
        side = math.isqrt(state["pos_embed"].shape[1] - 1)
        if side * side == state["pos_embed"].shape[1] - 1:
            overrides.setdefault("img_size", side * patch_size)
    model = build_vit(arch, num_registers, patch_size=patch_size, **overrides)
    check_state_dict(model, state, source=str(path))
    model.load_state_dict(state, strict=True)
    return model.eval()
