"""Cheaper before longer (issue 31): the training step of the models the `standard` preset trains longest on a CPU,
in float32 (the reference) against three ways to make it cheaper: bf16 autocast (this machine's CPU reports
avx512_bf16), channels-last memory format (the convolutional nets), and torch.compile of the model.

Each row is a variant's step time over float32's, per interleaved repeat (median and quartiles). Goal: <= 0.8x, the
least saving worth a change of numerics; a variant is adopted only if the claims' numbers then stay within their
intervals, which this benchmark does not check. The models and batches are those of the standard preset:

- registers: the ViT (dim 64, 4 blocks, 2 heads, 4 registers) on 28x28 images in 4x4 patches, batch 64;
- capsnet: the quick-width CapsNet (Conv1 32 channels, 4 primary types, 3 routing iterations), batch 64;
- squeezetime: the tiny SqueezeTime (one block per stage, width 0.25) on 8x32x32 clips, batch 32.

A step is forward, loss and backward (the optimizer's update is the same for every variant and left out).
Run: `paperzoo bench cpu_speedups` (or python benchmarks/cpu_speedups.py [--repeats N --no-compile]).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo import bench
from paperzoo.capsnet import CapsNet, CapsNetConfig, capsnet_loss
from paperzoo.registers import VisionTransformer
from paperzoo.squeezetime.zoo import build_video_model

FLOAT32, BF16, CHANNELS_LAST, COMPILED = "float32", "bf16 autocast", "channels-last", "torch.compile"
GOAL = bench.Goal("<=", 0.8)


def _vit() -> nn.Module:
    return VisionTransformer(img_size=28, patch_size=4, in_chans=1, embed_dim=64, depth=4, num_heads=2,
                             num_registers=4, num_classes=10)


def _capsnet() -> nn.Module:
    return CapsNet(CapsNetConfig(image_size=28, iterations=3, conv_channels=32, primary_types=4))


def _squeezetime() -> nn.Module:
    return build_video_model("squeezetime", 4, num_frames=8, image_size=32, width_mult=0.25, scale="tiny",
                             in_channels=1)


def _classify(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x).float(), y)


def _capsules(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    lengths, _, reconstruction = model(x, y)
    return capsnet_loss(lengths.float(), reconstruction.float(), x, y)[0]


# name -> (model builder, input shape (B, ...), classes, loss, convolutional: channels-last applies)
MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], int, Callable, bool]] = {
    "registers ViT": (_vit, (64, 1, 28, 28), 10, _classify, False),
    "CapsNet": (_capsnet, (64, 1, 28, 28), 10, _capsules, True),
    "SqueezeTime tiny": (_squeezetime, (32, 1, 8, 32, 32), 4, _classify, True),
}
SMOKE_BATCH = 2


def train_step(model: nn.Module, loss_of: Callable, x: torch.Tensor, y: torch.Tensor, bf16: bool):
    def step() -> None:
        model.zero_grad(set_to_none=True)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with autocast:
            loss = loss_of(model, x, y)
        loss.backward()

    return step


def variants(name: str, compile_: bool, smoke: bool) -> dict[str, Callable[[], None]]:
    """{variant: one training step} of model `name`, each variant its own copy of the same initial weights."""
    build, shape, classes, loss_of, convolutional = MODELS[name]
    shape = (SMOKE_BATCH, *shape[1:]) if smoke else shape
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=generator)
    y = torch.randint(0, classes, (shape[0],), generator=generator)
    torch.manual_seed(0)
    reference = build().train()

    def copy(memory_format=torch.contiguous_format) -> nn.Module:  # the same initial weights
        model = build().train().to(memory_format=memory_format)
        model.load_state_dict(reference.state_dict())
        return model

    steps = {FLOAT32: train_step(reference, loss_of, x, y, False), BF16: train_step(copy(), loss_of, x, y, True)}
    if convolutional:
        # both nets convolve in 2D (SqueezeTime folds time into channels), so their weights go channels-last
        clip = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
        steps[CHANNELS_LAST] = train_step(copy(torch.channels_last), loss_of, x.contiguous(memory_format=clip), y,
                                          False)
    if compile_:
        steps[COMPILED] = train_step(torch.compile(copy()), loss_of, x, y, False)
    return steps


def main() -> None:
    parser = bench.arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]), repeats=9)
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile variant")
    args = bench.parse(parser)
    rows = []
    for name in MODELS:
        steps = variants(name, not (args.no_compile or args.smoke), args.smoke)
        if COMPILED in steps:
            try:
                steps[COMPILED]()  # compiles (minutes on a small CPU); failures are reported, not fatal
            except Exception as e:  # no C++ compiler, an unsupported op, ...
                rows.append(bench.row("cpu_speedups", f"{name}: {COMPILED} / {FLOAT32}", "", None, None, "cpu",
                                      status=f"skipped: {type(e).__name__}: {str(e).splitlines()[0][:80]}"))
                del steps[COMPILED]
        times = bench.interleaved({v: bench.seconds_of(step) for v, step in steps.items()}, args.repeats)
        for variant in [v for v in steps if v != FLOAT32]:
            rows.append(bench.row("cpu_speedups", f"{name}: {variant} / {FLOAT32}",
                                  f"training-step time of {name} with {variant} vs float32, standard preset's "
                                  "model and batch", bench.paired(times[variant], times[FLOAT32]), GOAL, "cpu",
                                  bench.medians({k: times[k] for k in (variant, FLOAT32)}, "ms", 1e3)))
    bench.report(rows, args.results)


if __name__ == "__main__":
    main()
