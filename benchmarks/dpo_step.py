"""A DPO training step of paperzoo against TRL's `DPOTrainer`, side by side in one process (Rafailov et al., arXiv
2305.18290, Eq. 7). Goal: ours at least as fast (TRL's time / ours >= 1.0x).

Both train the same 2-layer GPT-2 built from a config (no download, dropout 0: TRL turns dropout off, and so the
two compute the same function) with the same character tokenizer built in memory (it adds BOS, so TRL's
tokenization and ours give the same ids), on the same 64 preference pairs: batch 16, AdamW at lr 1e-3, beta 0.1,
fp32, no activation checkpointing (TRL's default is on; it trades time for memory and we do not checkpoint).
Two settings: the reference model's log-probs computed at every step (TRL's default) and computed once before
training (ours: `precompute_reference=True`, TRL: `precompute_ref_log_probs=True`).

Reported: per repeat (one run of each variant, interleaved), the median time per optimizer step (data loading,
forward, backward, AdamW step and per-step logging, read between consecutive step ends; the first warm-up steps
of each run and all setup — tokenization, the reference pre-pass — are left out); the ratio TRL / ours and the
tokens/s (non-padding tokens of the chosen and rejected sequences per step); the peak memory of a whole run (CUDA's
peak allocation, or a fresh process per variant on a CPU). Then a correctness cross-check on one batch: TRL's own
`compute_loss` and ours on the same 16 pairs, with a reference model that differs from the policy (another seed)
so rewards are not all zero: token ids, loss, rewards, log-probs and the gradient of the loss.

TRL is optional: `pip install -e '.[bench-trl]'` (paperzoo pins torch==2.13.0, so the installed CPU torch stays).
Without it the comparison rows say "skipped: TRL not installed" and show our step alone (on paperzoo's TinyGPT when
`transformers` is missing too).
Run: `python benchmarks/dpo_step.py [--repeats 5] [--device cuda]` or `paperzoo bench dpo_step`.
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import statistics
import string
import tempfile
import time
import warnings
from dataclasses import dataclass
from unittest import mock

import torch

from paperzoo import bench
from paperzoo.dpo.data import PreferencePairs
from paperzoo.dpo.methods import DPO
from paperzoo.engine.trainer import TrainConfig, Trainer

BATCH, PAIRS, LR, BETA = 16, 64, 1e-3, 0.1
MAX_LENGTH, MAX_PROMPT = 64, 32
SETTINGS = {False: "reference every step", True: "reference cached"}
NO_TRL = "skipped: TRL not installed (pip install -e '.[bench-trl]')"


@dataclass(frozen=True)
class Plan:
    steps: int  # optimizer steps per run
    warmup: int  # first steps of a run left out of its times
    device: torch.device


def clock(dev: torch.device) -> float:
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def preference_rows() -> list[dict]:
    rng = random.Random(0)
    word = lambda n: "".join(rng.choice(string.ascii_lowercase + " ") for _ in range(n))  # noqa: E731
    return [{"prompt": word(rng.randint(6, 14)), "chosen": word(rng.randint(6, 16)),
             "rejected": word(rng.randint(6, 16))} for _ in range(PAIRS)]


def hf_setup(seed: int = 0):
    """(GPT-2 with seed `seed`, character tokenizer that prepends BOS), both built locally."""
    import tokenizers
    import transformers

    vocab = {"<pad>": 0, "<bos>": 1, "<eos>": 2, **{c: i + 3 for i, c in enumerate(string.ascii_lowercase + " ")}}
    core = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<pad>"))
    core.pre_tokenizer = tokenizers.pre_tokenizers.Split("", "isolated")
    core.post_processor = tokenizers.processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", eos_token="<eos>",
                                               pad_token="<pad>")
    torch.manual_seed(seed)
    config = transformers.GPT2Config(vocab_size=len(vocab), n_positions=MAX_LENGTH, n_embd=64, n_layer=2, n_head=4,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=1,
                                     eos_token_id=2, pad_token_id=0)
    return transformers.GPT2LMHeadModel(config), tok


def tiny_setup():
    """paperzoo's own model and tokenizer, for a machine without `transformers`."""
    from paperzoo.dpo.model import CharTokenizer, TinyGPT, TinyGPTConfig

    tok = CharTokenizer()
    torch.manual_seed(0)
    return TinyGPT(TinyGPTConfig(vocab_size=tok.vocab_size, context=MAX_LENGTH, hidden_size=64)), tok


def step_times(ends: list[float], plan: Plan) -> list[float]:
    """Seconds per step between consecutive step ends, after the warm-up steps."""
    return [b - a for a, b in zip(ends[plan.warmup:], ends[plan.warmup + 1:])]


