"""A DPO training step of paperzoo against TRL's `DPOTrainer` on the same tiny local GPT-2 and the same pairs.

Both train a 2-layer GPT-2 built from a config (no download) with a character tokenizer built in memory, on the
same 64 preference pairs, batch 16, AdamW at lr 1e-3, beta 0.1, reference log-probs computed on the fly (TRL's
default) and, for paperzoo, also cached once. Reported: tokens/s (non-padding tokens of chosen + rejected), the
ratio ours / TRL (goal: > 1), peak GPU memory on CUDA, and the first step's metrics from both (equal up to float
tolerance when both tokenize alike). Needs `transformers`, `trl` and `datasets` (not paperzoo dependencies):
`pip install trl` or the project's bench extra. Run: `python benchmarks/dpo_step.py` or `paperzoo bench dpo_step`.
"""

from __future__ import annotations

import copy
import random
import string
import tempfile
import time

import torch

from paperzoo.dpo.data import PreferencePairs
from paperzoo.dpo.methods import DPO
from paperzoo.engine.trainer import TrainConfig, Trainer

STEPS, BATCH, PAIRS, LR, BETA = 40, 16, 64, 1e-3, 0.1


def build():
    import tokenizers
    import transformers

    vocab = {"<pad>": 0, "<bos>": 1, "<eos>": 2, **{c: i + 3 for i, c in enumerate(string.ascii_lowercase + " ")}}
    core = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<pad>"))
    core.pre_tokenizer = tokenizers.pre_tokenizers.Split("", "isolated")
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", eos_token="<eos>",
                                               pad_token="<pad>")
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=len(vocab), n_positions=64, n_embd=64, n_layer=2, n_head=4,
                                     bos_token_id=1, eos_token_id=2, pad_token_id=0)
    rng = random.Random(0)
    word = lambda n: "".join(rng.choice(string.ascii_lowercase + " ") for _ in range(n))  # noqa: E731
    rows = [{"prompt": word(rng.randint(6, 14)), "chosen": word(rng.randint(6, 16)),
             "rejected": word(rng.randint(6, 16))} for _ in range(PAIRS)]
    return transformers.GPT2LMHeadModel(config), tok, rows


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def tokens(pairs: PreferencePairs) -> int:
    return int(pairs.tensors["attention_mask"].sum())  # chosen + rejected, no padding


def ours(model, tok, rows, precompute: bool) -> dict:
    pairs = PreferencePairs.from_rows(rows, tok, max_length=64, max_prompt_length=32)
    method = DPO(lambda: copy.deepcopy(model), copy.deepcopy(model), pairs, beta=BETA,
                 precompute_reference=precompute, device=device())
    cfg = TrainConfig(steps=STEPS, batch_size=BATCH, optimizer="adamw", lr=LR, log_every=1, progress=False,
                      device=str(device()))
    if device().type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    history = Trainer(method, cfg).fit().history
    seconds = time.perf_counter() - started
    first = history.rows[0]
    return {"tokens_per_s": tokens(pairs) / PAIRS * BATCH * STEPS / seconds, "first": first,
            "peak_mb": torch.cuda.max_memory_allocated() / 2**20 if device().type == "cuda" else None}


def trl_run(model, tok, rows) -> dict:
    import datasets
    from trl import DPOConfig, DPOTrainer

    pairs = PreferencePairs.from_rows(rows, tok, max_length=64, max_prompt_length=32)
    with tempfile.TemporaryDirectory() as out:
        args = DPOConfig(output_dir=out, use_cpu=device().type == "cpu", bf16=False, per_device_train_batch_size=BATCH,
                         max_steps=STEPS, learning_rate=LR, lr_scheduler_type="constant", warmup_steps=0,
                         logging_steps=1, report_to=[], save_strategy="no", beta=BETA, max_length=64,
                         weight_decay=0.0, seed=0)
        trainer = DPOTrainer(model=copy.deepcopy(model), ref_model=copy.deepcopy(model), args=args,
                             train_dataset=datasets.Dataset.from_list(rows), processing_class=tok)
        if device().type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
    first = next(r for r in trainer.state.log_history if "loss" in r)
    return {"tokens_per_s": tokens(pairs) / PAIRS * BATCH * STEPS / seconds, "first": first,
            "peak_mb": torch.cuda.max_memory_allocated() / 2**20 if device().type == "cuda" else None}


def main() -> None:
    try:
        import trl  # noqa: F401

        model, tok, rows = build()
    except ImportError as e:
        print(f"skipped: needs transformers, tokenizers, datasets and trl ({e})")
        return
    results = {"paperzoo (reference on the fly)": ours(model, tok, rows, precompute=False),
               "paperzoo (reference cached)": ours(model, tok, rows, precompute=True)}
    try:
        results["TRL DPOTrainer"] = trl_run(model, tok, rows)
    except Exception as e:  # TRL's dataset preparation depends on datasets/dill/pyarrow versions
        print(f"TRL run failed ({type(e).__name__}: {str(e)[:200]}); paperzoo numbers only")
    base = results.get("TRL DPOTrainer", {}).get("tokens_per_s")
    print(f"device {device()}, {STEPS} steps of {BATCH} pairs, tiny GPT-2 (2 layers, 64 wide)")
    for name, r in results.items():
        memory = f", peak {r['peak_mb']:.0f} MiB" if r["peak_mb"] is not None else ""
        ratio = f"  ratio vs TRL {r['tokens_per_s'] / base:5.2f}x" if base else ""
        print(f"  {name:34s} {r['tokens_per_s']:9.0f} tokens/s{ratio}{memory}")
    if base:
        ours_first, trl_first = results["paperzoo (reference on the fly)"]["first"], results["TRL DPOTrainer"]["first"]
        for key in ("loss", "logps/chosen", "logps/rejected"):
            print(f"  first step {key:15s} paperzoo {ours_first[key]:.5f}  TRL {trl_first.get(key, float('nan')):.5f}")


if __name__ == "__main__":
    main()
