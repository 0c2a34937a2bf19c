"""Structural causal models: the three rungs of Pearl's ladder on one object.

Schölkopf et al., "Toward Causal Representation Learning" (arXiv 2102.11107), Sec. 2-4: an SCM is a DAG of
mechanisms x_i = f_i(pa_i, u_i) with jointly independent noises (Eq. 2). It answers

1. association: `sample(n)` and, for discrete models, the exact `prob(query, given)`;
2. intervention: `do({var: value or mechanism})` returns a new SCM with those mechanisms replaced and every other
   mechanism untouched (independent causal mechanisms, Sec. 4);
3. counterfactuals: `counterfactual(evidence, interventions)` by abduction-action-prediction: infer the noise of
   the observed unit, replace mechanisms, recompute. `counterfactual_prob` does it exactly for discrete models by
   enumerating the noise cells of every mechanism.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Mapping

import torch
from torch import Tensor

from paperzoo.causal.mechanisms import Constant
from paperzoo.errors import UserError


def topological_order(graph: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Variables parents-first; raises UserError naming a cycle or an unknown parent."""
    for child, parents in graph.items():
        for p in parents:
            if p not in graph:
                raise UserError(f"variable {child!r} has unknown parent {p!r}; variables: {sorted(graph)}")
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(v: str, path: list[str]) -> None:
        if state.get(v) == 2:
            return
        if state.get(v) == 1:
            cycle = path[path.index(v):] + [v]
            raise UserError(f"the graph has a cycle: {' -> '.join(reversed(cycle))}")
        state[v] = 1
        for p in graph[v]:
            visit(p, path + [v])
        state[v] = 2
        order.append(v)

    for v in graph:
        visit(v, [])
    return order


@dataclass
class Samples:
    """Weighted samples of every variable (weights sum to one)."""

    values: dict[str, Tensor]
    weights: Tensor

    def mean(self, var: str) -> float:
        return float((self.weights * self.values[var].double()).sum())

    def prob(self, var: str, value) -> float:
        return float(self.weights[self.values[var] == value].sum())


