"""The video models by name, and how their size, cost and speed are measured (the same way for every model).

  MODEL_NAMES                  squeezetime (+ its ablations squeezetime_conv, squeezetime_tfc), r3d, r2plus1d, tsn, tsm
  build_video_model(name, ...) one constructor for all; `scale="paper"` gives the paper-size nets
                               (SqueezeTime-50, R3D-18, ...), `scale="tiny"` one block per stage for CPU-sized training
  model_cost(model, shape)     parameters and multiply-accumulates of one forward, counted on the meta device
                               with torch.utils.flop_counter (MACs = counted FLOPs / 2: the papers' "FLOPs")
  width_for_cost(name, macs)   the widest width multiplier (k/64) at which a model costs at most `macs`: baselines
                               compared "at the same cost" get the largest net that does not cost more
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from paperzoo.squeezetime.baselines import build_baseline
from paperzoo.squeezetime.model import SqueezeTime

MODEL_NAMES = ("squeezetime", "squeezetime_conv", "squeezetime_tfc", "r3d", "r2plus1d", "tsn", "tsm")
"""The names `build_video_model` takes: SqueezeTime, its two CTL ablations, and the four video baselines."""
Scale = Literal["paper", "tiny"]


def build_video_model(name: str, num_classes: int, num_frames: int = 16, image_size: int = 224,
                      width_mult: float = 1.0, scale: Scale = "paper", in_channels: int = 3) -> nn.Module:
    """The video model `name` (one of `MODEL_NAMES`): clips (B, in_channels, num_frames, H, W) -> logits
    (B, num_classes). `scale="paper"` is the paper-size net (SqueezeTime-50: blocks (3, 4, 6, 3); the baselines
    ResNet-18's (2, 2, 2, 2)), `scale="tiny"` one block per stage for CPU-sized training; `width_mult` scales
    every width; SqueezeTime's position encoding is sized for `image_size` (the baselines take any H, W)."""
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown video model {name!r}; choose from {', '.join(MODEL_NAMES)}")
    if scale not in ("paper", "tiny"):
        raise ValueError(f"scale must be 'paper' or 'tiny', got {scale!r}")
    if name.startswith("squeezetime"):
        ctl = {"squeezetime": "tfc_ioi", "squeezetime_conv": "conv", "squeezetime_tfc": "tfc"}[name]
        layers = (3, 4, 6, 3) if scale == "paper" else (1, 1, 1, 1)
        return SqueezeTime(num_classes, num_frames, width_mult, image_size, layers, ctl, in_channels)
    layers = (2, 2, 2, 2) if scale == "paper" else (1, 1, 1, 1)
    return build_baseline(name, num_classes, num_frames, width_mult, layers, in_channels)


def parameter_count(model: nn.Module) -> int:
    """The number of parameters (elements) of `model`."""
    return sum(p.numel() for p in model.parameters())


def model_cost(build, input_shape: tuple[int, ...]) -> dict[str, float]:
    """{"params": ..., "macs": ...} of `build()` (a model constructor) for one input of `input_shape`, built and
    run on the meta device: no memory, no time."""
    with torch.device("meta"):
        model = build().eval()
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(torch.empty(*input_shape))
    return {"params": parameter_count(model), "macs": counter.get_total_flops() / 2}


def width_for_cost(name: str, macs: float, num_frames: int, image_size: int, scale: Scale = "paper",
                   in_channels: int = 3, steps: int = 64) -> float:
    """The largest width multiplier k / `steps` (k = 1 .. 2 * steps) at which model `name` costs at most `macs`
    multiply-adds per clip; MACs grow with width, so a bisection over k finds it."""
    def cost(k: int) -> float:
        shape = (1, in_channels, num_frames, image_size, image_size)
        return model_cost(lambda: build_video_model(name, 400, num_frames, image_size, k / steps, scale, in_channels),
                          shape)["macs"]

    low, high = 1, 2 * steps
    if cost(low) > macs:
        raise ValueError(f"{name} costs more than {macs:.3g} MACs even at width {low}/{steps}")
    while low < high:  # invariant: cost(low) <= macs
        middle = (low + high + 1) // 2
        low, high = (middle, high) if cost(middle) <= macs else (low, middle - 1)
    return low / steps
