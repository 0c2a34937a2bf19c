"""BatchNorm2d forward + backward time on the CPU: paperzoo's autograd version, its hand-written backward, the
autograd version under torch.compile (when it compiles here), each as a time ratio to torch.nn.BatchNorm2d.

Ioffe & Szegedy 2015 (arXiv 1502.03167), Algorithm 1 and the gradient of Sec. 3. Ours is the reference
implementation of the paper's equations, not a fast path: the rows have no goal. A repeat times every variant on
every shape (interleaved); the ratio is the variant's total time over the shapes to torch's.

    python benchmarks/batchnorm_speed.py [--repeats 7] [--no-compile]
"""

from __future__ import annotations

import argparse

import torch

from paperzoo import bench
from paperzoo.batchnorm import BatchNorm2d

SHAPES = [(64, 32, 28, 28), (128, 64, 14, 14), (32, 256, 7, 7)]
SMOKE_SHAPES = [(8, 4, 6, 6)]
TORCH = "torch.nn.BatchNorm2d"


def variants(channels: int, compile_: bool) -> dict[str, torch.nn.Module]:
    out = {TORCH: torch.nn.BatchNorm2d(channels), "autograd": BatchNorm2d(channels),
           "hand-written backward": BatchNorm2d(channels, backward="manual")}
    if compile_:
        out["torch.compile"] = torch.compile(BatchNorm2d(channels))
    return out


def fwd_bwd(module: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor):
    def step() -> None:
        x.grad = None
        module(x).backward(grad)

    return step


def main() -> None:
    parser = bench.arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]), repeats=7)
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile variant")
    args = bench.parse(parser)
    torch.manual_seed(0)
    compile_ = not (args.no_compile or args.smoke)
    steps = {}  # {variant: [step on each shape]}
    for shape in SMOKE_SHAPES if args.smoke else SHAPES:
        x = torch.randn(*shape, requires_grad=True)
        grad = torch.randn_like(x)
        for name, module in variants(shape[1], compile_).items():
            steps.setdefault(name, []).append(fwd_bwd(module, x, grad))
    compiled = "torch.compile" in steps
    if compiled:
        try:
            for step in steps["torch.compile"]:
                step()
        except Exception as e:  # no C++ compiler, unsupported platform, ...
            print(f"torch.compile unavailable here: {type(e).__name__}: {str(e).splitlines()[0][:100]}")
            del steps["torch.compile"]
            compiled = False
    calls = 2 if args.smoke else 10
    measures = {name: (lambda shape_steps=shape_steps: sum(bench.seconds_of(s, calls=calls)() for s in shape_steps))
                for name, shape_steps in steps.items()}
    times = bench.interleaved(measures, args.repeats, warmup=1)
    ms = bench.medians(times, "ms", 1e3)
    rows = [bench.row("batchnorm_speed", f"{name} / torch", f"ours ({name}) vs {TORCH}, forward+backward time "
                      f"summed over {len(steps[TORCH])} shape(s)", bench.paired(times[name], times[TORCH]), None,
                      "cpu", {f"{name} ms": ms[f"{name} ms"], f"{TORCH} ms": ms[f"{TORCH} ms"]})
            for name in steps if name != TORCH]
    if not compiled:
        why = "--smoke" if args.smoke else "--no-compile" if args.no_compile else "torch.compile failed here"
        rows.append(bench.row("batchnorm_speed", "torch.compile / torch", "ours under torch.compile vs torch", None,
                              None, "cpu", status=f"skipped: {why}"))
    bench.report(rows, args.results)


if __name__ == "__main__":
    main()
