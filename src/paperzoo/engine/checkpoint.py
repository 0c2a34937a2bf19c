"""Atomic checkpoints that load without unpickling code.

One `.safetensors` file per checkpoint: tensors (model, optimizer state, RNG states) as safetensors, everything
else (step, config, optimizer hyper-parameters, scheduler state, python/numpy RNG) as JSON in its metadata.
Saving writes a temporary file in the same folder, fsyncs it, then renames it over the old one, so a crash
mid-save leaves the previous checkpoint whole; the temporary files of writes killed midway are removed by the next
write.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save as save_bytes

from paperzoo.engine import fsdp
from paperzoo.errors import UserError

_META_KEY = "paperzoo"


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, plain = {}, {"param_groups": state["param_groups"], "state": {}}
    for index, slots in state["state"].items():
        plain["state"][str(index)] = {}
        for name, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{name}"] = value
            else:
                plain["state"][str(index)][name] = value
    return tensors, plain


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], plain: dict) -> dict:
    state: dict[int, dict] = {int(i): dict(slots) for i, slots in plain["state"].items()}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": plain["param_groups"]}


def _rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    plain = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
    }
    return tensors, plain


def _restore_rng(tensors: dict[str, torch.Tensor], plain: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = plain["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = plain["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def save_checkpoint(
    path: Path,
    *,
    model: torch.nn.Module,
    step: int,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    config: dict | None = None,
    extra: dict | None = None,
    model_state: dict[str, torch.Tensor] | None = None,
    partial: bool | None = None,
    optimizer_state: dict | None = None,
) -> None:
    """Write model, optimizer, scheduler, AMP scaler, step, RNG states and config atomically to `path`.

    `model_state`: a part of the model's state dict to save instead of all of it (the trainable adapters of a
    frozen pretrained model); the checkpoint is then marked partial and loads with `load_partial_state`.
    `partial=False` says that `model_state` is the whole state dict, and `optimizer_state` stands for
    `optimizer.state_dict()`: the states a sharded run gathered from its ranks (`paperzoo.engine.fsdp`)."""
    state = model.state_dict() if model_state is None else model_state
    tensors = {f"model.{k}": v for k, v in state.items()}
    meta: dict[str, Any] = {"step": step, "config": config or {}, "extra": extra or {}}
    if model_state is not None and partial is not False:
        meta["model_state"] = "partial"
    if optimizer is not None:
        optim_tensors, meta["optimizer"] = _flatten_optimizer(optimizer_state or optimizer.state_dict())
        tensors.update(optim_tensors)
    if scheduler is not None:
        meta["scheduler"] = scheduler.state_dict()
    if scaler is not None:
        meta["scaler"] = scaler.state_dict()
    rng_tensors, meta["rng"] = _rng_state()
    tensors.update(rng_tensors)
    # safetensors wants contiguous CPU tensors that share no storage
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    payload = save_bytes(tensors, metadata={_META_KEY: json.dumps(meta)})
    atomic_write(Path(path), payload)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _remove_stale_temporaries(path: Path) -> None:
    """Delete the temporary files of writes whose process was killed mid-write (they can be checkpoint-sized)."""
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[1]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def atomic_write(path: Path, payload: bytes) -> None:
    """Write `payload` to `path` so that a crash leaves either the old file or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def state_dict_mismatches(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """One line per kind of mismatch between `state` and the model's own state dict (missing keys, unexpected keys,
    shapes); empty when `state` loads strictly."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k}: {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
             for k in sorted(set(state) & set(expected)) if state[k].shape != expected[k].shape]
    return [f"  {what} ({len(items)}): {sep.join(items)}" for what, items, sep in
            (("missing keys", missing, ", "), ("unexpected keys", unexpected, ", "), ("shape mismatches", wrong, "; "))
            if items]


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors and the JSON metadata of a checkpoint; a missing or corrupt file is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        tensors = load_file(str(path))
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(header_len))
        meta = json.loads(header["__metadata__"][_META_KEY])
    except (SafetensorError, ValueError, KeyError, OSError) as e:
        raise UserError(f"checkpoint {path} is corrupt or not a paperzoo checkpoint ({e}); "
                        "delete it to start over, or point --resume at another run") from None
    return tensors, meta


def load_partial_state(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load the tensors of a partial checkpoint (`save_checkpoint(model_state=...)`): every one must be the model's,
    and every trainable parameter must be among them; the others keep the values the model was built with."""
    check_partial_state(model, state, path)
    model.load_state_dict(state, strict=False)


def check_partial_state(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """A `UserError` unless every tensor of the partial `state` is the model's and every trainable parameter is
    among them."""
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    unexpected = set(state) - set(model.state_dict())
    lacking = sorted(trainable - set(state))
    if unexpected or lacking:
        detail = "; ".join(f"{what}: {', '.join(names[:6])}" + (f" and {len(names) - 6} more" if len(names) > 6 else "")
                           for what, names in (("not in the model", sorted(unexpected)),
                                               ("trainable but not saved", lacking)) if names)
        raise UserError(f"checkpoint {path} holds the trainable tensors of another model ({detail}); it was written "
                        "by a run with other adapters or another model")


def load_checkpoint(
    path: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    restore_rng: bool = True,
) -> dict:
    """Restore what `save_checkpoint` wrote; returns the metadata (step, config, extra)."""
    tensors, meta = read_checkpoint(path)
    prefix = "model."
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    partial = meta.get("model_state") == "partial"
    optim_state = None
    if optimizer is not None and "optimizer" in meta:
        optim_state = _unflatten_optimizer({k: v for k, v in tensors.items() if k.startswith("optim.")},
                                           meta["optimizer"])
    if fsdp.is_sharded(model):  # every rank reads the whole state and keeps its shard
        if partial:
            check_partial_state(model, state, path)
        fsdp.load_state(model, optimizer, state, optim_state, partial)
    else:
        if partial:
            load_partial_state(model, state, path)
        else:
            model.load_state_dict(state)
        if optim_state is not None:
            optimizer.load_state_dict(optim_state)
    if scheduler is not None and "scheduler" in meta:
        scheduler.load_state_dict(meta["scheduler"])
    if scaler is not None and "scaler" in meta:
        scaler.load_state_dict(meta["scaler"])
    if restore_rng:
        _restore_rng({k: v for k, v in tensors.items() if k.startswith("rng.")}, meta["rng"])
    return meta