def ours(model, tok, rows, plan: Plan, cached: bool) -> list[float]:
    pairs = PreferencePairs.from_rows(rows, tok, max_length=MAX_LENGTH, max_prompt_length=MAX_PROMPT)
    method = DPO(lambda: copy.deepcopy(model), copy.deepcopy(model), pairs, beta=BETA,
                 precompute_reference=cached, device=plan.device)
    cfg = TrainConfig(steps=plan.steps, batch_size=BATCH, optimizer="adamw", lr=LR, log_every=1, progress=False,
                      device=str(plan.device))
    ends: list[float] = []
    Trainer(method, cfg, callbacks=[lambda state: ends.append(clock(plan.device))]).fit()
    return step_times(ends, plan)


def trl_config(out: str, plan: Plan, cached: bool):
    from trl import DPOConfig

    return DPOConfig(output_dir=out, use_cpu=plan.device.type == "cpu", bf16=False, gradient_checkpointing=False,
                     per_device_train_batch_size=BATCH, dataloader_drop_last=True, max_steps=plan.steps,
                     learning_rate=LR, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
                     logging_steps=1, report_to=[], save_strategy="no", disable_tqdm=True, beta=BETA,
                     max_length=MAX_LENGTH, precompute_ref_log_probs=cached, seed=0)


def trl_trainer(policy, reference, tok, rows, out: str, plan: Plan, cached: bool, peft_config=None):
    """TRL's DPOTrainer on `rows`; with a `peft_config` (and `reference` None) it trains LoRA adapters with the
    policy, adapters disabled, as its reference (tests/dpo/test_dpo_trl.py)."""
    import datasets
    import transformers
    from trl import DPOTrainer

    datasets.disable_progress_bars()
    trainer = DPOTrainer(model=policy, ref_model=reference, args=trl_config(out, plan, cached),
                         train_dataset=datasets.Dataset.from_list(rows), processing_class=tok,
                         peft_config=peft_config)
    for quiet in (transformers.PrinterCallback, transformers.ProgressCallback):
        trainer.remove_callback(quiet)
    return trainer


def trl_run(model, tok, rows, plan: Plan, cached: bool) -> list[float]:
    import transformers

    class StepEnds(transformers.TrainerCallback):
        def __init__(self):
            self.ends: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(clock(plan.device))

    # TQDM_DISABLE: TRL's progress bar of the reference pre-pass
    with tempfile.TemporaryDirectory() as out, mock.patch.dict(os.environ, {"TQDM_DISABLE": "1"}):
        trainer = trl_trainer(copy.deepcopy(model), copy.deepcopy(model), tok, rows, out, plan, cached)
        if trainer.model.is_gradient_checkpointing:
            raise RuntimeError("TRL kept gradient checkpointing on; the comparison would not be like for like")
        recorder = StepEnds()
        trainer.add_callback(recorder)
        trainer.train()
    return step_times(recorder.ends, plan)


def cross_check(model, tok, rows, dev: torch.device) -> dict[str, tuple[float, float]]:
    """The same first batch through our DPO loss and TRL's `compute_loss`: {name: (ours, TRL)}."""
    reference, _ = hf_setup(seed=1)
    rows = rows[:BATCH]

    policy = copy.deepcopy(model).to(dev).train()
    pairs = PreferencePairs.from_rows(rows, tok, max_length=MAX_LENGTH, max_prompt_length=MAX_PROMPT)
    method = DPO(lambda: policy, copy.deepcopy(reference), pairs, beta=BETA, precompute_reference=False, device=dev)
    batch = {k: v.to(dev) for k, v in pairs[slice(0, BATCH)].items()}
    losses, metrics = method.losses(policy, batch)
    losses.mean().backward()
    ours_grad = torch.cat([p.grad.flatten() for p in policy.parameters()])
    ids = batch["input_ids"].transpose(0, 1).reshape(2 * BATCH, -1)  # (2B, T): chosen rows, then rejected rows

    with tempfile.TemporaryDirectory() as out:
        trainer = trl_trainer(copy.deepcopy(model), copy.deepcopy(reference), tok, rows, out,
                              Plan(1, 0, dev), cached=False)
        inputs = trainer.data_collator([trainer.train_dataset[i] for i in range(BATCH)])
        inputs = trainer._prepare_inputs(inputs)
        trainer.model.train()
        loss = trainer.compute_loss(trainer.model, inputs)
        loss.backward()
    theirs = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    trl_grad = torch.cat([p.grad.flatten() for p in trainer.model.parameters()])
    same_ids = ids.shape == inputs["input_ids"].shape and torch.equal(ids.cpu(), inputs["input_ids"].cpu())
    result = {"same token ids": (1.0, float(same_ids)),
              "loss": (float(losses.mean().detach()), float(loss.detach()))}
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
                "logps/rejected"):
        result[key] = (float(metrics[key]), float(theirs[key]))
    result["gradient norm"] = (float(ours_grad.norm()), float(trl_grad.norm()))
    result["max |grad diff| / max |grad|"] = (float((ours_grad - trl_grad).abs().max() / trl_grad.abs().max()), 0.0)
    return result


