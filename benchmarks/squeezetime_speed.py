"""SqueezeTime vs its baselines: clips/s and peak memory at 16x112x112 and 16x224x224, batch 1 and 8, as ratios
against R3D-18, all in one process (the paper's speed comparison, arXiv 2405.08344 Fig. 1 / Table 1).

    python benchmarks/squeezetime_speed.py [--sizes 112 224] [--batches 1 8] [--repeats 5] [--device cuda]

Peak memory is CUDA's max allocated memory on a GPU; on the CPU it is not measured (printed as -).
"""

from __future__ import annotations

import argparse

import torch

from paperzoo.squeezetime.zoo import build_video_model, clips_per_second, model_cost

MODELS = ("squeezetime", "r3d", "r2plus1d", "tsn", "tsm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[112, 224])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"device: {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}, "
          f"threads {torch.get_num_threads()}, {args.frames} frames")
    print(f"{'size':>5} {'batch':>5} {'model':>12} {'GMACs':>7} {'clips/s':>9} {'x R3D':>7} {'peak MiB':>9}")
    for size in args.sizes:
        models = {n: build_video_model(n, 400, args.frames, size).to(device) for n in MODELS}
        macs = {n: model_cost(lambda n=n: build_video_model(n, 400, args.frames, size),
                              (1, 3, args.frames, size, size))["macs"] for n in MODELS}
        for batch in args.batches:
            clips = torch.rand(batch, 3, args.frames, size, size, device=device)
            rows = {}
            for name, model in models.items():
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                rate = clips_per_second(model, clips, args.repeats, warmup=2)
                peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
                rows[name] = (rate, peak)
            for name, (rate, peak) in rows.items():
                print(f"{size:>5} {batch:>5} {name:>12} {macs[name] / 1e9:>7.2f} {rate:>9.2f} "
                      f"{rate / rows['r3d'][0]:>7.2f} {'-' if peak is None else f'{peak:.0f}':>9}")


if __name__ == "__main__":
    main()
