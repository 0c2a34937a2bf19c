"""Model-Agnostic Meta-Learning (Finn, Abbeel, Levine, ICML 2017, arXiv 1703.03400), written functionally.

For each task i, the inner loop adapts the parameters on the support set with a few gradient steps
(Eq. 1: theta_i' = theta - alpha * grad L_support(theta)); the meta-objective is the query loss of the adapted
parameters summed over tasks (Eq. 2-3, Algorithm 2). Second-order MAML differentiates through the inner gradient
(a Hessian-vector product); first-order MAML (Sec. 5.2) treats the inner gradient as a constant. Meta-SGD
(Li et al. 2017, arXiv 1707.09835, Eq. 3) learns one inner learning rate per parameter entry (`learn_inner_lr`).

The inner loop uses `torch.func.grad` on `torch.func.functional_call`, and the tasks of a meta-batch run together
under `torch.func.vmap` (one batched graph instead of a Python loop over tasks). `task_chunk` sets how many tasks
vmap batches at once (vmap's `chunk_size`; 0 = all): batching pays where per-task kernel launches dominate (GPUs),
while on a CPU at the paper's sizes (64 channels, 32 tasks) a batched convolution over tasks is a grouped
convolution that runs several times slower than the same work task by task, so `task_chunk=1` is the fast choice
there (benchmarks/metalearning_maml.py). At small sizes (16 channels, 4 tasks: the quick preset) per-call overhead
dominates on a CPU too, and `task_chunk=0` takes about half the time of `task_chunk=1`.

Parameters with `requires_grad=False` stay out of the inner loop: they keep their values in every task and get no
meta-gradient (learn2learn's `allow_nograd`). A learner that holds one module with parameters under two names (a layer
kept as an attribute and inside an `nn.Sequential`) is refused: `functional_call` swaps such a module's parameters
for the vmapped tensors and does not restore them (pytorch/pytorch#164759), which corrupts the learner. Tied
parameters (one `nn.Parameter` in two modules) are fine.

Batch norm: the learner must use `EpisodeBatchNorm` (no running statistics). `bn="support"` (the default)
normalises queries with the support set's statistics, so no query sees another; `bn="transductive"` normalises
the query batch with its own statistics, as the original MAML code does (see networks.py).
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from paperzoo.metalearning.networks import EpisodeBatchNorm

BNMode = Literal["support", "transductive"]


def shared_modules(learner: nn.Module) -> list[list[str]]:
    """The names under which each module holding parameters of its own is reached, where there are several."""
    names: dict[int, list[str]] = {}
    for name, module in learner.named_modules(remove_duplicate=False):
        if next(module.parameters(recurse=False), None) is not None:
            names.setdefault(id(module), []).append(name)
    return [found for found in names.values() if len(found) > 1]


def check_learner(learner: nn.Module) -> None:
    """Refuse learners that MAML's functional inner loop cannot run: running statistics, or shared modules."""
    if list(learner.buffers()):
        raise ValueError("MAML's learner must not keep running statistics (buffers); build it with "
                         "EpisodeBatchNorm, e.g. ConvClassifier(..., episodic=True)")
    shared = shared_modules(learner)
    if shared:
        listed = "; ".join(" and ".join(repr(n) for n in found) for found in shared)
        raise ValueError(f"MAML's learner holds one module under several names ({listed}); torch.func's "
                         "functional_call, which runs the inner loop, would replace that module's parameters with "
                         "internal tensors (pytorch/pytorch#164759). Keep each layer under one name (e.g. only in "
                         "the nn.Sequential, reached by index), or tie parameters instead of modules "
                         "(b.weight = a.weight)")


