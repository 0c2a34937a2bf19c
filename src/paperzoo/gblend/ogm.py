"""OGM-GE, on-the-fly gradient modulation with generalization enhancement: a later baseline in G-Blend's line.

Peng, Wei, Deng, Wang, Hu, "Balanced Multimodal Learning via On-the-fly Gradient Modulation", CVPR 2022,
arXiv 2203.15332, section 3.2-3.3. With a late-fusion concat head, fused logits = W_a phi_a + W_v phi_v + b; each
modality's contribution is scored on the batch,

  s_u = sum_i softmax(W_u phi_u(x_i) + b / 2)[y_i],        rho_u = s_u / s_other,
  k_u = 1 - tanh(alpha * rho_u)  if rho_u > 1  else 1,

and the gradient of every weight tensor of encoder u is replaced by k_u * g + N(0, std(g)^2) (Eq. 10 and the GE
term; we take the noise scale as the standard deviation of that gradient tensor's entries, as the authors' release
does). Only the dominant modality (rho > 1) is slowed down; the fused head's own parameters are not modulated.

Settings checked against the authors' release (GeWu-Lab/OGM-GE_CVPR2022, main.py and README): it modulates only the
encoders' convolution kernels (4-D gradients; not biases or batch-norm parameters), so we modulate the encoders'
weight matrices and leave their biases alone; it modulates from epoch `modulation_starts` = 0 to `modulation_ends`
= 50 of 100 epochs, i.e. the first half of training; alpha is tuned per data set (0.1 for VGGSound, 0.8 for
CREMA-D in their README); the claims use the one of those two that did better on the held-out split in a pilot
(see experiments.py).
"""

from __future__ import annotations

import torch
from torch import nn


def ogm_coefficients(parts: dict[str, torch.Tensor], target: torch.Tensor, alpha: float) -> dict[str, float]:
    """{modality: k_u} from the two modalities' fused-logit contributions `parts` {u: (B, classes)}."""
    if len(parts) != 2:
        raise ValueError(f"OGM-GE modulates exactly two modalities, got {sorted(parts)}")
    (a, logits_a), (v, logits_v) = parts.items()
    score = {a: logits_a.softmax(1).gather(1, target[:, None]).sum().item(),
             v: logits_v.softmax(1).gather(1, target[:, None]).sum().item()}  # s_u
    ratio = {a: score[a] / max(score[v], 1e-12), v: score[v] / max(score[a], 1e-12)}  # rho_u
    return {u: 1.0 - float(torch.tanh(torch.tensor(alpha * r))) if r > 1 else 1.0 for u, r in ratio.items()}


class GradientModulator:
    """Hooks on each encoder's weight matrices (not its biases) that apply g -> k_u g + N(0, std(g)^2) with the
    current `coefficients` (set `enabled = False` outside the modulation epochs)."""

    def __init__(self, encoders: nn.ModuleDict, noise: bool = True):
        self.coefficients = {name: 1.0 for name in encoders}
        self.enabled, self.noise = True, noise
        for name, encoder in encoders.items():
            for p in encoder.parameters():
                if p.dim() >= 2:  # weights; the release modulates only 4-D conv kernels, never 1-D parameters
                    p.register_hook(self._hook(name))

    def _hook(self, name: str):
        def modulate(grad: torch.Tensor) -> torch.Tensor:
            if not self.enabled:
                return grad
            out = grad * self.coefficients[name]
            if self.noise and grad.numel() > 1:
                out = out + torch.randn_like(grad) * (grad.std() + 1e-8)
            return out

        return modulate
