"""Gradient (activation) checkpointing of a Hugging Face causal LM, for DPO and SFT on models that fill the memory.

Checkpointing (Chen et al., "Training Deep Nets with Sublinear Memory Cost", 2016, arXiv 1604.06174) keeps only
each transformer layer's input in the forward pass and recomputes the layer during the backward pass: activation
memory falls from one set per layer to about one layer's, for about one more forward per step. The losses and
gradients are those of the plain run (tests/dpo/test_dpo_adapters.py). Used for the policy of DPO (Rafailov et
al. 2023, arXiv 2305.18290), with or without LoRA adapters (`paperzoo.dpo.adapters`).
"""

from __future__ import annotations

from torch import nn

from paperzoo.dpo.adapters import has_adapters
from paperzoo.errors import ConfigError


def enable_checkpointing(model: nn.Module) -> nn.Module:
    """`model` (a `transformers` causal LM, or one wrapped in LoRA adapters) with every layer checkpointed; returns it.

    `transformers` recomputes a layer only in training mode, so the model is put in training mode with its dropout
    probabilities set to 0: it computes the same function as without checkpointing, where it trains as
    `from_pretrained` leaves it (eval mode, no dropout; TRL turns dropout off too). The key-value cache, which a
    training forward does not need, is switched off."""
    base = model.get_base_model() if has_adapters(model) else model
    enable = getattr(base, "activation_checkpointing_enable", None) or getattr(base, "gradient_checkpointing_enable",
                                                                               None)
    if enable is None or not getattr(base, "supports_gradient_checkpointing", False):
        raise ConfigError(f"gradient_checkpointing=true needs a Hugging Face model that supports it; "
                          f"{type(base).__name__} does not")
    enable({"use_reentrant": False})  # the non-reentrant form: frozen inputs (LoRA) still get their gradients
    base.config.use_cache = False
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):  # Llama-style attention reads a float
            module.attention_dropout = 0.0
    return model.train()
