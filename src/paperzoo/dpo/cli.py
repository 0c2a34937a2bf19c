"""`paperzoo train dpo_sft | dpo_reward | dpo | dpo_rl`: the preference pipeline from a config, on the engine.

`model` (and `reference`) name where a causal LM comes from:
  tiny                     a fresh `TinyGPT` (size from `tiny.*`) with the character tokenizer
  path/to/last.safetensors a checkpoint of an earlier `paperzoo train dpo_sft|dpo|dpo_rl` run (chains the steps)
  path/to/folder           a local Hugging Face model folder (config.json, weights, tokenizer files), loaded with
                           `AutoModelForCausalLM` / `AutoTokenizer` and `local_files_only=True` (pip install
                           'paperzoo[hf]')
`data` is a JSONL file of {"prompt", "chosen", "rejected"} rows (SFT reads prompt + chosen, RL reads prompt);
empty means the offline data of `paperzoo.dpo.task` (English text for SFT; for the others, completions sampled
from the starting model and ordered by the vowel-count reward), which needs the character tokenizer.

SFT, the reward model, DPO and the RL step train LoRA adapters instead of every weight with `lora.r=R` (LoRA, Hu et
al. 2021, arXiv 2106.09685; `paperzoo.dpo.adapters`); the reference of DPO and of the RL step is then the policy
with its adapters disabled, unless `reference=` names another model. Their checkpoints hold the adapters, and load
(as `model=`) with the adapters merged. `gradient_checkpointing=true` recomputes a Hugging Face model's layers in the
backward pass (`paperzoo.dpo.recompute`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from paperzoo.catalog import TrainSpec
from paperzoo.config import from_dict
from paperzoo.dpo.adapters import LoRAConfig, merge_adapters, with_lora
from paperzoo.dpo.data import PreferencePairs, Sequences, check_lengths, check_tokenizer, read_jsonl, read_preferences
from paperzoo.dpo.methods import DPO, SFT, AdaptedReinforce, Reinforce, RewardModel, RewardTraining
from paperzoo.dpo.model import CharTokenizer, TinyGPT, TinyGPTConfig
from paperzoo.dpo.recompute import enable_checkpointing
from paperzoo.dpo.task import StyleTask
from paperzoo.engine.checkpoint import load_partial_state, read_checkpoint
from paperzoo.engine.distributed import dist_env, pick_device
from paperzoo.engine.trainer import TrainConfig
from paperzoo.errors import ConfigError, DataError, UserError


def _train(steps: int, lr: float, batch_size: int) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=batch_size, lr=lr, schedule="cosine", warmup_steps=steps // 10,
                       grad_clip=1.0, log_every=10)


@dataclass
class SFTConfig:
    model: str = "tiny"
    data: str = ""
    max_length: int = 64
    max_prompt_length: int = 32
    tiny: TinyGPTConfig = field(default_factory=TinyGPTConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    """LoRA adapters (lora.r > 0) train instead of every weight; the checkpoint holds them (`paperzoo.dpo.adapters`)"""
    gradient_checkpointing: bool = False
    """recompute a Hugging Face model's layers in the backward pass: less memory, about one more forward per step"""
    train: TrainConfig = field(default_factory=lambda: _train(300, 3e-3, 32))


