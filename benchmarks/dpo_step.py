"""A DPO training step of paperzoo against TRL's `DPOTrainer`, side by side in one process (Rafailov et al., arXiv
2305.18290, Eq. 7).

Both train the same 2-layer GPT-2 built from a config (no download, dropout 0: TRL turns dropout off, and so the
two compute the same function) with the same character tokenizer built in memory (it adds BOS, so TRL's
tokenization and ours give the same ids), on the same 64 preference pairs: batch 16, AdamW at lr 1e-3, beta 0.1,
fp32, no activation checkpointing (TRL's default is on; it trades time for memory and we do not checkpoint).
Two settings: the reference model's log-probs computed at every step (TRL's default) and computed once before
training (ours: `precompute_reference=True`, TRL: `precompute_ref_log_probs=True`).

Reported: the median time per optimizer step (data loading, forward, backward, AdamW step and per-step logging,
read between consecutive step ends; the first WARMUP steps of each run and all setup — tokenization, the
reference pre-pass — are left out), pooled over ROUNDS interleaved runs, and the tokens/s it makes (non-padding
tokens of the chosen and rejected sequences per step); the ratio TRL / ours (> 1: ours faster); peak GPU memory on
CUDA (on a CPU, peak memory is not measured). Then a correctness cross-check on one batch: TRL's own `compute_loss` and ours on the
same 16 pairs, with a reference model that differs from the policy (another seed) so rewards are not all zero:
token ids, loss, rewards, log-probs and the gradient of the loss.

TRL is optional: `pip install -e '.[bench-trl]'` (paperzoo pins torch==2.13.0, so the installed CPU torch stays).
Without it only our step is timed (on paperzoo's TinyGPT when `transformers` is missing too).
Run: `python benchmarks/dpo_step.py` or `paperzoo bench dpo_step`.
"""

from __future__ import annotations

import copy
import os
import random
import statistics
import string
import tempfile
import time
import warnings
from unittest import mock

import torch

from paperzoo.dpo.data import PreferencePairs
from paperzoo.dpo.methods import DPO
from paperzoo.engine.trainer import TrainConfig, Trainer

STEPS, WARMUP, ROUNDS, BATCH, PAIRS, LR, BETA = 50, 10, 3, 16, 64, 1e-3, 0.1
MAX_LENGTH, MAX_PROMPT = 64, 32
INSTALL = "pip install -e '.[bench-trl]'"


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def clock() -> float:
    if device().type == "cuda":
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


def step_times(ends: list[float]) -> list[float]:
    """Seconds per step between consecutive step ends, after the warm-up steps."""
    return [b - a for a, b in zip(ends[WARMUP:], ends[WARMUP + 1:])]


def peak_mb() -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if device().type == "cuda" else None


def reset_peak() -> None:
    if device().type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def ours(model, tok, rows, cached: bool) -> tuple[list[float], float | None]:
    pairs = PreferencePairs.from_rows(rows, tok, max_length=MAX_LENGTH, max_prompt_length=MAX_PROMPT)
    method = DPO(lambda: copy.deepcopy(model), copy.deepcopy(model), pairs, beta=BETA,
                 precompute_reference=cached, device=device())
    cfg = TrainConfig(steps=STEPS, batch_size=BATCH, optimizer="adamw", lr=LR, log_every=1, progress=False,
                      device=str(device()))
    ends: list[float] = []
    reset_peak()
    Trainer(method, cfg, callbacks=[lambda state: ends.append(clock())]).fit()
    return step_times(ends), peak_mb()


def trl_config(out: str, cached: bool, steps: int):
    from trl import DPOConfig

    return DPOConfig(output_dir=out, use_cpu=device().type == "cpu", bf16=False, gradient_checkpointing=False,
                     per_device_train_batch_size=BATCH, dataloader_drop_last=True, max_steps=steps,
                     learning_rate=LR, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
                     logging_steps=1, report_to=[], save_strategy="no", disable_tqdm=True, beta=BETA,
                     max_length=MAX_LENGTH, precompute_ref_log_probs=cached, seed=0)


def trl_trainer(policy, reference, tok, rows, out: str, cached: bool, steps: int):
    import datasets
    import transformers
    from trl import DPOTrainer

    datasets.disable_progress_bars()
    trainer = DPOTrainer(model=policy, ref_model=reference, args=trl_config(out, cached, steps),
                         train_dataset=datasets.Dataset.from_list(rows), processing_class=tok)
    for quiet in (transformers.PrinterCallback, transformers.ProgressCallback):
        trainer.remove_callback(quiet)
    return trainer