class MAML(nn.Module):
    """MAML around any `learner` (an `nn.Module` classifier): `maml(support_x, support_y, query_x)` adapts the learner
    to each task on its support set (Eq. 1, `inner_steps` steps of rate `inner_lr`) and returns the adapted query
    outputs. Shapes: support_x (T tasks, S, C, H, W), support_y (T, S) class indices, query_x (T, Q, C, H, W) ->
    logits (T, Q, N ways). `loss(outputs, targets)` is the inner loop's support loss (cross-entropy by default);
    a loss on the returned query outputs is the meta-objective (Eq. 3), whose gradient reaches the learner through
    the inner loop (second order, or first order with `first_order=True`). `learn_inner_lr=True` is Meta-SGD (a
    learned rate per parameter entry); `bn` is "support" (queries normalised with the support set's statistics) or
    "transductive" (with the query batch's own); `task_chunk` tasks run per vmap call (0 = all)."""

    def __init__(self, learner: nn.Module, inner_lr: float = 0.4, inner_steps: int = 1, first_order: bool = False,
                 learn_inner_lr: bool = False, bn: BNMode = "support",
                 loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy, task_chunk: int = 0):
        super().__init__()
        check_learner(learner)
        if inner_steps < 0:
            raise ValueError(f"inner_steps must be >= 0, got {inner_steps}")
        if task_chunk < 0:
            raise ValueError(f"task_chunk must be >= 0 (0 = all tasks at once), got {task_chunk}")
        if bn not in ("support", "transductive"):
            raise ValueError(f"bn must be 'support' or 'transductive', got {bn!r}")
        self.learner, self.loss = learner, loss
        self.inner_steps, self.first_order, self.bn = inner_steps, first_order, bn
        self.task_chunk = task_chunk or None
        self.has_bn = any(isinstance(m, EpisodeBatchNorm) for m in learner.modules())
        self.names = [name for name, _ in learner.named_parameters()]
        if learn_inner_lr:
            self.inner_lrs = nn.ParameterList(nn.Parameter(torch.full_like(p, inner_lr)) for p in learner.parameters())
        else:
            self.inner_lrs = None
            self.inner_lr = inner_lr

    def _lrs(self) -> dict[str, torch.Tensor | float]:
        if self.inner_lrs is None:
            return {name: self.inner_lr for name in self.names}
        return dict(zip(self.names, self.inner_lrs))

    def adapt(self, params: dict, lrs: dict, support_x: torch.Tensor, support_y: torch.Tensor,
              steps: int) -> dict:
        """Eq. 1 repeated `steps` times for one task: support_x (S, C, H, W), support_y (S,)."""

        def support_loss(p):
            return self.loss(functional_call(self.learner, p, (support_x,)), support_y)

        for _ in range(steps):
            grads = grad(support_loss)(params)
            if self.first_order:
                grads = {k: g.detach() for k, g in grads.items()}
            params = {k: params[k] - lrs[k] * grads[k] for k in params}
        return params

    def _task_logits(self, params, lrs, steps, bn, support_x, support_y, query_x):
        fast = self.adapt(params, lrs, support_x, support_y, steps)
        if bn == "support" and self.has_bn:
            s = support_x.shape[0]
            out = functional_call(self.learner, fast, (torch.cat([support_x, query_x]),), {"n_stats": s})
            return out[s:]  # (Q, N)
        return functional_call(self.learner, fast, (query_x,))  # (Q, N): BN statistics of the query batch

    def forward(self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor,
                steps: int | None = None, bn: BNMode | None = None) -> torch.Tensor:
        """support_x (T, S, ...), support_y (T, S, ...), query_x (T, Q, ...) -> adapted query outputs (T, Q, N).
        `steps` and `bn` override the training choices (e.g. more inner steps at test time)."""
        if support_x.dim() < 3 or query_x.dim() != support_x.dim() or support_y.shape[:2] != support_x.shape[:2]:
            raise ValueError(f"expected support_x (T, S, ...), support_y (T, S, ...), query_x (T, Q, ...); got "
                             f"{tuple(support_x.shape)}, {tuple(support_y.shape)}, {tuple(query_x.shape)}")
        params = {k: v for k, v in self.learner.named_parameters() if v.requires_grad}  # frozen ones stay fixed
        lrs = self._lrs()
        if not torch.is_grad_enabled():  # evaluation: adapt without building the meta-gradient graph
            params = {k: v.detach() for k, v in params.items()}
            lrs = {k: v.detach() if torch.is_tensor(v) else v for k, v in lrs.items()}
        task = partial(self._task_logits, params, lrs, self.inner_steps if steps is None else steps, bn or self.bn)
        return vmap(task, chunk_size=self.task_chunk)(support_x, support_y, query_x)
