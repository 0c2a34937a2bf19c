"""LoRA adapters for the causal LMs of the preference pipeline, through `peft` (the optional extra `lora`).

LoRA (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022, arXiv 2106.09685) freezes a
pretrained weight W0 and trains a low-rank update of it: h = W0 x + (alpha / r) B A x (Eq. 3 and Section 4.1), with
A (r x k) random and B (d x r) zero at the start, so the adapted model starts as the pretrained one. In DPO
(Rafailov et al. 2023, arXiv 2305.18290) that pretrained model is the reference pi_ref of Eq. 7: the policy with its
adapters disabled is the reference, and one copy of the weights serves both (as TRL's DPOTrainer with a
`peft_config`).

A checkpoint of an adapted model holds its trainable tensors only (`adapter_state`): the frozen weights come back
from the model source named in the run's config.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from paperzoo.config import at_least, positive
from paperzoo.dpo.model import TinyGPT
from paperzoo.errors import ConfigError

# adapted layers of paperzoo's TinyGPT when lora.target_modules is empty: attention's input projection, as peft's
# default for GPT-2 (`c_attn`); a Hugging Face model gets peft's default for its architecture
TINY_TARGETS = ("qkv",)


@dataclass
class LoRAConfig:
    """LoRA settings (`lora.*` of `paperzoo train dpo_sft|dpo_reward|dpo`); r=0 trains every weight instead."""

    r: int = 0
    """rank of the update B A; 0: no adapters, every weight trains"""
    alpha: float = 16.0
    """the update is scaled by alpha / r (Section 4.1)"""
    target_modules: tuple[str, ...] = ()
    """names (or name suffixes) of the layers to adapt; empty: peft's default for the architecture (TinyGPT: qkv)"""

    def check(self, prefix: str) -> None:
        at_least(self, prefix, 0, "r")
        positive(self, prefix, "alpha")


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel or DataParallel wrapper (the model itself otherwise)."""
    return model.module if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else model


def has_adapters(model: nn.Module) -> bool:
    peft = sys.modules.get("peft")  # a model with adapters implies peft was imported; a plain run never imports it
    return peft is not None and isinstance(unwrap(model), peft.PeftModel)


def _peft():
    try:
        import peft
    except ImportError:
        raise ConfigError("LoRA adapters (lora.r > 0) need peft: pip install 'paperzoo[lora]'") from None
    return peft


def peft_config(model: nn.Module, cfg: LoRAConfig):
    """The `peft.LoraConfig` that `with_lora(model, cfg)` applies: no dropout on the adapters' input (the update is
    deterministic), peft's default layers for the architecture unless `cfg.target_modules` names others. TRL's
    `DPOTrainer(peft_config=...)` takes the same object (tests/dpo/test_dpo_trl.py)."""
    if cfg.r < 1:
        raise ConfigError(f"with_lora needs a rank lora.r >= 1, got {cfg.r}")
    targets = list(cfg.target_modules) or (list(TINY_TARGETS) if isinstance(model, TinyGPT) else None)
    return _peft().LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=0.0, target_modules=targets)


def with_lora(model: nn.Module, cfg: LoRAConfig) -> nn.Module:
    """`model` with LoRA adapters (peft's `PeftModel`): only the adapters train, A drawn from the global RNG and
    B zero. The wrapper holds `model` itself (no copy); its weights are frozen."""
    peft = _peft()
    config = peft_config(model, cfg)
    if any(isinstance(m, peft.tuners.lora.LoraLayer) for m in model.modules()):
        raise ConfigError("this model already holds LoRA adapters: wrap the pretrained model once")
    try:
        with warnings.catch_warnings():  # peft's notes to itself: GPT-2's Conv1D is transposed by peft
            warnings.filterwarnings("ignore", message="fan_in_fan_out is set to False")  # (fan_in_fan_out), and
            warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")  # transformers 5
            adapted = peft.get_peft_model(model, config)
    except ValueError as e:  # an architecture peft has no default for, or names that match no layer
        raise ConfigError(f"LoRA: {e}; set lora.target_modules=<names of linear layers>") from None
    return adapted.train(model.training)  # the mode `model` had (from_pretrained leaves a model in eval mode)


def require_adapters(model: nn.Module) -> nn.Module:
    """`model`, which must carry LoRA adapters to be its own DPO reference."""
    if not has_adapters(model):
        raise ConfigError("the reference is the policy with its adapters disabled, but the policy has no LoRA "
                          "adapters: wrap it with paperzoo.dpo.with_lora (lora.r > 0), or give a reference model")
    return model


@contextlib.contextmanager
def adapters_disabled(model: nn.Module):
    """The pretrained model under `model`'s adapters, in eval mode: the DPO reference. Yields the module to call."""
    inner = require_adapters(unwrap(model))
    modes = [(module, module.training) for module in inner.modules()]
    inner.eval()
    try:
        with inner.disable_adapter():
            yield inner
    finally:
        for module, training in modes:  # each module's own mode back, not the top module's everywhere
            module.training = training


class WithoutAdapters(nn.Module):
    """A frozen reference model that is the policy with its LoRA adapters disabled (in eval mode): the reference
    pi_ref of the RL step's KL penalty (Rafailov et al. Eq. 3) without a second copy of the weights. The policy is
    built after the reference is handed over, so it is bound later (`bind`); it is not a submodule, so freezing or
    moving this module leaves the policy alone. Its one parameter is empty and tells where it runs."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.empty(0), requires_grad=False)  # a device for `.to()` and model_device
        self.__dict__["policy"] = None  # set by `bind`; kept out of the submodules on purpose

    def bind(self, policy: nn.Module) -> nn.Module:
        """Make `policy` (which must carry adapters) the model this reference calls; returns it."""
        self.__dict__["policy"] = require_adapters(policy)
        return policy

    def forward(self, *args, **kwargs):
        if self.policy is None:
            raise RuntimeError("WithoutAdapters is called before its policy was bound (bind(policy))")
        with adapters_disabled(self.policy) as base:
            return base(*args, **kwargs)


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor] | None:
    """What a checkpoint of `model` holds: the trainable parameters of a model with adapters (a head trained beside
    them included), under their state-dict names; None for any other model (its whole state dict)."""
    if not has_adapters(_inner_adapted(model)):
        return None
    return {name: p for name, p in unwrap(model).named_parameters() if p.requires_grad}


def _inner_adapted(model: nn.Module) -> nn.Module:
    """The adapted LM of `model`: itself, or the backbone of a reward model built on one."""
    model = unwrap(model)
    return getattr(model, "backbone", model)


def merge_adapters(model: nn.Module) -> nn.Module:
    """The pretrained model with the update (alpha / r) B A added into its weights, adapters removed (Section
    4.2: no extra latency at inference)."""
    return model.merge_and_unload()
