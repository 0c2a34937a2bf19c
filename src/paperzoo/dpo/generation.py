"""Sampling completions from a causal LM and measuring KL(pi || pi_ref) along them.

When the model's forward takes `past_key_values` (Hugging Face causal LMs, `TinyGPT`), each new token reads the
keys and values cached from the previous positions, so a completion of n tokens costs n single-position forwards
after the prompt's; any other model re-reads the whole sequence for each token.
Prompts may be left-padded (`prompt_mask` 0 on padding); tokens after an EOS are padding.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn
from torch.nn.parallel import DataParallel, DistributedDataParallel


@torch.no_grad()
def sample(model: nn.Module, prompt_ids: torch.Tensor, new_tokens: int, prompt_mask: torch.Tensor | None = None,
           temperature: float = 1.0, eos_token_id: int | None = None, pad_token_id: int = 0,
           generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask, completion_mask), each (B, P + new_tokens), of prompts and sampled completions."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    b, p = prompt_ids.shape
    ids = prompt_ids
    attention = torch.ones_like(prompt_ids) if prompt_mask is None else prompt_mask.long()
    alive = torch.ones(b, dtype=torch.bool, device=ids.device)
    if isinstance(model, (DataParallel, DistributedDataParallel)):
        model = model.module  # the wrapper's forward hides the signature; sampling needs no gradient sync
    cached = "past_key_values" in inspect.signature(model.forward).parameters
    cache = None
    for _ in range(new_tokens):
        if cache is not None:  # only the newest token is unread
            out = model(ids[:, -1:], attention_mask=attention, past_key_values=cache, use_cache=True)
        else:
            out = model(ids, attention_mask=attention, **({"use_cache": True} if cached else {}))
        # a model that takes a cache may still return none (Hugging Face under gradient checkpointing): then the
        # next step reads the whole sequence again
        cache = getattr(out, "past_key_values", None) if cached else None
        logits = out.logits[:, -1].float() / temperature  # (B, V)
        probs = torch.softmax(logits, dim=-1)
        token = torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (B,)
        token = torch.where(alive, token, torch.full_like(token, pad_token_id))
        ids = torch.cat([ids, token[:, None]], dim=1)
        attention = torch.cat([attention, alive.long()[:, None]], dim=1)
        if eos_token_id is not None:
            alive = alive & (token != eos_token_id)
    completion = attention.clone()
    completion[:, :p] = 0
    return ids, attention, completion


def token_kl(policy_logits: torch.Tensor, reference_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum over masked positions of KL(pi(.|prefix) || pi_ref(.|prefix)), per sequence (B,).

    Logits (B, T, V) at position t predict token t+1, so the completion tokens `mask` (B, T) are scored at t-1.
    Summed along a sequence sampled from pi, its mean estimates the sequence-level KL(pi || pi_ref) with less
    variance than the log-ratio of the sampled tokens.
    """
    logp = torch.log_softmax(policy_logits[:, :-1].float(), -1)  # (B, T-1, V)
    logq = torch.log_softmax(reference_logits[:, :-1].float(), -1)
    kl = (logp.exp() * (logp - logq)).sum(-1)  # (B, T-1)
    return (kl * mask[:, 1:].to(kl.dtype)).sum(-1)
