"""The four steps of the preference pipeline as engine methods (the `Method` protocol of paperzoo.engine).

  SFT            supervised fine-tuning: next-token NLL of the completion tokens (or of whole text windows)
  RewardTraining a scalar reward model fit to preference pairs by the Bradley-Terry NLL (Rafailov et al. Eq. 2)
  DPO            the DPO loss (Eq. 7) or a variant, against a frozen reference whose log-probs can be cached
  Reinforce      the RL step of RLHF (Eq. 3): REINFORCE on the KL-penalised reward r(x,y) - beta*log(pi/pi_ref),
                 with a leave-one-out baseline over k samples per prompt (RLOO, Ahmadian et al. 2024,
                 arXiv 2402.14740) -- not PPO: no value network and no clipping, one update per batch of samples
  AdaptedReinforce  the same with LoRA adapters: the reference is the policy with its adapters disabled
Each takes built objects (models, datasets); `paperzoo.dpo.cli` builds them from a config for `paperzoo train`.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from paperzoo.dpo.adapters import WithoutAdapters, adapter_state, adapters_disabled, require_adapters
from paperzoo.dpo.data import PreferencePairs, Sequences, trim
from paperzoo.dpo.generation import sample
from paperzoo.dpo.logprobs import (check_same_vocabulary, freeze, model_device, pair_logps, reference_logps)
from paperzoo.dpo.loss import bradley_terry_loss, dpo_loss, preference_metrics, sequence_logps
from paperzoo.engine.trainer import StepOutput
from paperzoo.errors import ConfigError


class RewardModel(nn.Module):
    """A causal LM backbone with a scalar head on the final hidden state of the last real (non-pad) token."""

    def __init__(self, backbone: nn.Module, hidden_size: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids, attention_mask=attention_mask,
                               output_hidden_states=True).hidden_states[-1]  # (B, T, D)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        last = (attention_mask.long() * positions).argmax(1)  # (B,) last real token, left or right padding
        return self.head(hidden[torch.arange(len(last), device=last.device), last].float()).squeeze(-1)  # (B,)


def pair_rewards(reward_model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen, rejected) rewards, each (B,), of a batch of `PreferencePairs` items (B, 2, T)."""
    ids = batch["input_ids"]
    b, _, t = ids.shape
    flat = [batch[k].transpose(0, 1).reshape(2 * b, t) for k in ("input_ids", "attention_mask")]  # (2B, T)
    rewards = reward_model(*flat)
    return rewards[:b], rewards[b:]


def _batches(dataset, size: int, device: torch.device):
    for start in range(0, len(dataset), size):
        batch = dataset[slice(start, start + size)]
        yield trim({k: v.to(device) for k, v in batch.items()})


