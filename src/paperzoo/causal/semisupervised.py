"""Causal vs anticausal learning and semi-supervised learning (SSL).

Schölkopf et al., "On Causal and Anticausal Learning" (ICML 2012, arXiv 1206.6471), Sec. 3: when X causes Y, the
independence of p(X) and the mechanism p(Y | X) means unlabeled x (which only inform p(X)) cannot help predict Y;
when Y causes X (predicting the cause), p(X) = sum_y p(y) p(X | y) carries information about p(Y | X), and SSL can
help. Schölkopf et al. 2021 (arXiv 2102.11107) Sec. 5 restates it.

Both tasks here have the same second moments of X and similar Bayes accuracy; the learner is the same logistic
regression, trained with or without an entropy-minimisation term on the unlabeled points (Grandvalet & Bengio
2005), many repetitions in one batched run.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from paperzoo.engine.dry_run import dry_run_steps
from paperzoo.errors import UserError


def make_task(direction: str, reps: int, n: int, generator: torch.Generator, separation: float = 3.0,
              slope: float = 4.0) -> tuple[Tensor, Tensor]:
    """x (reps, n, 2) and y (reps, n) for each of `reps` independently drawn 2-D binary tasks.

    anticausal: y ~ Bernoulli(1/2), x | y ~ N(+-separation/2 * v, I) (the label causes the features);
    causal:     x ~ N(0, I + separation^2/4 v v^T) (the same covariance), y | x ~ Bernoulli(sigmoid(slope w.x)) with
                w a direction drawn independently of the input distribution.
    """
    angle = torch.rand(reps, 1, generator=generator) * 2 * math.pi
    v = torch.cat([angle.cos(), angle.sin()], 1)  # (reps, 2)
    z = torch.randn(reps, n, 2, generator=generator)
    if direction == "anticausal":
        y = torch.randint(0, 2, (reps, n), generator=generator)
        x = z + (y[..., None] - 0.5) * separation * v[:, None, :]
        return x, y
    if direction == "causal":
        along = (z * v[:, None, :]).sum(-1, keepdim=True)  # (reps, n, 1)
        x = z + (math.sqrt(1 + separation ** 2 / 4) - 1) * along * v[:, None, :]
        angle_w = torch.rand(reps, 1, generator=generator) * 2 * math.pi
        w = torch.cat([angle_w.cos(), angle_w.sin()], 1)  # (reps, 2)
        p = torch.sigmoid(slope * (x * w[:, None, :]).sum(-1))
        return x, torch.bernoulli(p, generator=generator).long()
    raise UserError(f"direction must be 'causal' or 'anticausal', got {direction!r}")


def fit_logistic(x: Tensor, y: Tensor, unlabeled: Tensor | None = None, entropy_weight: float = 1.0,
                 l2: float = 0.01, steps: int = 300, lr: float = 0.1) -> Tensor:
    """Batched logistic regressions: params (reps, 3) = (w1, w2, b), trained with Adam on the labeled
    cross-entropy, an L2 penalty, and (with `unlabeled`) the mean prediction entropy of the unlabeled points."""
    params = torch.zeros(x.shape[0], 3, requires_grad=True)
    optimizer = torch.optim.Adam([params], lr=lr)
    for _ in range(dry_run_steps(steps)):
        logits = logits_of(params, x)
        loss = F.binary_cross_entropy_with_logits(logits, y.float()) * x.shape[0]
        loss = loss + l2 * (params[:, :2] ** 2).sum()
        if unlabeled is not None:
            q = logits_of(params, unlabeled)
            entropy = F.binary_cross_entropy_with_logits(q, torch.sigmoid(q))  # mean H(p) per point
            loss = loss + entropy_weight * entropy * x.shape[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return params.detach()


def logits_of(params: Tensor, x: Tensor) -> Tensor:
    return (x * params[:, None, :2]).sum(-1) + params[:, 2:3]  # (reps, n)


def ssl_gain(direction: str, reps: int, labeled: int, unlabeled: int, test: int = 2000, seed: int = 0) -> dict:
    """Test accuracy of supervised vs semi-supervised logistic regression over `reps` random tasks."""
    generator = torch.Generator().manual_seed(seed)
    x, y = make_task(direction, reps, labeled + unlabeled + test, generator)
    xl, yl = x[:, :labeled], y[:, :labeled]
    xu = x[:, labeled:labeled + unlabeled]
    xt, yt = x[:, labeled + unlabeled:], y[:, labeled + unlabeled:]
    supervised = fit_logistic(xl, yl)
    semi = fit_logistic(xl, yl, xu)
    acc_sup = ((logits_of(supervised, xt) > 0).long() == yt).float().mean(1)  # (reps,)
    acc_ssl = ((logits_of(semi, xt) > 0).long() == yt).float().mean(1)
    gain = acc_ssl - acc_sup
    return {"acc_supervised": float(acc_sup.mean()), "acc_semi_supervised": float(acc_ssl.mean()),
            "gain": float(gain.mean()), "gain_se": float(gain.std() / math.sqrt(reps))}
