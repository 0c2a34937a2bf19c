"""Sparse mechanism shift and fast adaptation: Bengio et al., "A Meta-Transfer Objective for Learning to
Disentangle Causal Mechanisms" (arXiv 1901.10912), Sec. 2-3.

Two categorical variables A -> B with N values each. Both factorisations model the same joint:
A -> B as p(A) p(B | A) and B -> A as p(B) p(A | B), each a table of logits (softmax). After an intervention that
redraws p(A), only one module of A -> B is wrong, while both modules of B -> A are; so A -> B recovers the new
log-likelihood in fewer SGD steps (Sec. 2, Fig. 2). The structural parameter gamma, with sigmoid(gamma) = belief
in A -> B, is trained on the online likelihoods L of the two adapting models over a stream of interventions by
the meta-transfer objective (Eq. 4): R = -log[sigmoid(gamma) L_{A->B} + (1 - sigmoid(gamma)) L_{B->A}].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from paperzoo.errors import UserError


def _log_normalise(logits: Tensor) -> Tensor:
    """log_softmax over the last axis (written with logsumexp: torch's fused kernel threads badly on tiny tensors)."""
    return logits - logits.logsumexp(-1, keepdim=True)


@dataclass
class Factorised:
    """p(first) p(second | first) as logits for E models at once: `marginal` (E, N), `conditional` (E, N, N)
    indexed [e, first, second]."""

    marginal: Tensor
    conditional: Tensor

    def log_prob(self, first: Tensor, second: Tensor) -> Tensor:
        """log q(first, second) for index tensors (E, B) -> (E, B)."""
        log_marginal = _log_normalise(self.marginal).gather(1, first)  # (E, B)
        n = self.conditional.shape[-1]
        rows = _log_normalise(self.conditional).gather(1, first[..., None].expand(-1, -1, n))  # (E, B, N)
        return log_marginal + rows.gather(2, second[..., None]).squeeze(2)

    def joint_log(self) -> Tensor:
        """log q(first, second), (E, N, N)."""
        return _log_normalise(self.marginal)[..., None] + _log_normalise(self.conditional)

    def clone(self) -> "Factorised":
        return Factorised(self.marginal.detach().clone().requires_grad_(),
                          self.conditional.detach().clone().requires_grad_())

    def repeat(self, copies: int) -> "Factorised":
        return Factorised(self.marginal.expand(copies, -1).detach().clone(),
                          self.conditional.expand(copies, -1, -1).detach().clone())


def random_mechanisms(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """p(A) (N,) and p(B | A) (N, N), every row drawn from the flat Dirichlet(1, ..., 1)."""
    if n < 2:
        raise UserError(f"N must be >= 2 categories, got {n}")
    draws = -torch.rand(n + 1, n, generator=generator).clamp_min(1e-12).log()  # Exp(1) draws, (N+1, N)
    draws = draws / draws.sum(-1, keepdim=True)  # normalised exponentials are Dirichlet(1)
    return draws[0], draws[1:]


def sample_pairs(p_a: Tensor, p_b_given_a: Tensor, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """n samples of (A, B) for each of E distributions: p_a (E, N), p_b_given_a (N, N) -> a, b (E, n)."""
    a = torch.multinomial(p_a, n, replacement=True, generator=generator)  # (E, n)
    b = torch.multinomial(p_b_given_a[a.flatten()], 1, generator=generator).reshape(a.shape)  # (E, n)
    return a, b


def fit_both(a: Tensor, b: Tensor, n: int, alpha: float = 0.5) -> tuple[Factorised, Factorised]:
    """Maximum-likelihood (add-alpha) tables of both factorisations from samples a, b (n_samples,):
    (A -> B, B -> A), each a batch of one model."""
    counts = torch.full((n, n), alpha).index_put_((a, b), torch.ones(len(a)), accumulate=True)  # [a, b]

    def model(joint: Tensor) -> Factorised:
        return Factorised(joint.sum(1).log()[None], (joint / joint.sum(1, keepdim=True)).log()[None])

    return model(counts), model(counts.T)


def expected_log_lik(model: Factorised, joint: Tensor) -> Tensor:
    """E_{(first, second) ~ joint}[log q(first, second)] per model, with `joint` (E, N, N) indexed [e, first,
    second]: (E,)."""
    return (joint * model.joint_log().detach()).sum((1, 2))


def adapt(model: Factorised, first: Tensor, second: Tensor, lr: float, batch: int,
          joint: Tensor | None = None) -> tuple[Factorised, Tensor, Tensor]:
    """SGD on a copy of each of the E models over its own stream (E, T) in batches of `batch` examples.

    Returns the adapted copies, the online log-likelihoods sum_t log p(batch_t | params before step t) (Eq. 3), (E,),
    and, when the true `joint` (E, N, N) is given, the expected log-likelihood before and after each step,
    (E, steps + 1) (else an empty tensor).
    """
    model = model.clone()
    online = torch.zeros(first.shape[0])
    curve = [expected_log_lik(model, joint)] if joint is not None else []
    for start in range(0, first.shape[1], batch):
        log_p = model.log_prob(first[:, start:start + batch], second[:, start:start + batch])  # (E, b)
        online = online + log_p.detach().sum(1)
        grads = torch.autograd.grad(-log_p.mean(1).sum(), [model.marginal, model.conditional])
        with torch.no_grad():
            model.marginal -= lr * grads[0]
            model.conditional -= lr * grads[1]
        if joint is not None:
            curve.append(expected_log_lik(model, joint))
    return model, online, torch.stack(curve, 1) if curve else torch.empty(0)


def meta_transfer_loss(gamma: Tensor, online_ab: Tensor, online_ba: Tensor) -> Tensor:
    """Eq. (4): -log[sigmoid(gamma) L_{A->B} + (1 - sigmoid(gamma)) L_{B->A}], L = exp(online log-likelihood)."""
    return -torch.logaddexp(F.logsigmoid(gamma) + online_ab, F.logsigmoid(-gamma) + online_ba)


@dataclass
class MetaTransferResult:
    sigmoid_gamma: list[float]  # belief in A -> B after each episode
    online_ab: list[float]
    online_ba: list[float]


def _pretrained(n: int, pretrain_examples: int, generator: torch.Generator):
    p_a, p_b_given_a = random_mechanisms(n, generator)
    a, b = sample_pairs(p_a[None], p_b_given_a, pretrain_examples, generator)
    return p_b_given_a, *fit_both(a[0], b[0], n)


def train_structural_parameter(n: int, episodes: int, transfer_examples: int = 100, batch: int = 10,
                               lr: float = 1.0, meta_lr: float = 0.1, pretrain_examples: int = 10_000,
                               seed: int = 0) -> MetaTransferResult:
    """Learn gamma over `episodes` interventions on p(A), the two models restarting from their pretrained tables
    each episode (Sec. 3); gamma is trained with RMSprop on the meta-transfer objective.

    Since the models restart every episode, the online likelihoods of all episodes do not depend on gamma and are
    computed in one batched pass; gamma then takes one step per episode, in order."""
    if episodes < 1 or transfer_examples < 1:
        raise UserError("episodes and transfer_examples must be >= 1")
    generator = torch.Generator().manual_seed(seed)
    p_b_given_a, ab, ba = _pretrained(n, pretrain_examples, generator)
    new_p_a = torch.stack([random_mechanisms(n, generator)[0] for _ in range(episodes)])  # (E, N): redrawn p(A)
    a, b = sample_pairs(new_p_a, p_b_given_a, transfer_examples, generator)  # (E, T)
    _, online_ab, _ = adapt(ab.repeat(episodes), a, b, lr, batch)
    _, online_ba, _ = adapt(ba.repeat(episodes), b, a, lr, batch)
    gamma = torch.zeros((), requires_grad=True)
    square_avg = torch.zeros(())  # RMSprop (alpha = 0.99, eps = 1e-8, as torch.optim.RMSprop's defaults)
    beliefs = []
    for e in range(episodes):
        (grad,) = torch.autograd.grad(meta_transfer_loss(gamma, online_ab[e], online_ba[e]), [gamma])
        square_avg = 0.99 * square_avg + 0.01 * grad ** 2
        with torch.no_grad():
            gamma -= meta_lr * grad / (square_avg.sqrt() + 1e-8)
        beliefs.append(float(torch.sigmoid(gamma.detach())))
    return MetaTransferResult(beliefs, online_ab.tolist(), online_ba.tolist())


def adaptation_curves(n: int, interventions: int, transfer_examples: int, batch: int = 1, lr: float = 1.0,
                      pretrain_examples: int = 10_000, seed: int = 0) -> dict[str, Tensor]:
    """Mean held-out KL(p_new || q) of both models after each SGD step, averaged over `interventions` redraws of
    p(A) (Fig. 2 of the paper plots the log-likelihood; the KL is it minus the true negative entropy): (steps + 1,)
    per model."""
    generator = torch.Generator().manual_seed(seed)
    p_b_given_a, ab, ba = _pretrained(n, pretrain_examples, generator)
    new_p_a = torch.stack([random_mechanisms(n, generator)[0] for _ in range(interventions)])  # (I, N)
    joint = new_p_a[..., None] * p_b_given_a  # (I, N, N) indexed [i, a, b]
    neg_entropy = (joint * joint.clamp_min(1e-30).log()).sum((1, 2))  # (I,)
    a, b = sample_pairs(new_p_a, p_b_given_a, transfer_examples, generator)
    _, _, curve_ab = adapt(ab.repeat(interventions), a, b, lr, batch, joint)
    _, _, curve_ba = adapt(ba.repeat(interventions), b, a, lr, batch, joint.transpose(1, 2))
    return {"A->B": (neg_entropy[:, None] - curve_ab).mean(0), "B->A": (neg_entropy[:, None] - curve_ba).mean(0)}
