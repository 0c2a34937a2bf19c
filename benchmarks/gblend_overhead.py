"""Cost of Gradient-Blending and OGM-GE per training step, as ratios to naive late fusion (interleaved repeats).

G-Blend adds two unimodal heads and their losses; OGM-GE adds a pass over the encoders' gradients with Gaussian noise.
Neither paper sets a speed goal: the rows say what the extra work costs.
Run: `python benchmarks/gblend_overhead.py [--repeats 7]` or `paperzoo bench gblend_overhead`.
"""

from __future__ import annotations

import argparse

import torch

from paperzoo import bench
from paperzoo.gblend.loss import blended_loss
from paperzoo.gblend.model import FUSED, MultiModalNet
from paperzoo.gblend.ogm import GradientModulator

SIZES = {"image": 784, "audio": 40 * 51}
BATCH = 128
NAIVE, GBLEND = {FUSED: 1.0}, {"image": 0.3, "audio": 0.2, FUSED: 0.5}


def training_step(weights: dict, ogm: bool):
    """One optimizer step of late fusion with these head weights (and OGM-GE), ready to be called repeatedly."""
    torch.manual_seed(0)
    net = MultiModalNet(SIZES, hidden=128, dim=64)
    modulator = GradientModulator(net.encoders, alpha=0.8) if ogm else None
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x = {m: torch.randn(BATCH, d) for m, d in SIZES.items()}
    y = torch.randint(0, 10, (BATCH,))

    def step() -> None:
        out = net(parts=ogm, **x)
        opt.zero_grad()
        blended_loss(out, y, weights).backward()
        if modulator is not None:
            modulator.observe({m: out[f"{FUSED}@{m}"].detach() for m in SIZES}, y)
            modulator.modulate()
        opt.step()

    return step


def main() -> None:
    args = bench.parse(bench.arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]), repeats=9))
    calls = 2 if args.smoke else 30
    steps = {"naive": training_step(NAIVE, ogm=False), "gblend": training_step(GBLEND, ogm=False),
             "ogm": training_step(NAIVE, ogm=True)}
    times = bench.interleaved({k: bench.seconds_of(step, calls=calls) for k, step in steps.items()}, args.repeats)
    ms = bench.medians(times, "ms/step", 1e3)
    rows = [bench.row("gblend_overhead", f"{name} / naive", f"{what}, time per step, batch {BATCH}",
                      bench.paired(times[name], times["naive"]), None, "cpu",
                      {f"{k} ms/step": ms[f"{k} ms/step"] for k in (name, "naive")})
            for name, what in (("gblend", "G-Blend's 3-head loss vs naive late fusion"),
                               ("ogm", "OGM-GE gradient modulation vs naive late fusion"))]
    bench.report(rows, args.results)


if __name__ == "__main__":
    main()
