"""Log-probabilities of preference pairs under a causal LM, the frozen reference model, and its cached log-probs.

Any model with `model(input_ids, attention_mask=...).logits` works (a `transformers` causal LM or `TinyGPT`).
Chosen and rejected sequences go through the model in one concatenated forward, as in TRL's DPOTrainer.
"""

from __future__ import annotations

import torch
from torch import nn

from paperzoo.dpo.data import PreferencePairs, trim
from paperzoo.dpo.loss import sequence_logps
from paperzoo.errors import ConfigError


def pair_logps(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen, rejected) summed completion log-probs, each (B,), of a batch of `PreferencePairs` items (B, 2, T)."""
    ids = batch["input_ids"]
    b, _, t = ids.shape

    def flat(x: torch.Tensor) -> torch.Tensor:
        return x.transpose(0, 1).reshape(2 * b, t)  # (2B, T): the B chosen rows, then the B rejected rows

    logits = model(flat(ids), attention_mask=flat(batch["attention_mask"])).logits  # (2B, T, V)
    logps = sequence_logps(logits, flat(ids), flat(batch["completion_mask"]))  # (2B,)
    return logps[:b], logps[b:]


def freeze(model: nn.Module) -> nn.Module:
    """The reference model: eval mode (no dropout), no gradients."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def vocab_size(model: nn.Module) -> int:
    """Width of the model's logits, read off a one-token forward (duck-typed: no config needed)."""
    probe = torch.zeros(1, 1, dtype=torch.long, device=model_device(model))
    with torch.no_grad():
        return model(probe, attention_mask=torch.ones_like(probe)).logits.shape[-1]


def check_same_vocabulary(policy: nn.Module, reference: nn.Module, name: str = "reference model") -> None:
    ours, theirs = vocab_size(policy), vocab_size(reference)
    if ours != theirs:
        raise ConfigError(f"the {name} has a vocabulary of {theirs} tokens but the policy has {ours}: both must "
                          "use the same tokenizer (load the reference from the policy's starting checkpoint)")


@torch.no_grad()
def reference_logps(reference: nn.Module, pairs: PreferencePairs, batch_size: int = 64) -> torch.Tensor:
    """(N, 2) summed log-probs of every pair under the frozen reference, computed once (cache them in the dataset)."""
    was_training = reference.training
    reference.eval()
    device = model_device(reference)
    out = []
    for start in range(0, len(pairs), batch_size):
        batch = pairs[slice(start, start + batch_size)]
        batch = trim({k: v.to(device) for k, v in batch.items() if k != "reference_logps"})
        out.append(torch.stack(pair_logps(reference, batch), dim=1).float().cpu())  # (b, 2)
    reference.train(was_training)
    return torch.cat(out)
