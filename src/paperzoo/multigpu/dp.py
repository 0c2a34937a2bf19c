"""DataParallel done right: put the loss inside the replicated module.

`nn.DataParallel` replicates the module on every GPU, scatters the inputs, runs the replicas in threads and
gathers their *outputs* on GPU 0, where the loss is computed: GPU 0 then holds every replica's outputs (for a
language model, all the logits) and its memory peaks far above the others. The post's remedy: wrap model and loss
in one module, pass the targets as an input (so they are scattered too), and return only the loss; what is
gathered is one (1, 2) row per replica. `replica_mean` turns the rows into the batch mean, weighting each replica
by its share of the batch (the last chunk can be smaller).

DDP (`torchrun`) avoids the problem altogether (one process per GPU, gradients all-reduced, nothing gathered);
DP remains handy in a notebook on one machine.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


class ReplicaLoss(nn.Module):
    """forward(inputs, targets) -> (1, 2) row [loss * n, n] of this replica's n examples."""

    def __init__(self, model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if inputs.shape[0] != targets.shape[0]:
            raise ValueError(f"inputs and targets must share the batch size, got {inputs.shape[0]} and "
                             f"{targets.shape[0]}")
        loss = self.loss_fn(self.model(inputs), targets)  # mean over this replica's examples
        n = torch.tensor(float(targets.shape[0]), device=loss.device, dtype=loss.dtype)
        return torch.stack([loss * n, n])[None]  # (1, 2); DataParallel concatenates rows: (replicas, 2)


def replica_mean(rows: torch.Tensor) -> torch.Tensor:
    """The batch-mean loss from the gathered (replicas, 2) rows of `ReplicaLoss`."""
    if rows.dim() != 2 or rows.shape[1] != 2:
        raise ValueError(f"expected the (replicas, 2) rows of ReplicaLoss, got shape {tuple(rows.shape)}")
    return rows[:, 0].sum() / rows[:, 1].sum()