RUNS = {"paperzoo": ours, "TRL": trl_run}


def has_trl() -> bool:
    try:
        import trl  # noqa: F401
    except ImportError:
        return False
    return True


def setup() -> tuple[object, object, str]:
    """(model, tokenizer, what the model is): GPT-2 when transformers is installed, else paperzoo's TinyGPT."""
    try:
        return *hf_setup(), "tiny GPT-2 (2 layers, 64 wide)"
    except ImportError:
        return *tiny_setup(), "paperzoo TinyGPT (2 layers, 64 wide; transformers is not installed)"


def variant_run(variant: str, model, tok, rows, plan: Plan):
    """The zero-argument run of a variant named "<who>/<setting>", e.g. "TRL/reference cached"."""
    who, setting = variant.split("/")
    cached = setting == SETTINGS[True]
    return lambda: RUNS[who](model, tok, rows, plan, cached)


def print_cross_check(check: dict[str, tuple[float, float]]) -> None:
    print(f"cross-check, one batch of {BATCH} pairs (reference = GPT-2 of another seed):")
    for key, (a, b) in check.items():
        if key == "same token ids":
            print(f"  {key:30s} {'yes' if b else 'NO'}")
        elif key.startswith("max"):
            print(f"  {key:30s} {a:.2e}")
        else:
            print(f"  {key:30s} paperzoo {a:11.6f}  TRL {b:11.6f}  |diff| {abs(a - b):.1e}")


def comparison_rows(times: dict[str, list[float]], peaks: dict[str, float | None], tokens_per_step: float,
                    dev: torch.device, what: str) -> list[dict]:
    rows = []
    for setting in SETTINGS.values():
        ours_, trl_ = f"paperzoo/{setting}", f"TRL/{setting}"
        shown = {ours_: times[ours_]} | ({trl_: times[trl_]} if trl_ in times else {})
        values = bench.medians(shown, "ms/step", 1e3) | bench.medians(
            {k: [tokens_per_step / s for s in v] for k, v in shown.items()}, "tokens/s")
        ratios = bench.paired(times[trl_], times[ours_]) if trl_ in times else None
        rows.append(bench.row("dpo_step", f"step time TRL / paperzoo, {setting}", f"{what}, batch {BATCH} pairs",
                              ratios, bench.Goal(">=", 1.0), str(dev), values, None if ratios else NO_TRL))
        memory = {k: peaks[k] for k in (ours_, trl_) if peaks.get(k) is not None}
        if trl_ in memory and ours_ in memory:
            ratio, status = [memory[ours_] / memory[trl_]], None
        else:
            ratio, status = None, NO_TRL if trl_ not in times else bench.MEMORY_UNAVAILABLE
        rows.append(bench.row("dpo_step", f"peak memory paperzoo / TRL, {setting}", f"peak memory of a whole run "
                              f"({what})", ratio, None, str(dev), {f"{k} MiB": v for k, v in memory.items()}, status))
    return rows


def main() -> None:
    parser = bench.arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]), repeats=5, device=True)
    args = bench.parse(parser)
    dev = torch.device(args.device)
    plan = Plan(4, 1, dev) if args.smoke else Plan(50, 10, dev)
    trl_here = has_trl()
    model, tok, what = setup()
    rows = preference_rows()
    if args.memory_of:
        bench.child_reply(bench.peak_mib(variant_run(args.memory_of, model, tok, rows, plan), dev))
        return
    variants = [f"{who}/{setting}" for who in (["paperzoo", "TRL"] if trl_here else ["paperzoo"])
                for setting in SETTINGS.values()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers' renamed arguments, raised inside TRL
        runs = {v: variant_run(v, model, tok, rows, plan) for v in variants}
        times = bench.interleaved({v: (lambda run=run: statistics.median(run())) for v, run in runs.items()},
                                  args.repeats, warmup=0)
        forwarded = bench.forwarded_options(args, "smoke", "device", "threads")
        peaks = bench.peaks_mib(__file__, variants, forwarded, dev, lambda v: runs[v])
        check = cross_check(model, tok, rows, dev) if trl_here else {}
    pairs = PreferencePairs.from_rows(rows, tok, max_length=MAX_LENGTH, max_prompt_length=MAX_PROMPT)
    tokens_per_step = BATCH * float(pairs.tensors["attention_mask"].sum()) / len(pairs)  # chosen + rejected, no pad
    steps = f"median of {plan.steps - plan.warmup - 1} steps per run"
    bench.report(comparison_rows(times, peaks, tokens_per_step, dev, f"{what}, {steps}"), args.results)
    if check:
        print_cross_check(check)


if __name__ == "__main__":
    main()