@dataclass
class RewardConfig:
    model: str = "tiny"
    data: str = ""
    pairs: int = 1024  # offline data only: how many pairs to sample
    max_length: int = 64
    max_prompt_length: int = 32
    tiny: TinyGPTConfig = field(default_factory=TinyGPTConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    """LoRA adapters (lora.r > 0) train instead of every weight; the checkpoint holds them (`paperzoo.dpo.adapters`)"""
    gradient_checkpointing: bool = False
    """recompute a Hugging Face model's layers in the backward pass: less memory, about one more forward per step"""
    train: TrainConfig = field(default_factory=lambda: _train(150, 1e-3, 32))


@dataclass
class DPOConfig:
    model: str = "tiny"
    reference: str = ""  # empty: the same source as `model` (with lora.r > 0: the policy, adapters disabled)
    data: str = ""
    pairs: int = 1024
    beta: float = 0.1
    loss_type: Literal["sigmoid", "robust", "hinge", "ipo"] = "sigmoid"
    label_smoothing: float = 0.0
    average_logps: bool | None = None  # per-token log-ratios in the loss; none: true for ipo only (`DPO`)
    precompute_reference_logps: bool = True
    max_length: int = 64
    max_prompt_length: int = 32
    tiny: TinyGPTConfig = field(default_factory=TinyGPTConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    """LoRA adapters (lora.r > 0) train instead of every weight; the checkpoint holds them (`paperzoo.dpo.adapters`)"""
    gradient_checkpointing: bool = False
    """recompute a Hugging Face model's layers in the backward pass: less memory, about one more forward per step"""
    train: TrainConfig = field(default_factory=lambda: _train(150, 1e-3, 32))


@dataclass
class RLConfig:
    model: str = "tiny"
    reference: str = ""
    reward_model: str = ""  # checkpoint of a `paperzoo train dpo_reward` run (required)
    data: str = ""
    prompts: int = 1024
    kl_coef: float = 0.1
    samples_per_prompt: int = 4
    new_tokens: int = 16
    temperature: float = 1.0
    max_prompt_length: int = 16
    tiny: TinyGPTConfig = field(default_factory=TinyGPTConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    """LoRA adapters (lora.r > 0) train instead of every weight; the reference is then the policy with its adapters
    disabled (unless reference= names a model); the checkpoint holds the adapters (`paperzoo.dpo.adapters`)"""
    train: TrainConfig = field(default_factory=lambda: _train(80, 1e-3, 16))


def load_lm(source: str, tiny: TinyGPTConfig, chain: tuple[Path, ...] = ()):
    """(model, tokenizer) from a source string (see the module docstring); `chain` holds the checkpoints being
    loaded that lead to this source (a checkpoint starts from its config's `model`)."""
    if source == "tiny":
        return TinyGPT(TinyGPTConfig(**{**tiny.__dict__, "vocab_size": CharTokenizer().vocab_size})), CharTokenizer()
    path = Path(source)
    if path.suffix == ".safetensors":
        chain = _extend_chain(chain, path)
        tensors, meta = read_checkpoint(path)
        config = meta.get("config", {})
        if config.get("method") not in ("dpo_sft", "dpo", "dpo_rl"):
            raise ConfigError(f"{path} is not a checkpoint of a dpo_sft, dpo or dpo_rl run (method "
                              f"{config.get('method')!r}); a reward model goes in reward_model=")
        model, tokenizer = load_lm(config["model"], from_dict(TinyGPTConfig, config["tiny"]), chain)
        lora = from_dict(LoRAConfig, config.get("lora", {}))
        model = with_lora(model, lora) if lora.r else model
        load_weights(model, tensors, meta, path, config["model"])
        return (merge_adapters(model) if lora.r else model), tokenizer
    if (path / "config.json").is_file():
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise ConfigError(f"{path} is a Hugging Face model folder: pip install 'paperzoo[hf]' (transformers)") \
                from None
        try:  # never run (or ask to run) Python code shipped in the model folder
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
            model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        except (OSError, ValueError) as e:  # no weights or tokenizer files, an unknown architecture, a refused file
            detail = str(e).strip().splitlines()[0].rstrip(".: ") if str(e).strip() else type(e).__name__
            raise UserError(f"cannot load the Hugging Face model folder {path}: {detail}. A folder that "
                            "`save_pretrained` wrote holds config.json, the weights (model.safetensors) and the "
                            "tokenizer's files") from None
        return model, tokenizer
    raise ConfigError(f"model source {source!r} is neither 'tiny', a .safetensors checkpoint of a dpo run, nor a "
                      "folder with a Hugging Face config.json")


def _extend_chain(chain: tuple[Path, ...], path: Path) -> tuple[Path, ...]:
    """`chain` + `path`; a checkpoint that is already in the chain would be loaded forever: a UserError."""
    here = path.resolve()
    if here in chain:
        names = " -> ".join(map(str, (*chain, here)))
        raise UserError(f"checkpoint {path} starts from itself through the `model` of the saved configs: {names}. "
                        "A run's checkpoint was written over the checkpoint it started from; train each step into "
                        "its own --out folder and point model= at a checkpoint whose chain ends in 'tiny' or a "
                        "Hugging Face folder")
    return (*chain, here)


def load_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], meta: dict, path: str | Path,
                 source: str) -> None:
    """The `model.*` tensors of checkpoint `path` into `model` (built from its config's `source`, with the run's
    adapters when it trained some: the checkpoint then holds those only)."""
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    if meta.get("model_state") == "partial":
        load_partial_state(model, state, Path(path))
        return
    try:
        model.load_state_dict(state)
    except RuntimeError as e:  # torch lists every mismatch, one per line after a heading
        detail = (str(e).splitlines()[1:] or [str(e)])[0].strip()
        raise UserError(f"checkpoint {path} does not fit the model its saved config builds from model={source!r} "
                        f"({detail}); the run that wrote it started from a different model: restore the one it "
                        "started from, or train this step again") from None


def load_reward_model(path: str) -> RewardModel:
    if not path:
        raise ConfigError("dpo_rl needs reward_model=<checkpoints/last.safetensors of a `paperzoo train dpo_reward` "
                          "run>")
    tensors, meta = read_checkpoint(Path(path))
    config = meta.get("config", {})
    if config.get("method") != "dpo_reward":
        raise ConfigError(f"reward_model={path} is not a checkpoint of a dpo_reward run")
    backbone, _ = load_lm(config["model"], from_dict(TinyGPTConfig, config["tiny"]), (Path(path).resolve(),))
    lora = from_dict(LoRAConfig, config.get("lora", {}))
    model = RewardModel(with_lora(backbone, lora) if lora.r else backbone, backbone.config.hidden_size)
    load_weights(model, tensors, meta, path, config["model"])
    if lora.r:
        model.backbone = merge_adapters(model.backbone)
    return model


def _offline_task(tokenizer) -> StyleTask:
    if not isinstance(tokenizer, CharTokenizer):
        raise ConfigError("the offline data (data='') is character-level: set data=<file.jsonl> for this model")
    return StyleTask.load()


def _pairs(cfg, model, tokenizer) -> PreferencePairs:
    if cfg.data:
        return PreferencePairs.from_rows(read_preferences(cfg.data), tokenizer, cfg.max_length,
                                         cfg.max_prompt_length, source=cfg.data + " row")
    task = _offline_task(tokenizer)
    prompts = task.prompts(cfg.pairs, "train", torch.Generator().manual_seed(cfg.train.seed))
    return task.preference_pairs(model.eval(), prompts, cfg.train.seed)[0]


def policy_builder(model: torch.nn.Module, cfg: SFTConfig | RewardConfig | DPOConfig):
    """What builds the trained model from the loaded `model`: a copy of it (every weight trains), or, with
    lora.r > 0, `model` itself wrapped in adapters (its weights stay frozen: no copy); checkpointed on request."""
    def build() -> torch.nn.Module:
        policy = with_lora(model, cfg.lora) if cfg.lora.r else copy.deepcopy(model)
        return enable_checkpointing(policy) if cfg.gradient_checkpointing else policy

    return build


def build_sft(cfg: SFTConfig) -> SFT:
    model, tokenizer = load_lm(cfg.model, cfg.tiny)
    check_tokenizer(tokenizer)
    if cfg.data:
        rows = read_preferences(cfg.data)
        # the chosen completion is the demonstration; one side of PreferencePairs holds [BOS] prompt chosen [EOS]
        pairs = PreferencePairs.from_rows(rows, tokenizer, cfg.max_length, cfg.max_prompt_length, cfg.data + " row")
        data = Sequences(*(pairs.tensors[k][:, 0] for k in ("input_ids", "attention_mask", "completion_mask")))
    else:
        task = _offline_task(tokenizer)
        data = task.windows(max(4096, 32 * cfg.train.steps), cfg.tiny.context,
                            torch.Generator().manual_seed(cfg.train.seed))
    return SFT(policy_builder(model, cfg), data)


def build_reward(cfg: RewardConfig) -> RewardTraining:
    model, tokenizer = load_lm(cfg.model, cfg.tiny)
    check_tokenizer(tokenizer)
    pairs = _pairs(cfg, model, tokenizer)
    build = policy_builder(model, cfg)
    return RewardTraining(lambda: RewardModel(build(), model.config.hidden_size), pairs)


def build_dpo(cfg: DPOConfig) -> DPO:
    model, tokenizer = load_lm(cfg.model, cfg.tiny)
    own_reference = cfg.lora.r > 0 and not cfg.reference  # the policy with its adapters disabled
    reference = None if own_reference else load_lm(cfg.reference or cfg.model, cfg.tiny)[0]
    check_tokenizer(tokenizer)
    pairs = _pairs(cfg, model if own_reference else reference, tokenizer)
    device = pick_device(cfg.train.device, dist_env())
    return DPO(policy_builder(model, cfg), reference, pairs, beta=cfg.beta, loss_type=cfg.loss_type,
               label_smoothing=cfg.label_smoothing, average_logps=cfg.average_logps,
               precompute_reference=cfg.precompute_reference_logps, device=device)


def build_rl(cfg: RLConfig) -> Reinforce:
    model, tokenizer = load_lm(cfg.model, cfg.tiny)
    own_reference = cfg.lora.r > 0 and not cfg.reference  # the policy with its adapters disabled
    reference = None if own_reference else load_lm(cfg.reference or cfg.model, cfg.tiny)[0]
    reward_model = load_reward_model(cfg.reward_model)
    check_tokenizer(tokenizer)
    if cfg.data:
        prompts = _left_padded_prompts(read_preferences_prompts(cfg.data), tokenizer, cfg.max_prompt_length)
    else:
        ids = _offline_task(tokenizer).prompts(cfg.prompts, "train", torch.Generator().manual_seed(cfg.train.seed))
        prompts = Sequences(ids, torch.ones_like(ids), torch.zeros_like(ids))
    settings = dict(kl_coef=cfg.kl_coef, samples_per_prompt=cfg.samples_per_prompt, new_tokens=cfg.new_tokens,
                    temperature=cfg.temperature, eos_token_id=getattr(tokenizer, "eos_token_id", None),
                    pad_token_id=tokenizer.pad_token_id)
    if cfg.lora.r:
        return AdaptedReinforce(lambda: with_lora(model, cfg.lora), reference, reward_model, prompts, **settings)
    return Reinforce(lambda: copy.deepcopy(model), reference, reward_model, prompts, **settings)


def read_preferences_prompts(path: str) -> list[str]:
    """The "prompt" field of every row of a JSONL file (other fields are not needed for RL)."""
    rows = read_jsonl(path, "prompt", '{"prompt": "..."}')
    for where, row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
            raise DataError(f"{where}: a row needs a string field 'prompt'")
    return [row["prompt"] for _, row in rows]


def _left_padded_prompts(prompts: list[str], tokenizer, max_prompt_length: int) -> Sequences:
    """Prompts as (N, P) ids, left-padded so that every completion starts at the same column."""
    check_lengths(max_prompt_length + 1, max_prompt_length)
    bos = getattr(tokenizer, "bos_token_id", None)
    encoded = []
    for text in prompts:
        ids = list(tokenizer.encode(text, add_special_tokens=False))
        ids = ([bos] if bos is not None and (not ids or ids[0] != bos) else []) + ids
        encoded.append(ids[-max_prompt_length:])
    length = max(map(len, encoded))
    ids = torch.full((len(encoded), length), tokenizer.pad_token_id, dtype=torch.long)
    attention = torch.zeros_like(ids)
    for i, seq in enumerate(encoded):
        ids[i, length - len(seq):], attention[i, length - len(seq):] = torch.tensor(seq), 1
    return Sequences(ids, attention, torch.zeros_like(ids))


TRAIN_METHODS = {
    "dpo_sft": TrainSpec("dpo_sft", "supervised fine-tuning of a causal LM (tiny GPT on English text by default)",
                         SFTConfig, build_sft),
    "dpo_reward": TrainSpec("dpo_reward", "Bradley-Terry reward model on preference pairs", RewardConfig,
                            build_reward),
    "dpo": TrainSpec("dpo", "Direct Preference Optimization (sigmoid/cDPO, robust, hinge, ipo losses)", DPOConfig,
                     build_dpo),
    "dpo_rl": TrainSpec("dpo_rl", "RL step of RLHF: REINFORCE + leave-one-out baseline, KL-penalised reward",
                        RLConfig, build_rl),
}
