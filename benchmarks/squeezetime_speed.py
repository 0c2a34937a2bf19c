"""SqueezeTime vs its baselines in clips/s (inference), as ratios SqueezeTime / baseline, and peak memory (the
paper's speed comparison, arXiv 2405.08344 Fig. 1 / Table 1). Goal: faster than the 3D CNNs (R3D-18, R(2+1)D-18)
at the same input; the mobile 2D baselines (TSN, TSM) are reported without a goal.

All five models run interleaved over repeats at each input. Peak memory of a forward pass: CUDA's peak
allocation, or a fresh process per model on a CPU (paperzoo.bench). Defaults: 16x112x112 at batch 1 on a CPU;
16x112 and 16x224 at batch 1 and 8 on CUDA.

    python benchmarks/squeezetime_speed.py [--sizes 112 224] [--batches 1 8] [--repeats 7] [--device cuda]
"""

from __future__ import annotations

import argparse

import torch

from paperzoo import bench
from paperzoo.squeezetime.zoo import build_video_model, model_cost

MODELS = ("squeezetime", "r3d", "r2plus1d", "tsn", "tsm")
GOALS = {"r3d": bench.Goal(">=", 1.0), "r2plus1d": bench.Goal(">=", 1.0), "tsn": None, "tsm": None}
CLASSES = 400


def build(name: str, frames: int, size: int, smoke: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_video_model(name, CLASSES, frames, size, scale="tiny" if smoke else "paper").eval()


def inference(model: torch.nn.Module, clips: torch.Tensor):
    def run() -> None:
        with torch.inference_mode():
            model(clips)

    return run


def rows_at(size: int, batch: int, frames: int, args, device: torch.device) -> list[dict]:
    models = {n: build(n, frames, size, args.smoke).to(device) for n in MODELS}
    macs = {n: model_cost(lambda n=n: build(n, frames, size, args.smoke), (1, 3, frames, size, size))["macs"]
            for n in MODELS}
    clips = torch.rand(batch, 3, frames, size, size, device=device)  # (B, C, T, H, W)
    times = bench.interleaved({n: bench.seconds_of(inference(m, clips), device) for n, m in models.items()},
                              args.repeats)
    rates = {n: [batch / s for s in t] for n, t in times.items()}
    setting = f"{frames}x{size}x{size}, batch {batch}"
    return [bench.row("squeezetime_speed", f"clips/s squeezetime / {n}, {size} px b{batch}", f"inference clips/s, "
                      f"{setting} (GMACs/clip {macs['squeezetime'] / 1e9:.3g} vs {macs[n] / 1e9:.3g})",
                      bench.paired(rates["squeezetime"], rates[n]), GOALS[n], str(device),
                      bench.medians({k: rates[k] for k in ("squeezetime", n)}, "clips/s")) for n in GOALS]


def main() -> None:
    parser = bench.arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]), repeats=7, device=True)
    parser.add_argument("--sizes", type=int, nargs="+", help="frame sizes (default: 112 on a CPU, 112 224 on CUDA)")
    parser.add_argument("--batches", type=int, nargs="+", help="batch sizes (default: 1 on a CPU, 1 8 on CUDA)")
    parser.add_argument("--frames", type=int, default=16)
    args = bench.parse(parser)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    sizes = [32] if args.smoke else args.sizes or ([112, 224] if cuda else [112])
    batches = [1] if args.smoke else args.batches or ([1, 8] if cuda else [1])
    frames = 8 if args.smoke else args.frames
    if args.memory_of:
        clips = torch.rand(batches[0], 3, frames, sizes[0], sizes[0], device=device)
        bench.child_reply(bench.peak_mib(inference(build(args.memory_of, frames, sizes[0], args.smoke), clips)))
        return
    rows = [r for size in sizes for batch in batches for r in rows_at(size, batch, frames, args, device)]
    memory_models = MODELS[:2] if args.smoke else MODELS  # --smoke: one pair shows the path works
    forwarded = bench.forwarded_options(args, "smoke", "device", "sizes", "batches", "frames", "threads")
    clips = torch.rand(batches[0], 3, frames, sizes[0], sizes[0], device=device)
    peaks = bench.peaks_mib(__file__, list(memory_models), forwarded, device,
                            lambda n: inference(build(n, frames, sizes[0], args.smoke).to(device), clips))
    setting = f"forward of {frames}x{sizes[0]}x{sizes[0]}, batch {batches[0]}"
    for name in memory_models[1:]:
        label = f"peak memory squeezetime / {name}"
        if None in peaks.values():
            rows.append(bench.row("squeezetime_speed", label, "", None, None, str(device),
                                  status=bench.MEMORY_UNAVAILABLE))
        else:
            rows.append(bench.row("squeezetime_speed", label, f"peak memory a {setting} adds",
                                  [peaks["squeezetime"] / peaks[name]], None, str(device),
                                  {f"{k} MiB": peaks[k] for k in ("squeezetime", name)}))
    bench.report(rows, args.results)


if __name__ == "__main__":
    main()
