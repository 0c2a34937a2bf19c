"""RLHF and DPO (Rafailov et al., "Direct Preference Optimization: Your Language Model is Secretly a Reward Model",
NeurIPS 2023, arXiv 2305.18290): preference losses, a trainer for any causal LM, and the pipeline's steps."""

from paperzoo.dpo.adapters import LoRAConfig, WithoutAdapters, with_lora
from paperzoo.dpo.cli import (DPOConfig, RewardConfig, RLConfig, SFTConfig, build_dpo, build_reward, build_rl,
                              build_sft)
from paperzoo.dpo.data import PreferencePairs, Sequences, read_preferences
from paperzoo.dpo.export import export_adapter, export_model
from paperzoo.dpo.generation import sample, token_kl
from paperzoo.dpo.logprobs import pair_logps, reference_logps
from paperzoo.dpo.loss import LOSS_TYPES, bradley_terry_loss, dpo_loss, preference_metrics, sequence_logps
from paperzoo.dpo.methods import DPO, SFT, AdaptedReinforce, Reinforce, RewardModel, RewardTraining, pair_rewards
from paperzoo.dpo.model import CharTokenizer, TinyGPT, TinyGPTConfig
from paperzoo.dpo.recompute import enable_checkpointing

__all__ = [
    "DPO",
    "LOSS_TYPES",
    "SFT",
    "AdaptedReinforce",
    "CharTokenizer",
    "DPOConfig",
    "LoRAConfig",
    "PreferencePairs",
    "RLConfig",
    "Reinforce",
    "RewardConfig",
    "RewardModel",
    "RewardTraining",
    "SFTConfig",
    "Sequences",
    "TinyGPT",
    "TinyGPTConfig",
    "WithoutAdapters",
    "bradley_terry_loss",
    "build_dpo",
    "build_reward",
    "build_rl",
    "build_sft",
    "dpo_loss",
    "enable_checkpointing",
    "export_adapter",
    "export_model",
    "pair_logps",
    "pair_rewards",
    "preference_metrics",
    "read_preferences",
    "reference_logps",
    "sample",
    "sequence_logps",
    "token_kl",
    "with_lora",
]
