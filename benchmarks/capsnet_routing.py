"""CapsNet DigitCaps (prediction vectors + 3 routing iterations), forward + backward at batch 128 on the CPU:
paperzoo's einsum routing vs a reference written the common way (W tiled over the batch, u tiled over the
parents, batched matmul of 16x8 by 8x1, routing on 5-D tensors).

Sabour, Frosst & Hinton 2017 (arXiv 1710.09829), Sec. 4: 1152 primary 8D capsules -> 10 digit 16D capsules.
Each variant runs in its own process so that its peak resident memory can be read from the OS.

    python benchmarks/capsnet_routing.py [--batch 128] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from paperzoo.capsnet import DigitCaps, squash

CHILDREN, IN_DIM, PARENTS, OUT_DIM, ITERATIONS = 1152, 8, 10, 16, 3


def reference_digitcaps(u: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The common formulation: materialise W for every example and u for every parent, then matmul."""
    b = u.shape[0]
    w = weight[None].repeat(b, 1, 1, 1, 1)  # (B, N, J, 16, 8)
    u = u[:, :, None, :, None].repeat(1, 1, PARENTS, 1, 1)  # (B, N, J, 8, 1)
    u_hat = w @ u  # (B, N, J, 16, 1)
    logits = torch.zeros(b, CHILDREN, PARENTS, 1, 1)
    for r in range(ITERATIONS):
        c = logits.softmax(dim=2)  # (B, N, J, 1, 1)
        v = squash((c * u_hat).sum(1, keepdim=True), dim=3)  # (B, 1, J, 16, 1)
        if r < ITERATIONS - 1:
            logits = logits + u_hat.transpose(3, 4) @ v.repeat(1, CHILDREN, 1, 1, 1)  # (B, N, J, 1, 1)
    return v.view(b, PARENTS, OUT_DIM)  # (B, J, 16)


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


def measure(variant: str, batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    layer = DigitCaps(CHILDREN, IN_DIM, PARENTS, OUT_DIM, ITERATIONS)
    u = squash(torch.randn(batch, CHILDREN, IN_DIM))
    step = (lambda: layer(u)) if variant == "ours" else (lambda: reference_digitcaps(u, layer.weight))
    before = rss_kib()
    step().norm(dim=-1).sum().backward()  # warm-up (and the memory high-water mark)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    started = time.perf_counter()
    for _ in range(repeats):
        layer.weight.grad = None
        step().norm(dim=-1).sum().backward()
    seconds = (time.perf_counter() - started) / repeats
    return {"variant": variant, "images_per_s": batch / seconds, "peak_extra_mib": peak / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variant", choices=["ours", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args.variant, args.batch, args.repeats)))
        return
    torch.manual_seed(0)
    layer = DigitCaps(CHILDREN, IN_DIM, PARENTS, OUT_DIM, ITERATIONS)
    u = squash(torch.randn(4, CHILDREN, IN_DIM))
    assert torch.allclose(layer(u), reference_digitcaps(u, layer.weight), atol=1e-5), "variants disagree"
    results = {}
    for variant in ("ours", "reference"):
        out = subprocess.run([sys.executable, __file__, "--variant", variant, "--batch", str(args.batch),
                              "--repeats", str(args.repeats)], capture_output=True, text=True, check=True)
        results[variant] = json.loads(out.stdout)
        r = results[variant]
        print(f"{variant:>9}: {r['images_per_s']:8.1f} images/s forward+backward, peak +{r['peak_extra_mib']:.0f} MiB")
    ours, ref = results["ours"], results["reference"]
    print(f"speed ratio ours/reference: {ours['images_per_s'] / ref['images_per_s']:.2f}x; "
          f"memory ratio ours/reference: {ours['peak_extra_mib'] / ref['peak_extra_mib']:.2f}")


if __name__ == "__main__":
    main()
