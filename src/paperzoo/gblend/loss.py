"""The Gradient-Blending loss: L_blend = sum_k w_k L_k, one cross-entropy term per head k.

Wang, Tran, Feiszli, CVPR 2020, arXiv 1905.12681, section 3.3. Naive joint training is the special
case w = {"fused": 1}; a unimodal model is w = {modality: 1}.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F


def head_losses(logits: Mapping[str, torch.Tensor], target: torch.Tensor) -> dict[str, torch.Tensor]:
    """{head: mean cross-entropy of that head}."""
    return {k: F.cross_entropy(v, target) for k, v in logits.items()}


def blended_loss(logits: Mapping[str, torch.Tensor], target: torch.Tensor,
                 weights: Mapping[str, float]) -> torch.Tensor:
    """sum_k w_k CE(logits_k, target) over the heads named in `weights` (a head with weight 0 adds nothing and
    sends no gradient)."""
    unknown = set(weights) - set(logits)
    if unknown:
        raise ValueError(f"weights name heads the model does not have: {sorted(unknown)} (heads: {sorted(logits)})")
    terms = [w * F.cross_entropy(logits[k], target) for k, w in weights.items() if w != 0]
    if not terms:
        raise ValueError(f"all blending weights are zero: {dict(weights)}")
    return torch.stack(terms).sum()
