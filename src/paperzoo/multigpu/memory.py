"""Peak memory per GPU for plain `nn.DataParallel`, DataParallel with the loss inside the replicas
(`ReplicaLoss`), and DDP, on a model whose outputs are large: a token model with a wide vocabulary head, whose
(B, T, V) logits plain DP gathers on GPU 0. Needs >= 2 CUDA GPUs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo.engine import distributed as D
from paperzoo.multigpu.dp import ReplicaLoss, replica_mean
from paperzoo.multigpu.launch import spawn_group


class TokenModel(nn.Module):
    """tokens (B, T) -> embedding -> MLP -> logits (B, T, V)."""

    def __init__(self, vocab: int, dim: int = 256):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.head = nn.Linear(dim, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens)  # (B, T, D)
        return self.head(h + self.mlp(h))  # (B, T, V)


def token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())  # (B*T, V) against (B*T,)


def _data(batch: int, seq: int, vocab: int, seed: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (batch, seq + 1), generator=g)
    return tokens[:, :-1].to(device), tokens[:, 1:].to(device)  # next-token targets


def _gib(device: int) -> float:
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 3)


def _dp_peaks(loss_inside: bool, batch: int, seq: int, vocab: int, steps: int, seed: int) -> list[float]:
    devices = list(range(torch.cuda.device_count()))
    torch.manual_seed(seed)
    model = TokenModel(vocab).cuda(0)
    wrapped = nn.DataParallel(ReplicaLoss(model, token_loss) if loss_inside else model, device_ids=devices)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = _data(batch, seq, vocab, seed, "cuda:0")
    for d in devices:
        torch.cuda.synchronize(d)
        torch.cuda.reset_peak_memory_stats(d)
    for _ in range(steps):
        loss = replica_mean(wrapped(x, y)) if loss_inside else token_loss(wrapped(x), y)  # plain: logits on GPU 0
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    for d in devices:
        torch.cuda.synchronize(d)
    peaks = [_gib(d) for d in devices]
    del model, wrapped, optimizer, x, y
    torch.cuda.empty_cache()
    return peaks


def ddp_memory_worker(batch: int, seq: int, vocab: int, steps: int, seed: int) -> float:
    """One DDP rank (nccl) on its own GPU with batch // world_size sequences; returns its peak GiB."""
    env = D.dist_env()
    device = D.pick_device("cuda", env)
    D.init_process_group(env, device, 300.0)
    try:
        torch.manual_seed(seed)
        model = nn.parallel.DistributedDataParallel(TokenModel(vocab).to(device), device_ids=[device.index])
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        x, y = _data(batch, seq, vocab, seed, "cpu")
        share = batch // env.world_size
        x = x[env.rank * share:(env.rank + 1) * share].to(device)  # (B / world, T)
        y = y[env.rank * share:(env.rank + 1) * share].to(device)
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(steps):
            token_loss(model(x), y).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize(device)
        return _gib(device.index)
    finally:
        D.teardown()


def _imbalance(peaks: list[float]) -> float:
    return round(peaks[0] / (sum(peaks[1:]) / len(peaks[1:])), 3)


def dp_memory_experiment(batch: int, seq: int, vocab: int, steps: int, seed: int) -> dict:
    """Peak GiB per GPU for the three set-ups and their imbalance peak(GPU 0) / mean peak(other GPUs)."""
    count = torch.cuda.device_count()
    if count < 2:
        raise ValueError(f"dp_memory_experiment needs >= 2 GPUs, found {count}")
    peaks = {"dp": _dp_peaks(False, batch, seq, vocab, steps, seed),
             "dp_loss_inside": _dp_peaks(True, batch, seq, vocab, steps, seed),
             "ddp": spawn_group(ddp_memory_worker, world_size=count, args=(batch, seq, vocab, steps, seed),
                                timeout_s=600)}
    values: dict = {"gpus": count, "batch": batch, "seq": seq, "vocab": vocab}
    for name, p in peaks.items():
        values[f"peak_gib_{name}"] = p
        values[f"{name}_imbalance"] = _imbalance(p)
    return values
