"""Sharded data parallelism (`train.parallel=fsdp` under torchrun) with PyTorch's FSDP2 (`fully_shard`).

FSDP (Zhao et al., "PyTorch FSDP: Experiences on Scaling Fully Sharded Data Parallel", VLDB 2023, arXiv
2304.11277) keeps 1/N of every parameter, gradient and optimizer state on each of the N ranks: a layer's weights
are all-gathered just before its forward (and again before its backward) and freed after, and its gradients are
reduce-scattered (averaged over the ranks, as DDP's all-reduce) so each rank updates its own shard. The model is
sharded per repeated layer (the items of each outermost `nn.ModuleList`: transformer blocks) and then as a whole
(what is left: embeddings, final norm, head), so one layer at a time is whole in memory.

Checkpoints keep the engine's format: the ranks gather the full state to rank 0, which writes one safetensors file
exactly as a one-process run would (optimizer state keyed by parameter index), and a resume hands every rank the
full state read from that file, of which it keeps its shard. So a sharded run resumes from a DDP or one-process
checkpoint and the other way round.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

# torch.distributed's FSDP and checkpoint modules take about a second to import: imported where a run shards


def shard_units(model: nn.Module) -> list[nn.Module]:
    """The repeated layers of `model`: the items of each outermost `nn.ModuleList` that hold parameters."""
    units: list[nn.Module] = []
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    inner = {id(m) for outer in lists for m in outer.modules() if m is not outer}  # lists inside another list
    for layers in lists:
        if id(layers) not in inner:
            units += [layer for layer in layers if any(True for _ in layer.parameters())]
    return units


def shard(model: nn.Module, device: torch.device) -> nn.Module:
    """`model` (on `device`) sharded over the default process group's ranks, in place (its parameters become
    DTensors); build the optimizer after this."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (dist.get_world_size(),))  # the run's device, not the machine's default
    for unit in shard_units(model):
        fully_shard(unit, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def is_sharded(model: nn.Module) -> bool:
    fsdp = sys.modules.get("torch.distributed.fsdp")  # a sharded model implies it was imported
    return fsdp is not None and isinstance(model, fsdp.FSDPModule)


def local(tensor: torch.Tensor) -> torch.Tensor:
    """This rank's shard of a DTensor; any other tensor itself."""
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def _names(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The parameter names in the optimizer's order: index i of `optimizer.state_dict()` is names[i]."""
    by_id = {id(p): name for name, p in model.named_parameters()}
    return [by_id[id(p)] for group in optimizer.param_groups for p in group["params"]]


def gather_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """(model state dict, optimizer state dict), whole, on rank 0 (empty dicts elsewhere), in the form a
    one-process run's `state_dict()` calls give. A collective: every rank calls it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    # whole tensors, on rank 0's CPU only
    model_state, optim_state = get_state_dict(model, optimizer,
                                              options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not optim_state:
        return model_state, optim_state
    index = {name: i for i, name in enumerate(_names(model, optimizer))}
    state = {index[name]: slots for name, slots in optim_state["state"].items()}
    groups = [{**group, "params": [index[name] for name in group["params"]]} for group in optim_state["param_groups"]]
    return model_state, {"state": state, "param_groups": groups}


def load_state(model: nn.Module, optimizer: torch.optim.Optimizer | None, model_state: dict[str, torch.Tensor],
               optim_state: dict | None, partial: bool) -> None:
    """Whole states (as `gather_state` returns them, on every rank) into the sharded `model` and `optimizer`; each
    rank keeps its shard. `partial`: `model_state` holds a part of the model (trainable adapters), the rest keeps
    its values. A collective: every rank calls it."""
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                         set_optimizer_state_dict)

    set_model_state_dict(model, model_state, options=StateDictOptions(full_state_dict=True, strict=not partial))
    if optimizer is None or optim_state is None:
        return
    names = _names(model, optimizer)
    state = {names[int(i)]: slots for i, slots in optim_state["state"].items()}
    groups = [{**group, "params": [names[int(i)] for i in group["params"]]} for group in optim_state["param_groups"]]
    set_optimizer_state_dict(model, optimizer, {"state": state, "param_groups": groups},
                             options=StateDictOptions(full_state_dict=True))
