"""A contextual bandit with a known reward, where the KL-constrained optimum is known exactly.

With prompts x, a finite set of responses y per prompt, a reference policy pi_ref and a reward r, the maximiser of
E[r] - beta KL(pi || pi_ref) is pi*(y|x) = pi_ref(y|x) exp(r(x,y)/beta) / Z(x) (Rafailov et al. Eq. 4).
Preference pairs are two responses drawn from pi_ref, ordered by a Bradley-Terry draw (Eq. 1). Policies and reward
models are tables of logits, so the losses of `paperzoo.dpo.loss` are the only modelling choice:
  dpo_policy       minimises the DPO loss (Eq. 7) over all pairs (full batch, L-BFGS)
  reward_table     fits a Bradley-Terry reward model by its NLL (Eq. 2)
  reinforce_policy maximises E[r_hat] - beta KL by REINFORCE with a leave-one-out baseline, from samples only
Pairs are stored as counts n[x, w, l] (times w was preferred to l for prompt x), so any data size costs the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from paperzoo.dpo.loss import bradley_terry_loss, dpo_loss
from paperzoo.engine.dry_run import dry_run_steps


@dataclass
class Bandit:
    ref_logits: torch.Tensor  # (P, K) log pi_ref up to a constant per prompt
    reward: torch.Tensor  # (P, K)
    beta: float

    @classmethod
    def random(cls, prompts: int, responses: int, beta: float, seed: int) -> "Bandit":
        g = torch.Generator().manual_seed(seed)
        return cls(torch.randn(prompts, responses, generator=g, dtype=torch.float64),
                   torch.randn(prompts, responses, generator=g, dtype=torch.float64), beta)

    @property
    def log_ref(self) -> torch.Tensor:
        return torch.log_softmax(self.ref_logits, -1)

    @property
    def log_optimal(self) -> torch.Tensor:
        """log pi*(y|x) = log softmax(log pi_ref + r / beta) (Eq. 4)."""
        return torch.log_softmax(self.log_ref + self.reward / self.beta, -1)

    def kl_to_optimal(self, log_pi: torch.Tensor) -> float:
        """Mean over prompts of KL(pi || pi*)."""
        log_pi = torch.log_softmax(log_pi, -1)
        return (log_pi.exp() * (log_pi - self.log_optimal)).sum(-1).mean().item()

    def preference_counts(self, pairs_per_prompt: int, seed: int) -> torch.Tensor:
        """n (P, K, K): n[x, w, l] = how often w was preferred to l among pairs (y1, y2) ~ pi_ref, iid."""
        g = torch.Generator().manual_seed(seed)
        p, k = self.reward.shape
        probs = self.log_ref.exp()
        y1 = torch.multinomial(probs, pairs_per_prompt, replacement=True, generator=g)  # (P, n)
        y2 = torch.multinomial(probs, pairs_per_prompt, replacement=True, generator=g)
        r1, r2 = self.reward.gather(1, y1), self.reward.gather(1, y2)
        first_wins = torch.rand(r1.shape, generator=g, dtype=torch.float64) < torch.sigmoid(r1 - r2)
        w, l = torch.where(first_wins, y1, y2), torch.where(first_wins, y2, y1)
        counts = torch.zeros(p, k * k, dtype=torch.float64)
        counts.scatter_add_(1, w * k + l, torch.ones_like(w, dtype=torch.float64))
        return counts.view(p, k, k)


def _pairwise(table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, K) -> two (P*K*K,) views: table[x, w] and table[x, l] for every (x, w, l)."""
    p, k = table.shape
    return table[:, :, None].expand(p, k, k).reshape(-1), table[:, None, :].expand(p, k, k).reshape(-1)


def _fit(params: torch.Tensor, loss_fn, steps: int) -> torch.Tensor:
    """Full-batch L-BFGS from `params` (the losses are smooth and convex in the table)."""
    params = params.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([params], max_iter=dry_run_steps(steps), tolerance_grad=1e-10, tolerance_change=1e-12,
                                  line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_fn(params)
        loss.backward()
        return loss

    optimizer.step(closure)
    return params.detach()


def dpo_policy(bandit: Bandit, counts: torch.Tensor, steps: int = 200) -> torch.Tensor:
    """(P, K) logits of the policy that minimises the DPO loss on the counted pairs, started at pi_ref."""
    weights = counts.reshape(-1)
    ref_w, ref_l = _pairwise(bandit.log_ref)

    def loss(logits: torch.Tensor) -> torch.Tensor:
        pol_w, pol_l = _pairwise(torch.log_softmax(logits, -1))
        losses, _, _ = dpo_loss(pol_w, pol_l, ref_w, ref_l, beta=bandit.beta)
        return (weights * losses).sum() / weights.sum()

    return _fit(bandit.log_ref, loss, steps)


def reward_table(counts: torch.Tensor, steps: int = 200) -> torch.Tensor:
    """(P, K) Bradley-Terry reward model fit by maximum likelihood on the counted pairs (started at 0)."""
    weights = counts.reshape(-1)

    def loss(reward: torch.Tensor) -> torch.Tensor:
        return (weights * bradley_terry_loss(*_pairwise(reward))).sum() / weights.sum()

    return _fit(torch.zeros(counts.shape[:2], dtype=counts.dtype), loss, steps)


def reinforce_policy(bandit: Bandit, reward: torch.Tensor, steps: int = 2000, samples: int = 64, lr: float = 0.05,
                     seed: int = 0) -> torch.Tensor:
    """(P, K) logits maximising E_pi[reward] - beta KL(pi || pi_ref) by REINFORCE on sampled responses.

    Each step draws `samples` responses per prompt from pi, scores them with reward - beta log(pi/pi_ref) (Eq. 3)
    and uses the mean of the other samples as baseline; the learning rate decays to 0 on a cosine.
    """
    g = torch.Generator().manual_seed(seed)
    logits = bandit.log_ref.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([logits], lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + torch.cos(torch.tensor(torch.pi * s / steps)).item()))
    for _ in range(dry_run_steps(steps)):
        log_pi = torch.log_softmax(logits, -1)  # (P, K)
        y = torch.multinomial(log_pi.detach().exp(), samples, replacement=True, generator=g)  # (P, S)
        logp = log_pi.gather(1, y)
        total = reward.gather(1, y) - bandit.beta * (logp.detach() - bandit.log_ref.gather(1, y))  # (P, S)
        baseline = (total.sum(1, keepdim=True) - total) / (samples - 1)
        optimizer.zero_grad()
        (-((total - baseline) * logp).mean()).backward()
        optimizer.step()
        schedule.step()
    return logits.detach()
