"""Cost of Gradient-Blending and OGM-GE per training step, as ratios to naive late fusion (same process).

G-Blend adds two unimodal heads and their losses; OGM-GE adds per-parameter gradient hooks with Gaussian noise.
Run: python benchmarks/gblend_overhead.py
"""

from __future__ import annotations

import time

import torch

from paperzoo.gblend.loss import blended_loss
from paperzoo.gblend.model import FUSED, MultiModalNet
from paperzoo.gblend.ogm import GradientModulator, ogm_coefficients

SIZES = {"image": 784, "audio": 40 * 51}


def step_seconds(weights: dict, ogm: bool, steps: int = 60, batch: int = 128) -> float:
    torch.manual_seed(0)
    net = MultiModalNet(SIZES, hidden=128, dim=64)
    modulator = GradientModulator(net.encoders) if ogm else None
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x = {m: torch.randn(batch, d) for m, d in SIZES.items()}
    y = torch.randint(0, 10, (batch,))
    for i in range(steps + 10):
        if i == 10:
            start = time.perf_counter()
        out = net(parts=ogm, **x)
        if modulator is not None:
            modulator.coefficients = ogm_coefficients({m: out[f"{FUSED}@{m}"].detach() for m in SIZES}, y, 0.8)
        opt.zero_grad()
        blended_loss(out, y, weights).backward()
        opt.step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    naive = step_seconds({FUSED: 1.0}, ogm=False)
    gblend = step_seconds({"image": 0.3, "audio": 0.2, FUSED: 0.5}, ogm=False)
    ogm = step_seconds({FUSED: 1.0}, ogm=True)
    print(f"naive late fusion: {naive * 1e3:.2f} ms/step (batch 128)")
    print(f"G-Blend (3 heads) / naive: {gblend / naive:.2f}x")
    print(f"OGM-GE / naive:            {ogm / naive:.2f}x")


if __name__ == "__main__":
    main()
