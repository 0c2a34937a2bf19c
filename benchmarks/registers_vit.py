"""Speed and memory of our ViT-S/14 (paperzoo.registers) at 224 px against a reference of the same size built from
PyTorch's own `nn.TransformerEncoder` (pre-norm, GELU, batch-first), and the cost of 4 registers vs 0.

Goals: ours >= 1.0x the reference's images/s (forward in inference mode, and forward+backward); 4 registers cost
<= 3% more time than 0 (261 vs 257 tokens is +1.6% work). The three models run interleaved over repeats. Peak
memory of a forward+backward: CUDA's peak allocation, or a fresh process per model on a CPU (paperzoo.bench).
Run: `paperzoo bench registers_vit` (or python benchmarks/registers_vit.py [--batch N --repeats N --device cuda]).
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from paperzoo import bench
from paperzoo.registers import vit_small

TORCH, OURS, REGISTERS = "torch reference", "ours 0 registers", "ours 4 registers"


class TorchEncoderViT(nn.Module):
    """The reference: the same ViT-S/14 computation (patch conv, [CLS], positions, 12 pre-norm blocks, final norm)
    with torch's nn.TransformerEncoder as the trunk."""

    def __init__(self, dim: int = 384, depth: int = 12, heads: int = 6, patch: int = 14, img: int = 224):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, 1 + (img // patch) ** 2, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True, layer_norm_eps=1e-6)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.proj(x).flatten(2).transpose(1, 2)  # (B, N, D)
        tokens = torch.cat([self.cls.expand(len(tokens), -1, -1), tokens], dim=1) + self.pos
        return self.norm(self.encoder(tokens))[:, 0]


def build(name: str, img: int, depth: int) -> nn.Module:
    torch.manual_seed(0)
    if name == TORCH:
        return TorchEncoderViT(depth=depth, img=img)
    return vit_small(4 if name == REGISTERS else 0, img_size=img, depth=depth)


def forward_step(model: nn.Module, x: torch.Tensor):
    def step() -> None:
        model.eval()
        with torch.inference_mode():
            model(x)

    return step


def train_step(model: nn.Module, x: torch.Tensor):
    def step() -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        model(x).float().sum().backward()

    return step


def main() -> None:
    parser = bench.arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]), repeats=9, device=True)
    parser.add_argument("--batch", type=int, default=0, help="default: 64 on CUDA, 4 on CPU")
    args = bench.parse(parser)
    device = torch.device(args.device)
    batch = 2 if args.smoke else args.batch or (64 if device.type == "cuda" else 4)
    img, depth = (28, 1) if args.smoke else (224, 12)  # --smoke: one block on 2x2 patches
    torch.manual_seed(0)
    x = torch.randn(batch, 3, img, img, device=device)
    if args.memory_of:
        bench.child_reply(bench.peak_mib(train_step(build(args.memory_of, img, depth).to(device), x)))
        return
    models = {name: build(name, img, depth).to(device) for name in (TORCH, OURS, REGISTERS)}
    calls = 1 if device.type == "cpu" else 10
    forward = bench.interleaved({n: bench.seconds_of(forward_step(m, x), device, calls) for n, m in models.items()},
                                args.repeats)
    train = bench.interleaved({n: bench.seconds_of(train_step(m, x), device, calls) for n, m in models.items()},
                              args.repeats)
    rate = {mode: {n: [batch / s for s in t] for n, t in times.items()} for mode, times in
            (("forward", forward), ("forward+backward", train))}
    setting = f"ViT-S/14 ({depth} blocks) at {img} px, batch {batch}"
    rows = []
    for mode, r in rate.items():
        rows.append(bench.row("registers_vit", f"{mode} ours / torch", f"images/s of ours vs nn.TransformerEncoder, "
                              f"{mode}, {setting}", bench.paired(r[OURS], r[TORCH]), bench.Goal(">=", 1.0),
                              str(device), bench.medians({k: r[k] for k in (OURS, TORCH)}, "images/s")))
    for mode, times in (("forward", forward), ("forward+backward", train)):
        rows.append(bench.row("registers_vit", f"{mode} time 4 / 0 registers", f"time of ours with 4 registers vs "
                              f"0, {mode}, {setting}", bench.paired(times[REGISTERS], times[OURS]),
                              bench.Goal("<=", 1.03), str(device),
                              bench.medians({k: times[k] for k in (REGISTERS, OURS)}, "ms", 1e3)))
    forwarded = bench.forwarded_options(args, "smoke", "device", "batch", "threads")
    peaks = bench.peaks_mib(__file__, list(models), forwarded, device, lambda n: train_step(models[n], x))
    for name, reference in ((OURS, TORCH), (REGISTERS, OURS)):
        label = f"peak memory {name} / {reference}"
        if None in peaks.values():
            rows.append(bench.row("registers_vit", label, "", None, None, str(device), status=bench.MEMORY_UNAVAILABLE))
        else:
            rows.append(bench.row("registers_vit", label, f"peak memory a forward+backward adds, {setting}",
                                  [peaks[name] / peaks[reference]], None, str(device),
                                  {f"{k} MiB": peaks[k] for k in (name, reference)}))
    bench.report(rows, args.results)


if __name__ == "__main__":
    main()
