"""Graph tools for causal DAGs given as {child: parents}: d-separation, the back-door criterion, adjustment.

Pearl, "Causality" (2009), Def. 1.2.3 (d-separation) and Thm. 3.3.2 (back-door adjustment,
P(y | do(x)) = sum_z P(y | x, z) P(z)); Schölkopf et al. (arXiv 2102.11107) Sec. 2 uses them for rung 2.
d-separation is tested as separation in the moralised graph of the ancestors of the variables involved
(Lauritzen et al. 1990), which is equivalent to the path definition.
"""

from __future__ import annotations

import itertools
from typing import Iterable, Mapping

import torch
from torch import Tensor

from paperzoo.causal.scm import topological_order
from paperzoo.errors import DataError, UserError

Graph = Mapping[str, Iterable[str]]


def _normalise(graph: Graph) -> dict[str, tuple[str, ...]]:
    graph = {v: tuple(ps) for v, ps in graph.items()}
    topological_order(graph)  # unknown parents and cycles are clear errors
    return graph


def _check(graph: dict, *sets: set[str]) -> None:
    for s in sets:
        unknown = sorted(s - set(graph))
        if unknown:
            raise UserError(f"unknown variable(s) {unknown}; the graph has {sorted(graph)}")


def ancestors(graph: Graph, nodes: Iterable[str]) -> set[str]:
    """`nodes` and all their ancestors."""
    graph = _normalise(graph)
    seen, stack = set(), list(nodes)
    while stack:
        v = stack.pop()
        if v not in seen:
            seen.add(v)
            stack.extend(graph[v])
    return seen


def descendants(graph: Graph, nodes: Iterable[str]) -> set[str]:
    """`nodes` and all their descendants."""
    graph = _normalise(graph)
    children: dict[str, list[str]] = {v: [] for v in graph}
    for child, parents in graph.items():
        for p in parents:
            children[p].append(child)
    seen, stack = set(), list(nodes)
    while stack:
        v = stack.pop()
        if v not in seen:
            seen.add(v)
            stack.extend(children[v])
    return seen


def d_separated(graph: Graph, xs: Iterable[str], ys: Iterable[str], zs: Iterable[str] = ()) -> bool:
    """True when every path between xs and ys is blocked by zs."""
    graph = _normalise(graph)
    xs, ys, zs = set(xs), set(ys), set(zs)
    _check(graph, xs, ys, zs)
    if not xs or not ys:
        raise UserError("d_separated needs non-empty xs and ys")
    if (xs & ys) or (xs & zs) or (ys & zs):
        raise UserError(f"xs, ys and zs must be disjoint, got {sorted(xs)}, {sorted(ys)}, {sorted(zs)}")
    keep = ancestors(graph, xs | ys | zs)
    neighbours: dict[str, set[str]] = {v: set() for v in keep}
    for child in keep:
        parents = list(graph[child])
        for p in parents:  # keep the edges, undirected
            neighbours[p].add(child)
            neighbours[child].add(p)
        for a, b in itertools.combinations(parents, 2):  # marry the parents
            neighbours[a].add(b)
            neighbours[b].add(a)
    seen, stack = set(xs), list(xs)
    while stack:
        for w in neighbours[stack.pop()] - zs - seen:
            if w in ys:
                return False
            seen.add(w)
            stack.append(w)
    return True


def is_backdoor_set(graph: Graph, x: str, y: str, zs: Iterable[str]) -> bool:
    """Pearl's back-door criterion: no z descends from x, and zs blocks every path x <- ... -> y."""
    graph = _normalise(graph)
    zs = set(zs)
    _check(graph, {x, y}, zs)
    if zs & (descendants(graph, [x]) | {y}):
        return False
    cut = {v: tuple(p for p in ps if p != x) for v, ps in graph.items()}  # drop the edges out of x
    return d_separated(cut, [x], [y], zs)


def backdoor_sets(graph: Graph, x: str, y: str, max_size: int | None = None) -> list[frozenset[str]]:
    """Every valid back-door adjustment set, smallest first (exhaustive: meant for small graphs)."""
    graph = _normalise(graph)
    _check(graph, {x, y})
    candidates = sorted(set(graph) - descendants(graph, [x]) - {y})
    top = len(candidates) if max_size is None else min(max_size, len(candidates))
    return [frozenset(zs) for size in range(top + 1) for zs in itertools.combinations(candidates, size)
            if is_backdoor_set(graph, x, y, zs)]


def backdoor_adjustment(data: Mapping[str, Tensor], x: str, x_value: int, y: str, y_value: int,
                        zs: Iterable[str] = ()) -> float:
    """Estimate P(y = y_value | do(x = x_value)) = sum_z P(y | x, z) P(z) from discrete observational samples."""
    zs = list(zs)
    missing = [v for v in [x, y, *zs] if v not in data]
    if missing:
        raise DataError(f"the data has no column(s) {missing}; it has {sorted(data)}")
    n = len(data[x])
    if not zs:
        strata = torch.zeros(n, dtype=torch.long)
    else:
        _, strata = torch.unique(torch.stack([data[z].long() for z in zs], 1), dim=0, return_inverse=True)  # (n,)
    treated = data[x] == x_value
    hit = data[y] == y_value
    estimate = 0.0
    for s in strata.unique():
        in_s = strata == s
        n_treated = int((in_s & treated).sum())
        if n_treated == 0:
            stratum = {z: int(data[z][in_s][0]) for z in zs}
            raise DataError(f"no sample has {x}={x_value} in stratum {stratum}: positivity fails; "
                            "collect more data or adjust for fewer variables")
        estimate += float((in_s & treated & hit).sum()) / n_treated * float(in_s.sum()) / n
    return estimate
