"""Multi-modal classifiers with one head per modality and a fused head (late or mid fusion).

Wang, Tran, Feiszli, CVPR 2020, arXiv 1905.12681, section 3 and Figure 4: a late-fusion network concatenates the
modality features and classifies them with one fused head; Gradient-Blending adds one classifier per modality on
that modality's own features, whose losses are blended with the fused head's. Mid fusion (the paper's "mid-concat"
baseline) concatenates earlier, after the first layer of each encoder, and runs a shared layer on the concatenation.

Each encoder is a 2-layer MLP over its modality's flattened input; the networks return {head name: logits}, with
head names "image", "audio" (the modalities given) and "fused" (only with two or more modalities).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

FUSED = "fused"
"""The name of the fused head among the network's outputs (the unimodal heads are named after their modality)."""


def _layer(d_in: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_out), nn.ReLU())


class MultiModalNet(nn.Module):
    """`inputs`: {modality: flattened input size}. Late fusion: encoder_k = two layers, heads on each feature and a
    fused linear head on their concatenation. Mid fusion: one layer per modality, a shared layer on the
    concatenation, then the fused head (no unimodal heads)."""

    def __init__(self, inputs: dict[str, int], hidden: int = 256, dim: int = 128, classes: int = 10,
                 fusion: Literal["late", "mid"] = "late", dropout: float = 0.0):
        super().__init__()
        if not inputs:
            raise ValueError("MultiModalNet needs at least one modality")
        if fusion not in ("late", "mid"):
            raise ValueError(f"fusion must be 'late' or 'mid', got {fusion!r}")
        if fusion == "mid" and len(inputs) < 2:
            raise ValueError("mid fusion needs two or more modalities")
        self.modalities, self.fusion = tuple(inputs), fusion
        k = len(inputs)
        if fusion == "late":
            self.encoders = nn.ModuleDict({m: nn.Sequential(_layer(d, hidden), _layer(hidden, dim))
                                           for m, d in inputs.items()})
            self.heads = nn.ModuleDict({m: nn.Linear(dim, classes) for m in inputs})
            self.trunk = nn.Identity()
            fused_in = k * dim
        else:
            self.encoders = nn.ModuleDict({m: _layer(d, hidden) for m, d in inputs.items()})
            self.heads = nn.ModuleDict()
            self.trunk = _layer(k * hidden, dim)
            fused_in = dim
        self.dropout = nn.Dropout(dropout)
        self.fused = nn.Linear(fused_in, classes) if k > 1 else None

    def features(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        missing = set(self.modalities) - set(inputs)
        if missing:
            raise ValueError(f"missing inputs for modalities {sorted(missing)}; got {sorted(inputs)}")
        return {m: self.encoders[m](inputs[m].flatten(1)) for m in self.modalities}  # {m: (B, dim)}

    def forward(self, parts: bool = False, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """{head: (B, classes) logits}; with `parts` (late fusion) also "fused@m" = W_m phi_m + b / K, modality m's
        share of the fused logits (OGM-GE scores them)."""
        feats = self.features(**inputs)
        logits = {m: self.heads[m](f) for m, f in feats.items() if m in self.heads}  # {m: (B, classes)}
        if self.fused is not None:
            joint = torch.cat([feats[m] for m in self.modalities], dim=1)  # (B, k * dim)
            logits[FUSED] = self.fused(self.dropout(self.trunk(joint)))  # (B, classes)
            if parts:
                if self.fusion != "late":
                    raise ValueError("fused-logit parts exist only for late fusion")
                weight = self.fused.weight.chunk(len(self.modalities), dim=1)  # K x (classes, dim)
                for m, w in zip(self.modalities, weight):
                    logits[f"{FUSED}@{m}"] = feats[m] @ w.T + self.fused.bias / len(self.modalities)
        return logits

    @property
    def prediction_head(self) -> str:
        """The head used for predictions: the fused one, or the only modality's."""
        return FUSED if self.fused is not None else self.modalities[0]
