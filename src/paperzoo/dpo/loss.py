"""Preference losses: DPO and its variants, the Bradley-Terry reward-model loss, and sequence log-probabilities.

Paper: Rafailov et al., "Direct Preference Optimization: Your Language Model is Secretly a Reward Model",
NeurIPS 2023, arXiv 2305.18290. Equation numbers below refer to that paper unless another one is named.
Each loss is a plain function of per-sequence log-probabilities; none knows about models or tokenizers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSS_TYPES = ("sigmoid", "robust", "hinge", "ipo")


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
                   average: bool = False) -> torch.Tensor:
    """Sum (or mean) of log p(labels[t] | labels[<t]) over the positions where `mask` is 1.

    logits (B, T, V) are the model's outputs for the sequence `labels` (B, T): position t predicts token t+1.
    `mask` (B, T) marks the scored tokens (the completion), never the prompt or padding. Token 0 has no
    prediction, so mask[:, 0] must be 0. Returns (B,) log-probabilities (averaged per token when `average`).
    """
    if logits.ndim != 3 or labels.shape != logits.shape[:2] or mask.shape != labels.shape:
        raise ValueError(f"sequence_logps wants logits (B, T, V) with labels and mask (B, T); got logits "
                         f"{tuple(logits.shape)}, labels {tuple(labels.shape)}, mask {tuple(mask.shape)}")
    if bool(mask[:, 0].any()):
        raise ValueError("mask[:, 0] must be 0: the first token has no prediction (it is part of the prompt/BOS)")
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, T-1, V)
    token_logp = logp.gather(-1, labels[:, 1:].unsqueeze(-1)).squeeze(-1)  # (B, T-1)
    weights = mask[:, 1:].to(token_logp.dtype)
    total = (token_logp * weights).sum(-1)
    if average:
        return total / weights.sum(-1).clamp(min=1)
    return total


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             reference_chosen_logps: torch.Tensor, reference_rejected_logps: torch.Tensor,
             beta: float = 0.1, loss_type: str = "sigmoid", label_smoothing: float = 0.0,
             lengths: tuple[torch.Tensor, torch.Tensor] | None = None,
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair losses and the implicit rewards beta * log(pi / pi_ref) of the chosen and rejected completions.

    All inputs are (B,) summed sequence log-probabilities. With h = log(pi(y_w)/pi_ref(y_w)) -
    log(pi(y_l)/pi_ref(y_l)):
      sigmoid  -log sigmoid(beta h)                                  (Eq. 7, DPO)
               with label_smoothing e: -(1-e) log sigmoid(beta h) - e log sigmoid(-beta h)  (conservative cDPO,
               Mitchell 2023: labels flipped with probability e)
      robust   (-(1-e) log sigmoid(beta h) + e log sigmoid(-beta h)) / (1 - 2e)   (rDPO, Chowdhury et al. 2024,
               arXiv 2403.00409, Eq. 8: unbiased under label-flip rate e)
      hinge    max(0, 1 - beta h)                                   (SLiC, Zhao et al. 2023, arXiv 2305.10425)
      ipo      (h - 1 / (2 beta))^2                                  (IPO, Azar et al. 2023, arXiv 2310.12036, Eq. 17)
    `lengths`, the (chosen, rejected) completion token counts, each (B,), make h per token: each log-ratio is
    divided by its completion's length, h = log(pi(y_w)/pi_ref(y_w)) / |y_w| - log(pi(y_l)/pi_ref(y_l)) / |y_l|.
    That is the form of IPO the IPO paper's results used (as TRL's `ipo` does; the official DPO code sums).
    The rewards (Section 5, "Your language model is secretly a reward model") are beta times the summed
    log-ratios either way, detached: TRL's `rewards/chosen` and `rewards/rejected`.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"unknown loss_type {loss_type!r}; choose from {', '.join(LOSS_TYPES)}")
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    if label_smoothing and loss_type in ("hinge", "ipo"):
        raise ValueError(f"label_smoothing applies to the sigmoid and robust losses, not to {loss_type!r}")
    shapes = {t.shape for t in (policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,
                                reference_rejected_logps, *(lengths or ()))}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise ValueError(f"dpo_loss wants four (B,) tensors (and two (B,) lengths) of one shape; got "
                         f"{sorted(map(tuple, shapes))}")

    chosen_logratios = policy_chosen_logps - reference_chosen_logps
    rejected_logratios = policy_rejected_logps - reference_rejected_logps
    if lengths is None:
        h = chosen_logratios - rejected_logratios  # (B,)
    else:
        chosen_length, rejected_length = (n.to(chosen_logratios.dtype).clamp(min=1) for n in lengths)
        h = chosen_logratios / chosen_length - rejected_logratios / rejected_length  # (B,) per token
    e = label_smoothing
    if loss_type == "sigmoid":
        losses = -(1 - e) * F.logsigmoid(beta * h) - e * F.logsigmoid(-beta * h)
    elif loss_type == "robust":
        losses = (-(1 - e) * F.logsigmoid(beta * h) + e * F.logsigmoid(-beta * h)) / (1 - 2 * e)
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * h)
    else:  # ipo
        losses = (h - 1 / (2 * beta)) ** 2
    return losses, beta * chosen_logratios.detach(), beta * rejected_logratios.detach()


def bradley_terry_loss(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> torch.Tensor:
    """Per-pair negative log-likelihood of the Bradley-Terry model p(y_w > y_l) = sigmoid(r_w - r_l) (Eq. 1-2)."""
    if chosen_rewards.shape != rejected_rewards.shape:
        raise ValueError(f"chosen and rejected rewards differ in shape: {tuple(chosen_rewards.shape)} vs "
                         f"{tuple(rejected_rewards.shape)}")
    return -F.logsigmoid(chosen_rewards - rejected_rewards)


def preference_metrics(losses: torch.Tensor, chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor,
                       policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor) -> dict:
    """Batch means under TRL's metric names, so runs compare with `trl.DPOTrainer` logs."""
    return {
        "loss": losses.detach().mean(),
        "rewards/chosen": chosen_rewards.mean(),
        "rewards/rejected": rejected_rewards.mean(),
        "rewards/accuracies": (chosen_rewards > rejected_rewards).float().mean(),
        "rewards/margins": (chosen_rewards - rejected_rewards).mean(),
        "logps/chosen": policy_chosen_logps.detach().mean(),
        "logps/rejected": policy_rejected_logps.detach().mean(),
    }