class SCM:
    """A structural causal model: `{name: mechanism}` where each mechanism names its parents."""

    def __init__(self, mechanisms: Mapping[str, object]):
        if not mechanisms:
            raise UserError("an SCM needs at least one variable")
        self.mechanisms = dict(mechanisms)
        self.order = topological_order(self.graph)

    @property
    def graph(self) -> dict[str, tuple[str, ...]]:
        """{child: parents}."""
        return {v: tuple(m.parents) for v, m in self.mechanisms.items()}

    def _check_names(self, names, what: str) -> None:
        unknown = [v for v in names if v not in self.mechanisms]
        if unknown:
            raise UserError(f"unknown variable(s) {unknown} in {what}; variables: {sorted(self.mechanisms)}")

    # rung 1 -------------------------------------------------------------------------------------------------
    def forward(self, noise: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Every variable computed from given noise values, parents first."""
        values: dict[str, Tensor] = {}
        for v in self.order:
            values[v] = self.mechanisms[v](values, noise[v])
        return values

    def sample_noise(self, n: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        return {v: self.mechanisms[v].noise(n, generator) for v in self.order}

    def sample(self, n: int, seed: int | None = None) -> dict[str, Tensor]:
        """n observational samples: {name: tensor (n,)}."""
        if n < 1:
            raise UserError(f"n must be >= 1, got {n}")
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        return self.forward(self.sample_noise(n, generator))

    # rung 2 -------------------------------------------------------------------------------------------------
    def do(self, interventions: Mapping[str, object]) -> "SCM":
        """A new SCM where each intervened variable gets a constant (hard) or a new mechanism (soft)."""
        self._check_names(interventions, "do()")
        replaced = {v: m if hasattr(m, "parents") else Constant(m) for v, m in interventions.items()}
        return SCM({**self.mechanisms, **replaced})

    # exact probabilities (discrete) -------------------------------------------------------------------------
    def _cells(self) -> tuple[dict[str, Tensor], Tensor]:
        """Every combination of noise cells: ({name: u (M,)}, weights (M,))."""
        not_discrete = [v for v in self.order if not hasattr(self.mechanisms[v], "cells")]
        if not_discrete:
            raise UserError(f"exact probabilities need discrete mechanisms; {not_discrete} are not")
        per_var = [self.mechanisms[v].cells() for v in self.order]
        size = 1
        for mids, _ in per_var:
            size *= len(mids)
        if size > 2_000_000:
            raise UserError(f"{size} noise cells are too many to enumerate; use sample() instead")
        index = torch.tensor(list(itertools.product(*(range(len(m)) for m, _ in per_var))))  # (M, V)
        noise = {v: per_var[i][0][index[:, i]] for i, v in enumerate(self.order)}
        weights = torch.stack([per_var[i][1][index[:, i]] for i in range(len(self.order))]).prod(0)  # (M,)
        return noise, weights

    @staticmethod
    def _holds(values: dict[str, Tensor], event: Mapping[str, object]) -> Tensor:
        mask = torch.ones(len(next(iter(values.values()))), dtype=torch.bool)
        for v, x in event.items():
            mask &= values[v] == x
        return mask

    def prob(self, query: Mapping[str, object], given: Mapping[str, object] | None = None) -> float:
        """Exact P(query | given) of a discrete SCM; for P(y | do(x)) use `scm.do({x: ...}).prob({y: ...})`."""
        given = dict(given or {})
        self._check_names([*query, *given], "prob()")
        noise, weights = self._cells()
        values = self.forward(noise)
        evidence = self._holds(values, given)
        total = weights[evidence].sum()
        if total <= 0:
            raise UserError(f"the evidence {given} has probability zero")
        return float(weights[evidence & self._holds(values, query)].sum() / total)

    # rung 3 -------------------------------------------------------------------------------------------------
    def _check_counterfactual(self, evidence: Mapping, interventions: Mapping) -> None:
        self._check_names([*evidence, *interventions], "counterfactual()")
        soft = [v for v, m in interventions.items() if hasattr(m, "parents")]
        if soft:
            raise UserError(f"counterfactuals take hard interventions {{var: value}}; {soft} got a mechanism")

    def counterfactual(self, evidence: Mapping[str, float], interventions: Mapping[str, float], n: int = 4096,
                       seed: int = 0) -> Samples:
        """Samples of the world where `interventions` had held, for the unit in which `evidence` was observed.

        Abduction draws every noise from its posterior given the evidence (exact for observed variables whose
        parents are determined; unobserved ancestors are drawn from the prior and the samples weighted by the
        likelihood of the evidence). Action replaces the intervened mechanisms; prediction recomputes the world
        with the same noise. With every variable observed, additive-noise answers are exact.
        """
        self._check_counterfactual(evidence, interventions)
        generator = torch.Generator().manual_seed(seed)
        noise: dict[str, Tensor] = {}
        factual: dict[str, Tensor] = {}
        log_w = torch.zeros(n, dtype=torch.float64)
        for v in self.order:  # abduction, with likelihood weighting
            m = self.mechanisms[v]
            if v in evidence:
                x = torch.full((n,), evidence[v], dtype=torch.long if m.discrete else torch.float64)
                log_w = log_w + m.log_prob(x, factual)
                noise[v] = m.abduct(x, factual, generator)
                factual[v] = x
            else:
                noise[v] = m.noise(n, generator)
                factual[v] = m(factual, noise[v])
        if not torch.isfinite(log_w).any():
            raise UserError(f"the evidence {dict(evidence)} has probability zero under this SCM")
        world = self.do(interventions).forward(noise)  # action + prediction
        return Samples(world, torch.softmax(log_w, 0))

    def counterfactual_prob(self, query: Mapping[str, object], evidence: Mapping[str, object],
                            interventions: Mapping[str, object]) -> float:
        """Exact P(query in the world do(interventions) | evidence in the factual world), discrete SCMs."""
        self._check_counterfactual(evidence, interventions)
        self._check_names(query, "counterfactual_prob()")
        noise, weights = self._cells()
        observed = self._holds(self.forward(noise), evidence)
        total = weights[observed].sum()
        if total <= 0:
            raise UserError(f"the evidence {dict(evidence)} has probability zero under this SCM")
        world = self.do(interventions).forward(noise)
        return float(weights[observed & self._holds(world, query)].sum() / total)
