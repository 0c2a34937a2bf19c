"""Few-shot evaluation: accuracy over many test episodes with a 95% confidence interval (the protocol of Snell et
al. 2017, Sec. 3.1, and Finn et al. 2017: 600+ episodes, mean +- 1.96 standard errors), and the classifiers that
work on fixed features: nearest prototype, nearest neighbour (the pixel baseline of Vinyals et al. 2016, Table 1)
and a cosine classifier fitted on the support set (the Baseline++ of Chen et al. 2019, arXiv 1904.04232)."""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from paperzoo.data.episodes import EpisodeSampler, as_float
from paperzoo.engine.dry_run import dry_run_steps
from paperzoo.metalearning.protonet import prototypes


def mean_ci95(accuracies) -> tuple[float, float]:
    """(mean, half-width of the 95% normal confidence interval) of per-episode accuracies."""
    acc = torch.as_tensor(accuracies, dtype=torch.float64)
    if acc.numel() < 2:
        raise ValueError("a confidence interval needs at least two episodes")
    return acc.mean().item(), 1.96 * acc.std(unbiased=True).item() / math.sqrt(acc.numel())


def _batched_indices(sampler: EpisodeSampler, first: int, count: int):
    eps = [sampler(first + i) for i in range(count)]
    stack = lambda name: torch.stack([getattr(e, name) for e in eps])  # noqa: E731  (T, ...)
    return stack("support"), stack("support_y"), stack("query"), stack("query_y")


def episode_accuracies(predict: Callable, images: torch.Tensor, sampler: EpisodeSampler, episodes: int,
                       batch: int = 50) -> torch.Tensor:
    """Per-episode query accuracy (episodes,) of `predict(support_x (T,S,C,H,W), support_y (T,S), query_x)`."""
    accs = []
    with torch.no_grad():
        for first in range(0, episodes, batch):
            s, sy, q, qy = _batched_indices(sampler, first, min(batch, episodes - first))
            logits = predict(as_float(images[s]), sy, as_float(images[q]))  # (T, Q, N)
            accs.append((logits.argmax(-1) == qy).float().mean(1))
    return torch.cat(accs)


def feature_accuracies(classify: Callable, features: torch.Tensor, sampler: EpisodeSampler, episodes: int,
                       batch: int = 200) -> torch.Tensor:
    """Like `episode_accuracies` on precomputed per-example features (N, D):
    `classify(support_f (T,S,D), support_y (T,S), query_f (T,Q,D), n_way) -> logits (T,Q,N)`."""
    accs = []
    for first in range(0, episodes, batch):
        s, sy, q, qy = _batched_indices(sampler, first, min(batch, episodes - first))
        logits = classify(features[s], sy, features[q], sampler.n_way)
        accs.append((logits.argmax(-1) == qy).float().mean(1))
    return torch.cat(accs)


def nearest_neighbour_logits(support_f: torch.Tensor, support_y: torch.Tensor, query_f: torch.Tensor,
                             n_way: int) -> torch.Tensor:
    """Logit of class k = -(distance to its nearest support example): 1-NN over all support examples."""
    dist = torch.cdist(query_f, support_f)  # (T, Q, S)
    mask = F.one_hot(support_y, n_way).transpose(-1, -2).bool()[:, None]  # (T, 1, N, S)
    return (-dist[:, :, None, :]).masked_fill(~mask, float("-inf")).amax(-1)  # (T, Q, N)


def cosine_head_logits(support_f: torch.Tensor, support_y: torch.Tensor, query_f: torch.Tensor, n_way: int,
                       steps: int = 100, lr: float = 0.01, scale: float = 10.0) -> torch.Tensor:
    """Chen et al. 2019's Baseline++ adaptation: a new cosine classifier per episode (logit = scale * cos(f, w_k)),
    fitted on the frozen support features by cross-entropy with Adam, all episodes at once. The class weights start
    at the support class means (the first step's classifier is the cosine nearest centroid).
    support_f (T, S, D), support_y (T, S), query_f (T, Q, D) -> query logits (T, Q, n_way)."""
    sf, qf = F.normalize(support_f, dim=-1), F.normalize(query_f, dim=-1)
    w = prototypes(sf, support_y, n_way).clone().requires_grad_()  # (T, N, D)
    opt = torch.optim.Adam([w], lr=lr)

    def logits(f: torch.Tensor) -> torch.Tensor:
        return scale * f @ F.normalize(w, dim=-1).transpose(-1, -2)  # (T, rows, N)

    with torch.enable_grad():
        for _ in range(dry_run_steps(steps)):
            loss = F.cross_entropy(logits(sf).flatten(0, 1), support_y.flatten())
            opt.zero_grad()
            loss.backward()
            opt.step()
    return logits(qf).detach()
