"""Causal mechanisms x_i = f_i(pa_i, u_i) of a structural causal model.

Schölkopf et al., "Toward Causal Representation Learning" (arXiv 2102.11107), Sec. 4, Eq. (2): every variable is a
function of its parents and an independent noise term. A mechanism here holds its parents' names and knows how to

* draw its noise `u` (`noise`), and compute x from parents and noise (`__call__`);
* score x given its parents (`log_prob`, used to weight samples against evidence);
* draw u from p(u | x, pa) (`abduct`, the abduction step of a counterfactual, Pearl's three steps).

Discrete mechanisms (`Categorical`) use a uniform noise u ~ U[0, 1) and the inverse CDF of their conditional
probability table, so that the noise posterior is an interval and counterfactuals are exact. Their `cells()` split
[0, 1) into the pieces on which the mechanism is constant for every parent value: enumerating cells gives exact
probabilities. Additive-noise mechanisms x = f(pa) + u (`AdditiveNoise`, `LinearGaussian`) abduct u = x - f(pa).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from paperzoo.errors import UserError

Parents = dict[str, Tensor]


class Categorical:
    """x ~ table[pa_1, ..., pa_k, :]: a conditional probability table over K values {0, ..., K-1}.

    `table` has one axis per parent (its size = that parent's number of values) and a last axis of size K whose
    entries sum to one. A root variable has a 1-D table (its marginal).
    """

    discrete = True

    def __init__(self, table, parents: Sequence[str] = ()):
        table = torch.as_tensor(table, dtype=torch.float64)
        self.parents = tuple(parents)
        if table.dim() != len(self.parents) + 1:
            raise UserError(f"a table for {len(self.parents)} parent(s) {list(self.parents)} needs "
                            f"{len(self.parents) + 1} axes, got shape {tuple(table.shape)}")
        if (table < 0).any() or not torch.allclose(table.sum(-1), torch.ones(()).double(), atol=1e-6):
            raise UserError("every row of a probability table must be non-negative and sum to 1")
        self.table = table
        self.cdf = table.cumsum(-1).clamp(max=1.0)  # (*parent_cards, K)
        self.cardinality = table.shape[-1]

    def _rows(self, pa: Parents, n: int) -> Tensor:
        index = tuple(pa[p].long() for p in self.parents)
        return self.cdf[index] if index else self.cdf.expand(n, -1)  # (n, K)

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.rand(n, generator=generator, dtype=torch.float64)

    def __call__(self, pa: Parents, u: Tensor) -> Tensor:
        cdf = self._rows(pa, len(u))
        return (cdf <= u[:, None]).sum(-1).clamp(max=self.cardinality - 1)  # (n,) first k with cdf[k] > u

    def log_prob(self, x: Tensor, pa: Parents) -> Tensor:
        index = tuple(pa[p].long() for p in self.parents) + (x.long(),)
        return self.table[index].log()

    def abduct(self, x: Tensor, pa: Parents, generator: torch.Generator | None = None) -> Tensor:
        cdf = self._rows(pa, len(x))
        x = x.long()
        high = cdf.gather(1, x[:, None]).squeeze(1)
        low = torch.where(x > 0, cdf.gather(1, (x - 1).clamp(min=0)[:, None]).squeeze(1), torch.zeros_like(high))
        return low + (high - low) * torch.rand(len(x), generator=generator, dtype=torch.float64)

    def cells(self) -> tuple[Tensor, Tensor]:
        """(midpoints, widths) of the pieces of [0, 1) on which x is constant for every parent value."""
        edges = torch.unique(torch.cat([torch.tensor([0.0, 1.0], dtype=torch.float64), self.cdf.flatten()]))
        edges = edges[(edges >= 0) & (edges <= 1)]
        widths = edges[1:] - edges[:-1]
        keep = widths > 1e-12
        return ((edges[1:] + edges[:-1]) / 2)[keep], widths[keep]


class AdditiveNoise:
    """x = f(pa_1, ..., pa_k) + u with u drawn from `noise` (a torch distribution, default standard normal).

    `f` is any torch callable of the parent tensors in `parents` order, e.g. a lambda or a learned `nn.Module`.
    """

    discrete = False

    def __init__(self, f: Callable[..., Tensor], parents: Sequence[str] = (),
                 noise: torch.distributions.Distribution | None = None):
        self.f, self.parents = f, tuple(parents)
        self.noise_dist = noise if noise is not None else torch.distributions.Normal(0.0, 1.0)

    def mean(self, pa: Parents, n: int) -> Tensor:
        if not self.parents:
            return torch.as_tensor(self.f(), dtype=torch.float64).expand(n).clone()
        return torch.as_tensor(self.f(*(pa[p].double() for p in self.parents)), dtype=torch.float64)

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        if isinstance(self.noise_dist, torch.distributions.Normal):  # the generator keeps runs reproducible
            z = torch.randn(n, generator=generator, dtype=torch.float64)
            return self.noise_dist.loc + self.noise_dist.scale * z
        return self.noise_dist.sample((n,)).double()

    def __call__(self, pa: Parents, u: Tensor) -> Tensor:
        return self.mean(pa, len(u)) + u

    def log_prob(self, x: Tensor, pa: Parents) -> Tensor:
        return self.noise_dist.log_prob((x - self.mean(pa, len(x))).float()).double()

    def abduct(self, x: Tensor, pa: Parents, generator: torch.Generator | None = None) -> Tensor:
        return x.double() - self.mean(pa, len(x))


class LinearGaussian(AdditiveNoise):
    """x = bias + sum_j w_j pa_j + u, u ~ N(0, std^2)."""

    def __init__(self, weights: dict[str, float] | None = None, bias: float = 0.0, std: float = 1.0):
        weights = dict(weights or {})
        if std <= 0:
            raise UserError(f"std must be > 0, got {std}")
        self.weights, self.bias, self.std = weights, float(bias), float(std)
        super().__init__(self._linear, parents=tuple(weights), noise=torch.distributions.Normal(0.0, self.std))

    def _linear(self, *pa: Tensor) -> Tensor:
        return self.bias + sum((w * p for w, p in zip(self.weights.values(), pa)), torch.tensor(0.0).double())


class Constant:
    """A hard intervention do(x = value): no parents, no noise."""

    def __init__(self, value: float | int):
        self.value = value
        self.parents: tuple[str, ...] = ()
        self.discrete = isinstance(value, int)

    def _dtype(self):
        return torch.long if self.discrete else torch.float64

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.zeros(n, dtype=torch.float64)

    def __call__(self, pa: Parents, u: Tensor) -> Tensor:
        return torch.full((len(u),), self.value, dtype=self._dtype())

    def log_prob(self, x: Tensor, pa: Parents) -> Tensor:
        return torch.where(x == self.value, 0.0, float("-inf")).double()

    def abduct(self, x: Tensor, pa: Parents, generator: torch.Generator | None = None) -> Tensor:
        return torch.zeros(len(x), dtype=torch.float64)

    def cells(self) -> tuple[Tensor, Tensor]:
        return torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
