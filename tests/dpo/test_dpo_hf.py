"""The same pipeline with a Hugging Face causal LM and tokenizer built locally (nothing downloads): a 2-layer GPT-2
from a `GPT2Config` and a character-level fast tokenizer from a `tokenizers` word-level model. `make test` installs
the `hf` extra, so these run there; elsewhere they are skipped without `transformers`."""

import json
import re
import string
from pathlib import Path

import pytest
import torch
from dpo_helpers import uncached_sample

from paperzoo import config
from paperzoo.dpo.cli import TRAIN_METHODS, load_lm
from paperzoo.dpo.data import PreferencePairs, Sequences
from paperzoo.dpo.generation import sample
from paperzoo.dpo.logprobs import pair_logps
from paperzoo.dpo.methods import SFT, RewardModel, pair_rewards
from paperzoo.dpo.model import TinyGPTConfig
from paperzoo.engine.trainer import Trainer
from paperzoo.errors import ConfigError

try:
    import tokenizers
    import transformers
except ImportError:
    transformers = None
needs_hf = pytest.mark.skipif(transformers is None, reason="transformers (the `hf` extra) is not installed")


def char_tokenizer(pad=True):
    """A character-level fast tokenizer with <pad>, <bos>, <eos>, built in memory."""
    vocab = {"<pad>": 0, "<bos>": 1, "<eos>": 2, **{c: i + 3 for i, c in enumerate(string.ascii_lowercase + " ")}}
    core = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<pad>"))
    core.pre_tokenizer = tokenizers.pre_tokenizers.Split("", "isolated")
    specials = {"bos_token": "<bos>", "eos_token": "<eos>", **({"pad_token": "<pad>"} if pad else {})}
    return transformers.PreTrainedTokenizerFast(tokenizer_object=core, **specials)


