"""Fitting the mechanisms of a given causal factorisation from observational data.

Schölkopf et al. (arXiv 2102.11107), Sec. 4: a causal model factorises the joint into the conditionals
p(x_i | pa_i) (Eq. 6), each fit on its own. Discrete conditionals are fit as counted tables (maximum likelihood
with add-alpha smoothing) or as small neural conditionals; continuous ones as additive-noise regressions with a
learned f and a Gaussian residual.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperzoo.causal.mechanisms import AdditiveNoise, Categorical
from paperzoo.causal.scm import SCM, topological_order
from paperzoo.engine.dry_run import dry_run_steps
from paperzoo.errors import DataError, UserError


def _columns(data: Mapping[str, Tensor], names: Sequence[str]) -> None:
    missing = [v for v in names if v not in data]
    if missing:
        raise DataError(f"the data has no column(s) {missing}; it has {sorted(data)}")


def fit_categorical(data: Mapping[str, Tensor], var: str, parents: Sequence[str], cards: Mapping[str, int],
                    alpha: float = 1.0) -> Categorical:
    """Counted conditional table p(var | parents), each count plus `alpha`."""
    _columns(data, [var, *parents])
    shape = [cards[p] for p in parents] + [cards[var]]
    counts = torch.zeros(shape, dtype=torch.float64)
    index = tuple(data[v].long() for v in [*parents, var])
    counts.index_put_(index, torch.ones(len(data[var]), dtype=torch.float64), accumulate=True)
    counts += alpha
    return Categorical(counts / counts.sum(-1, keepdim=True), parents)


def fit_scm(data: Mapping[str, Tensor], graph: Mapping[str, Sequence[str]], cards: Mapping[str, int],
            alpha: float = 1.0) -> SCM:
    """A discrete SCM with the given graph and every table counted from `data`."""
    topological_order({v: tuple(ps) for v, ps in graph.items()})
    return SCM({v: fit_categorical(data, v, ps, cards, alpha) for v, ps in graph.items()})


class NeuralCategorical(nn.Module):
    """p(x | pa) = softmax(MLP(one-hot parents)): a learned conditional for discrete variables."""

    def __init__(self, parent_cards: Sequence[int], card: int, hidden: int = 32):
        super().__init__()
        self.parent_cards, self.card = list(parent_cards), card
        inputs = max(1, sum(self.parent_cards))
        self.net = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, card))

    def forward(self, parents: Sequence[Tensor]) -> Tensor:
        if len(parents) != len(self.parent_cards):
            raise ValueError(f"expected {len(self.parent_cards)} parent tensors, got {len(parents)}")
        if not parents:
            raise ValueError("a root variable needs a batch size; pass the parents of a non-root variable")
        x = torch.cat([F.one_hot(p.long(), c).float() for p, c in zip(parents, self.parent_cards)], 1)  # (n, sum c)
        return self.net(x)  # (n, card) logits

    def mechanism(self, parents: Sequence[str]) -> Categorical:
        """The learned conditional as a table mechanism, for use in an SCM."""
        grid = torch.cartesian_prod(*[torch.arange(c) for c in self.parent_cards]).reshape(-1, len(self.parent_cards))
        with torch.no_grad():
            probs = self.forward(list(grid.T)).softmax(-1).double()  # (prod cards, card)
        return Categorical(probs.reshape(*self.parent_cards, self.card), parents)


def fit_neural_categorical(data: Mapping[str, Tensor], var: str, parents: Sequence[str], cards: Mapping[str, int],
                           steps: int = 300, lr: float = 0.05, hidden: int = 32, seed: int = 0) -> NeuralCategorical:
    """Train a `NeuralCategorical` for p(var | parents) by full-batch maximum likelihood."""
    if not parents:
        raise UserError(f"{var!r} has no parents: fit a root with fit_categorical")
    _columns(data, [var, *parents])
    torch.manual_seed(seed)
    model = NeuralCategorical([cards[p] for p in parents], cards[var], hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    inputs, target = [data[p] for p in parents], data[var].long()
    for _ in range(dry_run_steps(steps)):
        loss = F.cross_entropy(model(inputs), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def fit_additive(data: Mapping[str, Tensor], var: str, parents: Sequence[str], hidden: int = 32,
                 steps: int = 500, lr: float = 0.01, seed: int = 0) -> AdditiveNoise:
    """x = MLP(parents) + u with u ~ N(0, s^2): f by least squares, s from the residuals."""
    _columns(data, [var, *parents])
    if not parents:
        raise UserError(f"{var!r} has no parents: a root needs no regression")
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(len(parents), hidden), nn.Tanh(), nn.Linear(hidden, 1)).double()
    x = torch.stack([data[p].double() for p in parents], 1)  # (n, k)
    y = data[var].double()
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(dry_run_steps(steps)):
        loss = F.mse_loss(net(x).squeeze(1), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    net.requires_grad_(False)
    std = float((net(x).squeeze(1) - y).std())

    def f(*pa: Tensor) -> Tensor:
        return net(torch.stack(pa, 1)).squeeze(1)

    return AdditiveNoise(f, parents, torch.distributions.Normal(0.0, std))
