"""BatchNorm2d forward + backward time on the CPU: paperzoo's autograd version, its hand-written backward, the
autograd version under torch.compile (when it compiles here), against torch.nn.BatchNorm2d, printed as ratios.

Ioffe & Szegedy 2015 (arXiv 1502.03167), Algorithm 1 and the gradient of Sec. 3.

    python benchmarks/batchnorm_speed.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import time

import torch

from paperzoo.batchnorm import BatchNorm2d

SHAPES = [(64, 32, 28, 28), (128, 64, 14, 14), (32, 256, 7, 7)]


def seconds_per_step(module: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    grad = torch.randn_like(x)
    for _ in range(2):  # warm-up (and compilation)
        module(x).backward(grad)
    started = time.perf_counter()
    for _ in range(repeats):
        x.grad = None
        module(x).backward(grad)
    return (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    for shape in SHAPES:
        x = torch.randn(*shape, requires_grad=True)
        c = shape[1]
        variants = {"torch.nn.BatchNorm2d": torch.nn.BatchNorm2d(c), "ours (autograd)": BatchNorm2d(c),
                    "ours (hand-written backward)": BatchNorm2d(c, backward="manual")}
        try:
            compiled = torch.compile(BatchNorm2d(c))
            compiled(x).sum().backward()
            variants["ours (torch.compile)"] = compiled
        except Exception as e:  # no C++ compiler, unsupported platform, ...
            print(f"  torch.compile unavailable here: {type(e).__name__}: {str(e).splitlines()[0][:100]}")
        times = {name: seconds_per_step(m, x, args.repeats) for name, m in variants.items()}
        reference = times["torch.nn.BatchNorm2d"]
        print(f"shape {shape}:")
        for name, t in times.items():
            print(f"  {name:<30} {1000 * t:8.2f} ms   {t / reference:5.2f}x torch's time")


if __name__ == "__main__":
    main()
