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

Under DDP the paper's quantities are those of the global batch: `GradientModulator` sums each step's scores over
the micro-batches and all ranks before computing k_u, and modulates once per optimizer step, after DDP has averaged
the gradients, with one noise draw that every rank shares (rank 0's, broadcast). N ranks with batch B then take the
same steps as one process with batch N B; per-rank noise added before the average would shrink by 1/sqrt(N), and
per-rank coefficients would answer a different question. In one process the draws are those of the authors'
per-step loop, in the order backward produces the gradients.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def modality_scores(parts: dict[str, torch.Tensor], target: torch.Tensor) -> dict[str, float]:
    """{u: s_u}, the summed probability of the true class under modality u's share {u: (B, classes)}."""
    if len(parts) != 2:
        raise ValueError(f"OGM-GE modulates exactly two modalities, got {sorted(parts)}")
    return {u: logits.softmax(1).gather(1, target[:, None]).sum().item() for u, logits in parts.items()}


def coefficients(scores: dict[str, float], alpha: float) -> dict[str, float]:
    """{u: k_u} from the two scores: k_u = 1 - tanh(alpha rho_u) for the dominant modality (rho_u > 1), else 1."""
    (a, s_a), (v, s_v) = scores.items()
    ratio = {a: s_a / max(s_v, 1e-12), v: s_v / max(s_a, 1e-12)}  # rho_u
    return {u: 1.0 - float(torch.tanh(torch.tensor(alpha * r))) if r > 1 else 1.0 for u, r in ratio.items()}


def ogm_coefficients(parts: dict[str, torch.Tensor], target: torch.Tensor, alpha: float) -> dict[str, float]:
    """{modality: k_u} from the two modalities' fused-logit contributions `parts` {u: (B, classes)}."""
    return coefficients(modality_scores(parts, target), alpha)


def global_sums(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """The sums of `values` over all ranks (a collective); `values` itself in one process."""
    if not dist.is_initialized():
        return values
    packed = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(packed)
    return dict(zip(values, packed.tolist()))


def shared_normal(like: list[torch.Tensor]) -> list[torch.Tensor]:
    """N(0, 1) tensors shaped like `like`, drawn in order from rank 0's global RNG and broadcast, so every rank
    adds the same noise, and one process draws what rank 0 of a group would."""
    if not dist.is_initialized() or not like:
        return [torch.randn_like(t) for t in like]
    sizes = [t.numel() for t in like]
    if dist.get_rank() == 0:
        flat = torch.cat([torch.randn_like(t).flatten() for t in like])  # (sum sizes,)
    else:
        flat = torch.empty(sum(sizes), dtype=like[0].dtype, device=like[0].device)
    dist.broadcast(flat, src=0)
    return [chunk.view_as(t) for chunk, t in zip(flat.split(sizes), like)]


class GradientModulator:
    """OGM-GE on each encoder's weight matrices (not its biases): `observe` every batch's fused-logit parts, then,
    once per optimizer step on the finished (DDP-averaged) gradients, `modulate` applies g -> k_u g + N(0, std(g)^2)
    with k_u of the global batch (set `enabled = False` outside the modulation epochs: k_u is still computed)."""

    def __init__(self, encoders: nn.ModuleDict, alpha: float, noise: bool = True):
        if len(encoders) != 2:
            raise ValueError(f"OGM-GE modulates exactly two modalities, got {sorted(encoders)}")
        self.alpha, self.noise, self.enabled = alpha, noise, True
        # the weight matrices in the order backward produces their gradients: the reverse of the forward's
        self.weights = [(name, p) for name, encoder in encoders.items() for p in encoder.parameters()
                        if p.dim() >= 2][::-1]
        self.scores = dict.fromkeys(encoders, 0.0)

    def observe(self, parts: dict[str, torch.Tensor], target: torch.Tensor) -> None:
        """Add one (micro-)batch's scores s_u to the step's."""
        for u, s in modality_scores(parts, target).items():
            self.scores[u] += s

    def modulate(self) -> dict[str, float]:
        """k_u from the step's scores summed over all ranks (a collective), applied when enabled; resets the scores."""
        scores = global_sums(self.scores, self.weights[0][1].device)
        self.scores = dict.fromkeys(self.scores, 0.0)
        k = coefficients(scores, self.alpha)
        if self.enabled:
            self.apply(k)
        return k

    def apply(self, k: dict[str, float]) -> None:
        """g -> k_u g (+ N(0, std(g)^2) with noise) on every weight matrix's gradient, in place."""
        held = [(name, p) for name, p in self.weights if p.grad is not None]
        noisy = [p for _, p in held if self.noise and p.grad.numel() > 1]
        draws = dict(zip(map(id, noisy), shared_normal([p.grad for p in noisy])))
        for name, p in held:
            noise = draws[id(p)] * (p.grad.std() + 1e-8) if id(p) in draws else 0.0
            p.grad.mul_(k[name]).add_(noise)
