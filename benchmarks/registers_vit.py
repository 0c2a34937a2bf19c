"""Speed and memory of our ViT-S/14 (paperzoo.registers) at 224 px against a reference of the same size built from
PyTorch's own `nn.TransformerEncoder` (pre-norm, GELU, batch-first), and the cost of 4 registers vs 0.

Prints images/s for forward (inference mode) and forward+backward, and peak memory (CUDA: max allocated; CPU:
peak resident set of the process so far). Goals: ours >= 1.0x the reference; 4 registers <= 3% slower.
Run: `paperzoo bench registers_vit` (or python benchmarks/registers_vit.py [--batch N --iters N --device cuda]).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
from torch import nn

from paperzoo.registers import vit_small


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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def images_per_second(model: nn.Module, x: torch.Tensor, iters: int, backward: bool) -> float:
    def step():
        if backward:
            model(x).float().sum().backward()
        else:
            with torch.inference_mode():
                model(x)

    model.train(backward)
    for _ in range(2):
        step()
    _sync(x.device)
    start = time.perf_counter()
    for _ in range(iters):
        step()
    _sync(x.device)
    return iters * len(x) / (time.perf_counter() - start)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=0, help="default: 64 on CUDA, 4 on CPU")
    parser.add_argument("--iters", type=int, default=0, help="default: 20 on CUDA, 3 on CPU")
    args, _ = parser.parse_known_args()
    device = torch.device(args.device)
    batch = args.batch or (64 if device.type == "cuda" else 4)
    iters = args.iters or (20 if device.type == "cuda" else 3)
    torch.manual_seed(0)
    x = torch.randn(batch, 3, 224, 224, device=device)
    models = {"torch nn.TransformerEncoder": TorchEncoderViT(), "ours, 0 registers": vit_small(0, img_size=224),
              "ours, 4 registers": vit_small(4, img_size=224)}
    rows = {}
    for name, model in models.items():
        model.to(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        fwd = images_per_second(model, x, iters, backward=False)
        train = images_per_second(model, x, iters, backward=True)
        rows[name] = (fwd, train, peak_memory_mb(device))
        model.to("cpu")
    print(f"ViT-S/14, 224 px, batch {batch}, {iters} iterations, device {device}")
    print(f"{'model':<30}{'fwd img/s':>12}{'fwd+bwd img/s':>16}{'peak MB':>10}")
    for name, (fwd, train, mem) in rows.items():
        print(f"{name:<30}{fwd:>12.1f}{train:>16.1f}{mem:>10.0f}")
    ref, ours, reg = rows["torch nn.TransformerEncoder"], rows["ours, 0 registers"], rows["ours, 4 registers"]
    print(f"ours / torch reference: forward {ours[0] / ref[0]:.2f}x, forward+backward {ours[1] / ref[1]:.2f}x "
          "(goal >= 1.0x)")
    print(f"time cost of 4 registers vs 0: forward {100 * (ours[0] / reg[0] - 1):+.1f}%, forward+backward "
          f"{100 * (ours[1] / reg[1] - 1):+.1f}% (goal <= +3%; 261 vs 257 tokens = +1.6% work)")


if __name__ == "__main__":
    main()
