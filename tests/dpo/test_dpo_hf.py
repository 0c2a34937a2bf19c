"""The same pipeline with a Hugging Face causal LM and tokenizer built locally (nothing downloads).
Skipped when `transformers` is not installed (pip install 'paperzoo[hf]')."""

import copy
import string

import pytest
import torch

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from paperzoo.dpo.cli import load_lm  # noqa: E402
from paperzoo.dpo.data import PreferencePairs  # noqa: E402
from paperzoo.dpo.logprobs import pair_logps  # noqa: E402
from paperzoo.dpo.methods import DPO, RewardModel, pair_rewards  # noqa: E402
from paperzoo.dpo.model import TinyGPTConfig  # noqa: E402
from paperzoo.engine.trainer import TrainConfig, Trainer  # noqa: E402
from paperzoo.errors import ConfigError  # noqa: E402


def char_tokenizer(pad=True):
    """A character-level fast tokenizer with <pad>, <bos>, <eos>, built in memory."""
    vocab = {"<pad>": 0, "<bos>": 1, "<eos>": 2, **{c: i + 3 for i, c in enumerate(string.ascii_lowercase + " ")}}
    core = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<pad>"))
    core.pre_tokenizer = tokenizers.pre_tokenizers.Split("", "isolated")
    specials = {"bos_token": "<bos>", "eos_token": "<eos>", **({"pad_token": "<pad>"} if pad else {})}
    return transformers.PreTrainedTokenizerFast(tokenizer_object=core, **specials)


def gpt2(seed=0):
    torch.manual_seed(seed)
    config = transformers.GPT2Config(vocab_size=30, n_positions=32, n_embd=32, n_layer=2, n_head=2,
                                     bos_token_id=1, eos_token_id=2, pad_token_id=0)
    return transformers.GPT2LMHeadModel(config).eval()


ROWS = [{"prompt": "ab", "chosen": "aaa", "rejected": "bbb"}, {"prompt": "c", "chosen": "aa", "rejected": "b b"}]


def test_tokenization_with_an_hf_tokenizer():
    tok = char_tokenizer()
    pairs = PreferencePairs.from_rows(ROWS, tok, max_length=16, max_prompt_length=8)
    a, b, eos = (tok.convert_tokens_to_ids(c) for c in ("a", "b", "<eos>"))
    assert pairs.tensors["input_ids"][0, 0, :7].tolist() == [1, a, b, a, a, a, eos]
    assert pairs.tensors["completion_mask"][0, 0, :7].tolist() == [0, 0, 0, 1, 1, 1, 1]
    with pytest.raises(ConfigError, match="no pad token"):
        PreferencePairs.from_rows(ROWS, char_tokenizer(pad=False), 16, 8)


def test_pair_logps_match_a_manual_computation():
    model, tok = gpt2(), char_tokenizer()
    pairs = PreferencePairs.from_rows(ROWS, tok, max_length=16, max_prompt_length=8)
    with torch.no_grad():
        chosen, rejected = pair_logps(model, pairs[:])
        seq = pairs.tensors["input_ids"][1, 1]  # <bos> c b ' ' b <eos> (+ padding)
        logp = torch.log_softmax(model(seq[None, :6]).logits[0], -1)
    torch.testing.assert_close(rejected[1], sum(logp[t - 1, seq[t]] for t in range(2, 6)))


def test_dpo_trains_an_hf_model_and_reward_model_reads_hidden_states():
    model, tok = gpt2(), char_tokenizer()
    pairs = PreferencePairs.from_rows(ROWS * 16, tok, max_length=16, max_prompt_length=8)
    method = DPO(lambda: copy.deepcopy(model), copy.deepcopy(model), pairs, beta=0.1)
    cfg = TrainConfig(steps=12, batch_size=8, lr=3e-3, log_every=4, device="cpu", progress=False)
    history = Trainer(method, cfg).fit().history
    _, margins = history.series("train", "rewards/margins")
    assert margins[-1] > margins[0]
    chosen, rejected = pair_rewards(RewardModel(gpt2(), 32), pairs[:2])
    assert chosen.shape == rejected.shape == (2,)


def test_load_a_local_hf_folder(tmp_path):
    gpt2().save_pretrained(tmp_path)
    char_tokenizer().save_pretrained(tmp_path)
    model, tok = load_lm(str(tmp_path), TinyGPTConfig())
    assert isinstance(model, transformers.GPT2LMHeadModel) and tok.pad_token_id == 0