def trl_run(model, tok, rows, cached: bool) -> tuple[list[float], float | None]:
    import transformers

    class StepEnds(transformers.TrainerCallback):
        def __init__(self):
            self.ends: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(clock())

    # TQDM_DISABLE: TRL's progress bar of the reference pre-pass
    with tempfile.TemporaryDirectory() as out, mock.patch.dict(os.environ, {"TQDM_DISABLE": "1"}):
        trainer = trl_trainer(copy.deepcopy(model), copy.deepcopy(model), tok, rows, out, cached, STEPS)
        if trainer.model.is_gradient_checkpointing:
            raise RuntimeError("TRL kept gradient checkpointing on; the comparison would not be like for like")
        recorder = StepEnds()
        trainer.add_callback(recorder)
        reset_peak()
        trainer.train()
    return step_times(recorder.ends), peak_mb()


def cross_check(model, tok, rows) -> dict[str, tuple[float, float]]:
    """The same first batch through our DPO loss and TRL's `compute_loss`: {name: (ours, TRL)}."""
    reference, _ = hf_setup(seed=1)
    rows = rows[:BATCH]
    dev = device()

    policy = copy.deepcopy(model).to(dev).train()
    pairs = PreferencePairs.from_rows(rows, tok, max_length=MAX_LENGTH, max_prompt_length=MAX_PROMPT)
    method = DPO(lambda: policy, copy.deepcopy(reference), pairs, beta=BETA, precompute_reference=False, device=dev)
    batch = {k: v.to(dev) for k, v in pairs[slice(0, BATCH)].items()}
    losses, metrics = method.losses(policy, batch)
    losses.mean().backward()
    ours_grad = torch.cat([p.grad.flatten() for p in policy.parameters()])
    ids = batch["input_ids"].transpose(0, 1).reshape(2 * BATCH, -1)  # (2B, T): chosen rows, then rejected rows

    with tempfile.TemporaryDirectory() as out:
        trainer = trl_trainer(copy.deepcopy(model), copy.deepcopy(reference), tok, rows, out, False, 1)
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


def main() -> None:
    try:
        import trl  # noqa: F401
        has_trl = True
    except ImportError:
        has_trl = False
        print(f"TRL is not installed: timing paperzoo alone. For the comparison: {INSTALL}")
    try:
        model, tok = hf_setup()
        name = "tiny GPT-2 (2 layers, 64 wide)"
    except ImportError:
        model, tok = tiny_setup()
        name = "paperzoo TinyGPT (2 layers, 64 wide; transformers is not installed)"
    rows = preference_rows()
    runs = {("paperzoo", False): ours, ("paperzoo", True): ours}
    if has_trl:
        runs.update({("TRL", False): trl_run, ("TRL", True): trl_run})
    times: dict[tuple[str, bool], list[float]] = {key: [] for key in runs}
    peaks: dict[tuple[str, bool], float | None] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers' renamed arguments, raised inside TRL
        for round_ in range(ROUNDS):
            order = list(runs) if round_ % 2 == 0 else list(runs)[::-1]  # interleaved: drift hits both alike
            for key in order:
                seconds, peaks[key] = runs[key](model, tok, rows, key[1])
                times[key] += seconds
        check = cross_check(model, tok, rows) if has_trl else {}

    threads = torch.get_num_threads()
    pairs = PreferencePairs.from_rows(rows, tok, max_length=MAX_LENGTH, max_prompt_length=MAX_PROMPT)
    tokens_per_step = BATCH * float(pairs.tensors["attention_mask"].sum()) / len(pairs)  # chosen + rejected, no pad
    print(f"device {device()} ({threads} threads), {name}, batch {BATCH} pairs ({tokens_per_step:.0f} tokens), "
          f"median over {ROUNDS} x {STEPS - WARMUP - 1} steps")
    for cached in (False, True):
        label = "reference cached" if cached else "reference on the fly"
        ms = {who: 1e3 * statistics.median(times[(who, cached)])
              for who in ("paperzoo", "TRL") if (who, cached) in times}
        for who, value in ms.items():
            memory = f", peak {peaks[(who, cached)]:.0f} MiB" if peaks[(who, cached)] is not None else ""
            rate = tokens_per_step / value * 1e3
            print(f"  {label:21s} {who:9s} {value:7.2f} ms/step {rate:8.0f} tokens/s{memory}")
        if "TRL" in ms:
            print(f"  {label:21s} ratio TRL / paperzoo {ms['TRL'] / ms['paperzoo']:.2f}x (> 1: paperzoo faster)")
    if check:
        print("cross-check, one batch of 16 pairs (reference = GPT-2 of another seed):")
        for key, (a, b) in check.items():
            if key == "same token ids":
                print(f"  {key:30s} {'yes' if b else 'NO'}")
            elif key.startswith("max"):
                print(f"  {key:30s} {a:.2e}")
            else:
                print(f"  {key:30s} paperzoo {a:11.6f}  TRL {b:11.6f}  |diff| {abs(a - b):.1e}")


if __name__ == "__main__":
    main()
