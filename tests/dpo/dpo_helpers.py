"""A tiny GPT, toy preference pairs and a DPO run, shared by the tests and the spawned DDP ranks (importable)."""

import copy
import random

import torch

from paperzoo.dpo.data import PreferencePairs
from paperzoo.dpo.methods import DPO
from paperzoo.dpo.model import CharTokenizer, TinyGPT, TinyGPTConfig
from paperzoo.engine.trainer import TrainConfig, Trainer

TOK = CharTokenizer()


def tiny_lm(seed=0):
    torch.manual_seed(seed)
    return TinyGPT(TinyGPTConfig(vocab_size=TOK.vocab_size, context=24, hidden_size=32, layers=1, heads=2))


def toy_pairs(n, seed, copy_rule=True):
    """Prompts of random letters; the chosen completion repeats the prompt's first letter, the rejected does not
    (or, without `copy_rule`, the chosen one is "aaa" and the rejected one another letter)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        prompt = "".join(rng.choice("abcdefgh") for _ in range(4))
        good = prompt[0] if copy_rule else "a"
        other = rng.choice([c for c in "abcdefgh" if c != good])
        rows.append({"prompt": prompt, "chosen": good * 3, "rejected": other * 3})
    return PreferencePairs.from_rows(rows, TOK, max_length=16, max_prompt_length=8)


def dpo_run(batch_size: int, steps: int = 3) -> tuple[list[float], list[float]]:
    """(parameters after `steps` plain-SGD steps, logged losses) of DPO on 32 fixed pairs; under `spawn_group`
    each rank runs it on its shard of the batches (the engine starts DDP from the spawned environment)."""
    reference = tiny_lm()
    method = DPO(lambda: copy.deepcopy(reference), copy.deepcopy(reference), toy_pairs(32, 0), beta=0.5)
    cfg = TrainConfig(steps=steps, batch_size=batch_size, optimizer="sgd", momentum=0.0, lr=0.05, log_every=1,
                      device="cpu", progress=False, seed=3)
    result = Trainer(method, cfg).fit()
    parameters = torch.cat([p.detach().reshape(-1) for p in result.model.parameters()])
    return parameters.tolist(), result.history.series("train", "loss")[1]


def lora_dpo_run(batch_size: int, steps: int = 3) -> tuple[list[float], list[float]]:
    """As `dpo_run`, training LoRA adapters with the policy as its own reference, computed at every step (adapters
    disabled); returns the adapters after `steps` steps and the logged losses."""
    from paperzoo.dpo.adapters import LoRAConfig, adapter_state, with_lora

    base = tiny_lm()
    method = DPO(lambda: with_lora(base, LoRAConfig(r=4)), None, toy_pairs(32, 0), beta=0.5,
                 precompute_reference=False)
    cfg = TrainConfig(steps=steps, batch_size=batch_size, optimizer="sgd", momentum=0.0, lr=0.5, log_every=1,
                      device="cpu", progress=False, seed=3)
    result = Trainer(method, cfg).fit()
    adapters = torch.cat([p.detach().reshape(-1) for p in adapter_state(result.model).values()])
    return adapters.tolist(), result.history.series("train", "loss")[1]


def uncached_sample(model, prompt_ids, prompt_mask, new_tokens, seed):
    """The reference for `sample`: every token from one forward over the whole sequence so far."""
    generator, ids, attention = torch.Generator().manual_seed(seed), prompt_ids, prompt_mask
    with torch.no_grad():
        for _ in range(new_tokens):
            probs = torch.softmax(model(ids, attention_mask=attention).logits[:, -1].float(), -1)
            token = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
            ids, attention = torch.cat([ids, token], 1), torch.cat([attention, torch.ones_like(token)], 1)
    return ids


def sharded_dpo_run(batch_size: int, parallel: str, lora: bool, out: str, steps: int, resume: bool = False
                    ) -> list[float]:
    """The logged losses of DPO (Adam, gradient clipping) on 32 fixed pairs, every weight or LoRA adapters (the
    policy as its own reference), with a checkpoint in `out` at every step; under `spawn_group` with
    parallel="fsdp" each rank holds half of every tensor."""
    from paperzoo.dpo.adapters import LoRAConfig, with_lora

    base = tiny_lm()
    build = (lambda: with_lora(base, LoRAConfig(r=4))) if lora else (lambda: copy.deepcopy(base))
    method = DPO(build, None if lora else copy.deepcopy(base), toy_pairs(32, 0), beta=0.5)
    cfg = TrainConfig(steps=steps, batch_size=batch_size, optimizer="adam", lr=0.01, grad_clip=0.5, log_every=1,
                      checkpoint_every=1, parallel=parallel, device="cpu", progress=False, seed=3)
    return Trainer(method, cfg, out_dir=out).fit(resume).history.series("train", "loss")[1]
