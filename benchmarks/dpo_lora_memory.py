"""Peak memory and step time of DPO (Rafailov et al., arXiv 2305.18290) training every weight, training LoRA adapters
(Hu et al., arXiv 2106.09685) with the policy as its own reference, and LoRA with gradient checkpointing. Goal: LoRA
DPO's peak memory <= 0.6x full DPO's on the same model.

All three train the same GPT-2 built from a config (no download; 6 layers, 384 wide, 10.7M parameters, paperzoo's
character tokenizer) on the same 32 preference pairs, batch 4 pairs, AdamW at lr 1e-4, beta 0.1, fp32, the
reference's log-probs computed at every step (TRL's default; paperzoo's default pre-pass runs 64 pairs at a time,
whose activations would set the peak of every variant at this size instead of training's). Full DPO holds the
policy, a frozen reference copy, the gradients and AdamW's two moments; LoRA DPO (r=16 on GPT-2's attention input
`c_attn`, peft's default) holds one copy of the weights, the reference being the same model with its adapters
disabled, and gradients and moments of the adapters only; checkpointing also recomputes each layer in the backward
pass instead of keeping its activations.

Reported: the peak memory of a whole run, from building the models to the last step (a fresh process per variant
on a CPU, the peak allocation on CUDA), as ratios to full DPO; the median time per optimizer step of each variant
(read between consecutive step ends, the first steps of a run left out), per repeat, one run of each variant per
repeat, interleaved. Needs transformers and peft (`pip install -e '.[hf,lora]'`); without them the rows say skipped.
Run: `python benchmarks/dpo_lora_memory.py [--repeats 3] [--device cuda]` or `paperzoo bench dpo_lora_memory`.
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import time
from dataclasses import dataclass

import torch

from paperzoo import bench
from paperzoo.dpo.adapters import LoRAConfig, with_lora
from paperzoo.dpo.data import PreferencePairs
from paperzoo.dpo.methods import DPO
from paperzoo.dpo.model import CharTokenizer
from paperzoo.dpo.recompute import enable_checkpointing
from paperzoo.engine.trainer import TrainConfig, Trainer

BATCH, PAIRS, LR, BETA, RANK = 4, 32, 1e-4, 0.1, 16
MAX_LENGTH, MAX_PROMPT = 64, 24
VARIANTS = ("full", "LoRA", "LoRA + checkpointing")
MISSING = "skipped: needs transformers and peft (pip install -e '.[hf,lora]')"


@dataclass(frozen=True)
class Plan:
    steps: int  # optimizer steps per run
    warmup: int  # first steps of a run left out of its times
    width: int
    layers: int
    device: torch.device


def clock(dev: torch.device) -> float:
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def preference_pairs() -> PreferencePairs:
    rng = random.Random(0)
    word = lambda n: "".join(rng.choice(string.ascii_lowercase + " ") for _ in range(n))  # noqa: E731
    rows = [{"prompt": word(rng.randint(12, 20)), "chosen": word(rng.randint(20, 36)),
             "rejected": word(rng.randint(20, 36))} for _ in range(PAIRS)]
    return PreferencePairs.from_rows(rows, CharTokenizer(), max_length=MAX_LENGTH, max_prompt_length=MAX_PROMPT)


def gpt2(plan: Plan):
    """The pretrained model: the same weights every call (dropout 0, as DPO trains here)."""
    import transformers

    tok = CharTokenizer()
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=tok.vocab_size, n_positions=MAX_LENGTH, n_embd=plan.width,
                                     n_layer=plan.layers, n_head=6, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                     pad_token_id=tok.pad_token_id)
    return transformers.GPT2LMHeadModel(config).eval()


def method(variant: str, plan: Plan) -> DPO:
    """The variant's DPO, its models built here (a run's memory starts before them)."""
    if variant == "full":
        return DPO(lambda: gpt2(plan), gpt2(plan), preference_pairs(), beta=BETA, precompute_reference=False,
                   device=plan.device)
    model = gpt2(plan)

    def policy():
        adapted = with_lora(model, LoRAConfig(r=RANK))
        return enable_checkpointing(adapted) if variant == "LoRA + checkpointing" else adapted

    return DPO(policy, None, preference_pairs(), beta=BETA, precompute_reference=False, device=plan.device)


def run(variant: str, plan: Plan) -> list[float]:
    """Seconds per step between consecutive step ends of one run, after the warm-up steps."""
    cfg = TrainConfig(steps=plan.steps, batch_size=BATCH, optimizer="adamw", lr=LR, log_every=1, progress=False,
                      device=str(plan.device))
    ends: list[float] = []
    Trainer(method(variant, plan), cfg, callbacks=[lambda state: ends.append(clock(plan.device))]).fit()
    return [b - a for a, b in zip(ends[plan.warmup:], ends[plan.warmup + 1:])]


def available() -> bool:
    try:
        import peft  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def rows(times: dict[str, list[float]], peaks: dict[str, float | None], dev: torch.device, what: str) -> list[dict]:
    memory = {f"{v} MiB": peaks[v] for v in VARIANTS if peaks.get(v) is not None}
    steps = bench.medians({v: times[v] for v in VARIANTS}, "ms/step", 1e3)
    out = []
    for variant, goal in (("LoRA", bench.Goal("<=", 0.6)), ("LoRA + checkpointing", None)):
        ratio = [peaks[variant] / peaks["full"]] if memory else None
        out.append(bench.row("dpo_lora_memory", f"peak memory {variant} / full DPO", f"peak memory of a whole run "
                             f"({what})", ratio, goal, str(dev), memory, None if ratio else bench.MEMORY_UNAVAILABLE))
    for slower, faster in (("LoRA", "full"), ("LoRA + checkpointing", "LoRA")):
        out.append(bench.row("dpo_lora_memory", f"step time {slower} / {faster}", what,
                             bench.paired(times[slower], times[faster]), None, str(dev), steps))
    return out


def skipped(dev: torch.device) -> list[dict]:
    names = [f"peak memory {v} / full DPO" for v in VARIANTS[1:]] + ["step time LoRA / full",
                                                                     "step time LoRA + checkpointing / LoRA"]
    return [bench.row("dpo_lora_memory", name, "DPO: full vs LoRA vs LoRA + checkpointing", None, None, str(dev),
                      status=MISSING) for name in names]


def main() -> None:
    parser = bench.arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]), repeats=3, device=True)
    args = bench.parse(parser)
    dev = torch.device(args.device)
    plan = Plan(3, 1, 48, 2, dev) if args.smoke else Plan(8, 2, 384, 6, dev)
    if not available():
        bench.report(skipped(dev), args.results)
        return
    if args.memory_of:
        bench.child_reply(bench.peak_mib(lambda: run(args.memory_of, plan), dev))
        return
    times = bench.interleaved({v: (lambda v=v: statistics.median(run(v, plan))) for v in VARIANTS}, args.repeats,
                              warmup=0)
    forwarded = bench.forwarded_options(args, "smoke", "device", "threads")
    peaks = bench.peaks_mib(__file__, list(VARIANTS), forwarded, dev, lambda v: lambda: run(v, plan))
    parameters = sum(p.numel() for p in gpt2(plan).parameters())
    what = (f"GPT-2 {plan.layers} layers x {plan.width} ({parameters / 1e6:.1f}M parameters), batch {BATCH} pairs, "
            f"LoRA r={RANK}, median of {plan.steps - plan.warmup - 1} steps per run")
    bench.report(rows(times, peaks, dev, what), args.results)


if __name__ == "__main__":
    main()