class SFT:
    checkpoint_state = staticmethod(adapter_state)  # a LoRA model's checkpoint holds its adapters only

    def __init__(self, build: Callable[[], nn.Module], data: Sequences, eval_data: Sequences | None = None):
        self.build, self.data, self.eval_data = build, data, eval_data

    def build_model(self) -> nn.Module:
        return self.build()

    def train_dataset(self) -> Sequences:
        return self.data

    @staticmethod
    def nll(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        total = sequence_logps(logits, batch["input_ids"], batch["completion_mask"]).sum()
        return -total / batch["completion_mask"][:, 1:].sum().clamp(min=1)  # mean NLL per completion token

    def training_step(self, model: nn.Module, batch) -> StepOutput:
        return StepOutput(self.nll(model, trim(batch)))

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        if self.eval_data is None:
            return {}
        losses = [self.nll(model, batch).item() for batch in _batches(self.eval_data, 256, device)]
        return {"nll": sum(losses) / len(losses)}


class RewardTraining:
    checkpoint_state = staticmethod(adapter_state)  # adapters and the head

    def __init__(self, build: Callable[[], RewardModel], pairs: PreferencePairs,
                 eval_pairs: PreferencePairs | None = None):
        self.build, self.pairs, self.eval_pairs = build, pairs, eval_pairs

    def build_model(self) -> RewardModel:
        return self.build()

    def train_dataset(self) -> PreferencePairs:
        return self.pairs

    def training_step(self, model: nn.Module, batch) -> StepOutput:
        chosen, rejected = pair_rewards(model, trim(batch))
        return StepOutput(bradley_terry_loss(chosen, rejected).mean(),
                          {"accuracy": (chosen > rejected).float().mean(), "margin": (chosen - rejected).mean()})

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        if self.eval_pairs is None:
            return {}
        right = [(torch.gt(*pair_rewards(model, batch))).float() for batch in _batches(self.eval_pairs, 256, device)]
        return {"accuracy": torch.cat(right).mean().item()}


class DPO:
    """`reference` is frozen here (eval mode, no gradients); with `precompute_reference` its log-probs are computed
    once in `train_dataset()` on `device` and read from the batch afterwards. `reference=None` makes the policy its
    own reference: the policy must carry LoRA adapters (`paperzoo.dpo.adapters.with_lora`), and the reference is
    the same model with them disabled, in eval mode (no second copy of the weights).

    `average_logps` feeds the loss per-token log-ratios (`dpo_loss`'s `lengths`) instead of summed ones; its default
    (None) is per token for `ipo`, the form the IPO paper's results used (Azar et al. 2023, arXiv 2310.12036, as
    TRL's `ipo`), and summed for the other losses (Rafailov et al. Eq. 7, as the official DPO code and TRL). The
    logged metrics are TRL's whichever is chosen: rewards from summed log-ratios, `logps/*` summed log-probs."""

    checkpoint_state = staticmethod(adapter_state)

    def __init__(self, build_policy: Callable[[], nn.Module], reference: nn.Module | None, pairs: PreferencePairs,
                 eval_pairs: PreferencePairs | None = None, beta: float = 0.1, loss_type: str = "sigmoid",
                 label_smoothing: float = 0.0, average_logps: bool | None = None, precompute_reference: bool = True,
                 device: str | torch.device = "cpu"):
        try:  # the settings are checked before any work
            dpo_loss(*torch.zeros(4, 1), beta=beta, loss_type=loss_type, label_smoothing=label_smoothing)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        self.build_policy = build_policy
        self.reference = None if reference is None else freeze(reference)
        self.policy: nn.Module | None = None  # the built policy, when it is its own reference
        self.pairs, self.eval_pairs = pairs, eval_pairs
        self.beta, self.loss_type, self.label_smoothing = beta, loss_type, label_smoothing
        self.average = loss_type == "ipo" if average_logps is None else average_logps
        self.precompute, self.device = precompute_reference, torch.device(device)

    def build_model(self) -> nn.Module:
        policy = self.build_policy()
        if self.reference is None:
            self.policy = require_adapters(policy)
        else:
            check_same_vocabulary(policy, self.reference)
        return policy

    def train_dataset(self) -> PreferencePairs:
        if self.precompute and "reference_logps" not in self.pairs.tensors:
            self.pairs.set_reference_logps(self._reference_logps())
        return self.pairs

    def _reference_logps(self) -> torch.Tensor:
        if self.reference is not None:
            self.reference.to(self.device)
            return reference_logps(self.reference, self.pairs)
        if self.policy is None:
            raise RuntimeError("DPO(reference=None): build_model() builds the policy, which is also the reference, "
                               "before train_dataset() can compute its log-probs")
        with adapters_disabled(self.policy) as base:  # on the device the trainer moved the policy to
            return reference_logps(base, self.pairs)

    def _reference(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if "reference_logps" in batch:
            return batch["reference_logps"].unbind(-1)
        if self.reference is None:
            with torch.no_grad(), adapters_disabled(model) as base:
                return pair_logps(base, batch)
        device = batch["input_ids"].device
        if model_device(self.reference) != device:
            self.reference.to(device)
        with torch.no_grad():
            return pair_logps(self.reference, batch)

    def losses(self, model: nn.Module, batch: dict[str, torch.Tensor]):
        """(per-pair losses, TRL-named metrics) of one batch."""
        batch = trim(batch)
        chosen, rejected = pair_logps(model, batch)
        ref_chosen, ref_rejected = self._reference(model, batch)
        lengths = batch["completion_mask"].sum(-1).unbind(-1) if self.average else None  # (B,) tokens per side
        losses, chosen_rewards, rejected_rewards = dpo_loss(chosen, rejected, ref_chosen, ref_rejected, self.beta,
                                                            self.loss_type, self.label_smoothing, lengths)
        return losses, preference_metrics(losses, chosen_rewards, rejected_rewards, chosen, rejected)

    def training_step(self, model: nn.Module, batch) -> StepOutput:
        losses, metrics = self.losses(model, batch)
        return StepOutput(losses.mean(), metrics)

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        if self.eval_pairs is None:
            return {}
        rows = [(len(b["input_ids"]), self.losses(model, b)[1]) for b in _batches(self.eval_pairs, 256, device)]
        n = sum(size for size, _ in rows)
        return {name: sum(size * float(m[name]) for size, m in rows) / n for name in rows[0][1]}


class Reinforce:
    """The RL step of RLHF with REINFORCE + leave-one-out baseline; the KL penalty is in the reward (Eq. 3)."""

    def __init__(self, build_policy: Callable[[], nn.Module], reference: nn.Module, reward_model: nn.Module,
                 prompts: Sequences, kl_coef: float = 0.1, samples_per_prompt: int = 4, new_tokens: int = 16,
                 temperature: float = 1.0, eos_token_id: int | None = None, pad_token_id: int = 0):
        if samples_per_prompt < 2:
            raise ConfigError(f"samples_per_prompt must be >= 2 for the leave-one-out baseline, got "
                              f"{samples_per_prompt}")
        if kl_coef < 0 or new_tokens < 1:
            raise ConfigError(f"need kl_coef >= 0 and new_tokens >= 1; got {kl_coef}, {new_tokens}")
        self.build_policy, self.reference, self.reward_model = build_policy, freeze(reference), freeze(reward_model)
        self.prompts, self.kl_coef, self.k, self.new_tokens = prompts, kl_coef, samples_per_prompt, new_tokens
        self.temperature, self.eos, self.pad = temperature, eos_token_id, pad_token_id

    def build_model(self) -> nn.Module:
        policy = self.build_policy()
        check_same_vocabulary(policy, self.reference)
        config = getattr(policy, "config", None)
        context = next((getattr(config, name) for name in ("context", "n_positions", "max_position_embeddings")
                        if isinstance(getattr(config, name, None), int)), None)
        prompt = self.prompts.tensors["input_ids"].shape[1]
        if context is not None and prompt + self.new_tokens > context:
            raise ConfigError(f"prompts of {prompt} tokens + new_tokens={self.new_tokens} exceed the model's context "
                              f"of {context} tokens: shorten the prompts or lower new_tokens")
        return policy

    def train_dataset(self) -> Sequences:
        return self.prompts

    def training_step(self, model: nn.Module, batch) -> StepOutput:
        prompt = batch["input_ids"].repeat_interleave(self.k, dim=0)  # (B*k, P)
        prompt_mask = batch["attention_mask"].repeat_interleave(self.k, dim=0)
        for frozen in (self.reference, self.reward_model):
            if model_device(frozen) != prompt.device:
                frozen.to(prompt.device)
        ids, attention, completion = sample(model, prompt, self.new_tokens, prompt_mask, self.temperature,
                                            self.eos, self.pad)
        with torch.no_grad():
            reward = self.reward_model(ids, attention)  # (B*k,)
            ref = sequence_logps(self.reference(ids, attention_mask=attention).logits, ids, completion)
        logp = sequence_logps(model(ids, attention_mask=attention).logits, ids, completion)  # (B*k,)
        kl = logp.detach() - ref  # log(pi/pi_ref) of the sampled completion
        total = (reward - self.kl_coef * kl).view(-1, self.k)  # (B, k)
        baseline = (total.sum(1, keepdim=True) - total) / (self.k - 1)  # mean of the other k-1 samples
        advantage = (total - baseline).view(-1)  # (B*k,)
        loss = -(advantage * logp).mean()
        return StepOutput(loss, {"reward": reward.mean(), "kl": kl.mean(), "objective": total.mean()})

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        return {}


class AdaptedReinforce(Reinforce):
    """`Reinforce` on a policy with LoRA adapters (`paperzoo.dpo.adapters.with_lora`), whose reference in the KL
    penalty of Eq. 3 is the same model with its adapters disabled: one copy of the weights, as `DPO` with
    `reference=None`; a reference model given instead is used as in `Reinforce`. A checkpoint holds the adapters
    only. The other arguments are `Reinforce`'s."""

    checkpoint_state = staticmethod(adapter_state)

    def __init__(self, build_policy: Callable[[], nn.Module], reference: nn.Module | None, reward_model: nn.Module,
                 prompts: Sequences, **settings):
        if reference is None:
            reference, build = WithoutAdapters(), build_policy

            def build_policy() -> nn.Module:  # the policy, which the reference then calls with adapters disabled
                return reference.bind(build())

        super().__init__(build_policy, reference, reward_model, prompts, **settings)