def gpt2(seed=0):
    """GPT-2 at 2 layers x 32 wide, dropout off (as TRL trains), so runs and hand computations are exact."""
    torch.manual_seed(seed)
    config = transformers.GPT2Config(vocab_size=30, n_positions=32, n_embd=32, n_layer=2, n_head=2,
                                     bos_token_id=1, eos_token_id=2, pad_token_id=0,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return transformers.GPT2LMHeadModel(config).eval()


ROWS = [{"prompt": "ab", "chosen": "aaa", "rejected": "bbb"}, {"prompt": "c", "chosen": "aa", "rejected": "b b"}]


def test_make_test_installs_the_hf_extra():
    """`make test` runs the tests below instead of skipping them: its setup-dev step installs the `hf` extra."""
    makefile = (Path(__file__).parents[2] / "Makefile").read_text()
    recipe = makefile.split("$(VENV)/.installed-dev:")[1].split("\n\n")[0]
    assert "hf" in re.search(r"pip install .*-e '\.\[([^\]]*)\]'", recipe).group(1).split(",")


@needs_hf
def test_tokenization_with_an_hf_tokenizer():
    tok = char_tokenizer()
    pairs = PreferencePairs.from_rows(ROWS, tok, max_length=16, max_prompt_length=8)
    a, b, eos = (tok.convert_tokens_to_ids(c) for c in ("a", "b", "<eos>"))
    assert pairs.tensors["input_ids"][0, 0, :7].tolist() == [1, a, b, a, a, a, eos]
    assert pairs.tensors["completion_mask"][0, 0, :7].tolist() == [0, 0, 0, 1, 1, 1, 1]
    with pytest.raises(ConfigError, match="no pad token"):
        PreferencePairs.from_rows(ROWS, char_tokenizer(pad=False), 16, 8)


@needs_hf
def test_pair_logps_match_a_manual_computation():
    model, tok = gpt2(), char_tokenizer()
    pairs = PreferencePairs.from_rows(ROWS, tok, max_length=16, max_prompt_length=8)
    with torch.no_grad():
        _, rejected = pair_logps(model, pairs[:])
        seq = pairs.tensors["input_ids"][1, 1]  # <bos> c b ' ' b <eos> (+ padding)
        logp = torch.log_softmax(model(seq[None, :6]).logits[0], -1)
    torch.testing.assert_close(rejected[1], sum(logp[t - 1, seq[t]] for t in range(2, 6)))


@needs_hf
def test_sft_loss_is_the_hf_models_own_loss_on_the_completion():
    """SFT's NLL equals what `transformers` computes from labels with the prompt and padding set to -100."""
    model, tok = gpt2(), char_tokenizer()
    pairs = PreferencePairs.from_rows(ROWS, tok, max_length=16, max_prompt_length=8)
    data = Sequences(*(pairs.tensors[k][:, 0] for k in ("input_ids", "attention_mask", "completion_mask")))
    batch = data[:]
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    with torch.no_grad():
        theirs = model(batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels).loss
        ours = SFT.nll(model, batch)
    torch.testing.assert_close(ours, theirs)


@needs_hf
def test_reward_model_reads_the_last_real_token():
    backbone, tok = gpt2(), char_tokenizer()
    pairs = PreferencePairs.from_rows(ROWS, tok, max_length=16, max_prompt_length=8)
    model = RewardModel(backbone, 32)
    torch.nn.init.normal_(model.head.weight)
    with torch.no_grad():
        chosen, rejected = pair_rewards(model, pairs[:])
        ids = pairs.tensors["input_ids"][1, 1]  # <bos> c b ' ' b <eos>: the last real token is at 5
        hidden = backbone.transformer(ids[None, :6]).last_hidden_state[0, 5]
        expected = model.head(hidden)
    torch.testing.assert_close(rejected[1:], expected)
    assert chosen.shape == rejected.shape == (2,)


@needs_hf
def test_sampling_reads_the_hf_models_cache_and_draws_the_uncached_tokens():
    model = gpt2()
    prompts = torch.randint(3, 30, (3, 5))
    mask = torch.ones_like(prompts)
    prompts[0, :2], mask[0, :2] = 0, 0  # left padding
    ids, _, _ = sample(model, prompts, 8, prompt_mask=mask, generator=torch.Generator().manual_seed(1))
    assert torch.equal(ids, uncached_sample(model, prompts, mask, 8, seed=1))


def train(name, overrides, out):
    """What `paperzoo train NAME OVERRIDES --out OUT` does; returns (checkpoint, history)."""
    spec = TRAIN_METHODS[name]
    cfg = config.apply_overrides(spec.config(), overrides)
    result = Trainer(spec.build(cfg), cfg.train, out_dir=out, run_config={"method": name, **config.to_dict(cfg)}).fit()
    return out / "checkpoints" / "last.safetensors", result.history


@needs_hf
def test_sft_reward_model_and_dpo_on_a_local_hf_folder(tmp_path):
    """`paperzoo train dpo_sft|dpo_reward|dpo model=<folder> data=<jsonl>`: each step lowers its loss."""
    gpt2().save_pretrained(tmp_path / "hf")
    char_tokenizer().save_pretrained(tmp_path / "hf")
    rows = [{"prompt": p, "chosen": p[0] * 3, "rejected": "zzz"} for p in ("ab", "cd", "ef", "gh")] * 8
    data = tmp_path / "prefs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = [f"data={data}", "max_length=16", "max_prompt_length=8", "train.steps=8", "train.batch_size=8",
              "train.lr=1e-2", "train.warmup_steps=0", "train.log_every=2", "train.progress=false",
              "train.device=cpu"]
    sft, history = train("dpo_sft", common + [f"model={tmp_path / 'hf'}"], tmp_path / "sft")
    _, loss = history.series("train", "loss")
    assert loss[-1] < 0.8 * loss[0]
    _, history = train("dpo_reward", common + [f"model={sft}"], tmp_path / "rm")
    _, loss = history.series("train", "loss")
    assert loss[-1] < 0.5 * loss[0] and history.series("train", "accuracy")[1][-1] == 1.0
    _, history = train("dpo", common + [f"model={sft}"], tmp_path / "dpo")
    _, loss = history.series("train", "loss")
    _, margins = history.series("train", "rewards/margins")
    assert loss[-1] < 0.8 * loss[0] and margins[-1] > margins[0] > 0


@needs_hf
def test_load_a_local_hf_folder(tmp_path):
    gpt2().save_pretrained(tmp_path)
    char_tokenizer().save_pretrained(tmp_path)
    model, tok = load_lm(str(tmp_path), TinyGPTConfig())
    assert isinstance(model, transformers.GPT2LMHeadModel) and tok.pad_token_id == 0


@needs_hf
@pytest.mark.parametrize("missing", ["model.safetensors", "tokenizer.json"])
def test_a_hf_folder_without_weights_or_tokenizer_is_one_line_error(tmp_path, capsys, missing):
    """`paperzoo train dpo_sft model=<folder>` where the folder lacks its weights or its tokenizer: exit status 2 and
    one line naming the folder and the missing file, no traceback (transformers raises an OSError or ValueError)."""
    from paperzoo.cli import EXIT_USER_ERROR, main

    folder = tmp_path / "hf"
    gpt2().save_pretrained(folder)
    char_tokenizer().save_pretrained(folder)
    (folder / missing).unlink()
    capsys.readouterr()  # what saving printed
    code = main(["train", "dpo_sft", f"model={folder}", "train.steps=1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR and "Traceback" not in err, err
    assert err.startswith(f"paperzoo: error: cannot load the Hugging Face model folder {folder}: ") and \
        err.count("\n") == 1, err
    assert not (tmp_path / "run" / "checkpoints").exists()
