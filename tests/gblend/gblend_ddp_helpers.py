"""OGM-GE runs for the 2-rank test (imported by the spawned ranks): the same tiny data and config everywhere."""

from dataclasses import replace

import torch

from paperzoo.engine.trainer import Trainer
from paperzoo.gblend.data import AVDigits, AVDigitsConfig, Split
from paperzoo.gblend.method import MultiModalConfig, MultiModalMethod

N = 32


def tiny_data() -> AVDigits:
    g = torch.Generator().manual_seed(0)

    def split():
        return Split(torch.rand(N, 1, 28, 28, generator=g), torch.randn(N, 1, 40, 51, generator=g),
                     torch.arange(N) % 10)

    return AVDigits(split(), split(), split(), AVDigitsConfig())


def ogm_config(batch_size: int, accumulation: int = 1) -> MultiModalConfig:
    """OGM-GE with a strong alpha (the image share dominates early, so k_image < 1) for 6 steps of SGD."""
    cfg = MultiModalConfig(ogm_alpha=0.8, hidden=16, dim=8, train_eval_size=N)
    return replace(cfg, train=replace(cfg.train, steps=6, batch_size=batch_size, accumulation=accumulation,
                                      log_every=1, eval_every=3, progress=False, device="cpu", seed=5))


def ogm_run(batch_size: int, accumulation: int = 1) -> dict:
    """Final parameters (flat) and the logged k_u per step of one run; under the spawned ranks, one rank's."""
    cfg = ogm_config(batch_size, accumulation)
    result = Trainer(MultiModalMethod(cfg, tiny_data()), cfg.train).fit()
    k = {m: result.history.series("train", f"ogm_k_{m}")[1] for m in cfg.modalities}
    return {"params": torch.cat([p.detach().reshape(-1) for p in result.model.parameters()]).tolist(), "k": k}
