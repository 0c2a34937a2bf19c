"""Preference rows, tokenization (BOS/EOS once, truncation, masks) and clear errors on bad input."""

import json

import pytest
import torch

from paperzoo.dpo.data import PreferencePairs, encode_pair_side, read_preferences, trim
from paperzoo.dpo.logprobs import check_same_vocabulary, pair_logps
from paperzoo.dpo.model import CharTokenizer, TinyGPT, TinyGPTConfig
from paperzoo.errors import ConfigError, DataError

TOK = CharTokenizer()
BOS, EOS, PAD = TOK.bos_token_id, TOK.eos_token_id, TOK.pad_token_id


def ids(text):
    return TOK.encode(text)


def test_bos_and_eos_are_added_once():
    seq, n_prompt = encode_pair_side(TOK, "ab", "xy", max_length=16, max_prompt_length=8, where="row 1")
    assert seq == [BOS, *ids("ab"), *ids("xy"), EOS] and n_prompt == 3
    # a prompt that already starts with BOS (or a completion that already ends with EOS) gets no second one
    class Already(CharTokenizer):
        def encode(self, text, add_special_tokens=False):
            return {"P": [BOS, 10], "C": [11, EOS]}[text]
    seq, n_prompt = encode_pair_side(Already(), "P", "C", 16, 8, "row 1")
    assert seq == [BOS, 10, 11, EOS] and n_prompt == 2


def test_truncation_keeps_the_prompt_end_and_never_empties_the_completion():
    seq, n_prompt = encode_pair_side(TOK, "abcdefgh", "uvwxyz", max_length=7, max_prompt_length=4, where="row 1")
    assert seq[:n_prompt] == [BOS, *ids("fgh")]  # BOS kept, the end of the prompt kept
    assert seq[n_prompt:] == ids("uvw") and len(seq) == 7  # the completion fills the room left


def test_pairs_tensors_and_masks():
    rows = [{"prompt": "hi", "chosen": "yes", "rejected": "no"}, {"prompt": "x", "chosen": "a", "rejected": "bcd"}]
    pairs = PreferencePairs.from_rows(rows, TOK, max_length=16, max_prompt_length=8)
    t = pairs.tensors
    assert t["input_ids"].shape == (2, 2, 7)  # the longest side: BOS h i y e s EOS
    torch.testing.assert_close(t["input_ids"][0, 0], torch.tensor([BOS, *ids("hiyes"), EOS]))
    torch.testing.assert_close(t["completion_mask"][0, 0], torch.tensor([0, 0, 0, 1, 1, 1, 1]))
    torch.testing.assert_close(t["input_ids"][0, 1], torch.tensor([BOS, *ids("hino"), EOS, PAD]))
    torch.testing.assert_close(t["attention_mask"][0, 1], torch.tensor([1, 1, 1, 1, 1, 1, 0]))
    torch.testing.assert_close(t["completion_mask"][1, 1], torch.tensor([0, 0, 1, 1, 1, 1, 0]))
    batch = trim(pairs[slice(1, 2)])  # row 1 alone uses 6 columns
    assert batch["input_ids"].shape == (1, 2, 6)


def test_pair_logps_are_independent_of_padding():
    torch.manual_seed(0)
    model = TinyGPT(TinyGPTConfig(vocab_size=TOK.vocab_size, context=32, hidden_size=16, layers=1, heads=2)).eval()
    short = [{"prompt": "hi", "chosen": "yes", "rejected": "no"}]
    padded = PreferencePairs.from_rows(short + [{"prompt": "a long prompt", "chosen": "z", "rejected": "a long one"}],
                                       TOK, max_length=32, max_prompt_length=16)
    alone = PreferencePairs.from_rows(short, TOK, max_length=32, max_prompt_length=16)
    with torch.no_grad():
        a = pair_logps(model, padded[slice(0, 1)])
        b = pair_logps(model, alone[slice(0, 1)])
        logits = model(alone.tensors["input_ids"][0, :1]).logits
    torch.testing.assert_close(a, b)
    # by hand: log p(y, e, s, EOS | BOS h i)
    logp = torch.log_softmax(logits[0], -1)
    seq = alone.tensors["input_ids"][0, 0]
    expected = sum(logp[t - 1, seq[t]] for t in range(3, 7))
    torch.testing.assert_close(b[0][0], expected)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_read_preferences_names_the_row_and_the_missing_field(tmp_path):
    good = {"prompt": "p", "chosen": "c", "rejected": "r", "extra": 1}
    rows = read_preferences(write_jsonl(tmp_path / "ok.jsonl", [good, good]))
    assert len(rows) == 2
    bad = write_jsonl(tmp_path / "bad.jsonl", [good, {"prompt": "p", "chosen": "c"}])
    with pytest.raises(DataError, match=r"bad.jsonl:2: missing field 'rejected'"):
        read_preferences(bad)
    with pytest.raises(DataError, match=r"bad2.jsonl:1: field 'chosen' must be a string"):
        read_preferences(write_jsonl(tmp_path / "bad2.jsonl", [{**good, "chosen": 3}]))
    (tmp_path / "broken.jsonl").write_text('{"prompt": \n')
    with pytest.raises(DataError, match="broken.jsonl:1: not valid JSON"):
        read_preferences(tmp_path / "broken.jsonl")
    with pytest.raises(DataError, match="does not exist"):
        read_preferences(tmp_path / "missing.jsonl")


def test_read_preferences_refuses_unreadable_files(tmp_path):
    good = {"prompt": "p", "chosen": "c", "rejected": "r"}
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(json.dumps(good).encode() + b'\n{"prompt": "caf\xe9", "chosen": "c", "rejected": "r"}\n')
    with pytest.raises(DataError, match=r"latin1\.jsonl:2: not UTF-8 text \(byte 63: invalid continuation byte\); "
                                        "save the file as UTF-8"):
        read_preferences(latin1)
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(DataError, match=r"preference file .*empty\.jsonl holds no rows; write one JSON object per"):
        read_preferences(tmp_path / "empty.jsonl")
    with pytest.raises(DataError, match=r"preference file .* is a folder; pass the JSONL file itself"):
        read_preferences(tmp_path)
    separator = write_jsonl(tmp_path / "u2028.jsonl", [{**good, "chosen": "line\u2028break"}])
    separator.write_text(separator.read_text().replace("\\u2028", "\u2028"))  # raw U+2028 is valid in JSON
    assert read_preferences(separator)[0]["chosen"] == "line\u2028break"


def test_empty_completion_is_an_error_naming_the_row():
    rows = [{"prompt": "p", "chosen": "c", "rejected": "r"}, {"prompt": "p", "chosen": "c", "rejected": ""}]
    with pytest.raises(DataError, match=r"row 2 \('rejected'\): the completion is empty"):
        PreferencePairs.from_rows(rows, TOK, 16, 8)


def test_lengths_that_would_empty_a_completion_are_rejected():
    with pytest.raises(ConfigError, match="max_prompt_length < max_length"):
        PreferencePairs.from_rows([{"prompt": "p", "chosen": "c", "rejected": "r"}], TOK, 8, 8)


def test_tokenizer_without_pad_token_is_rejected():
    class NoPad(CharTokenizer):
        pad_token_id = None
    with pytest.raises(ConfigError, match="no pad token.*tokenizer.pad_token = tokenizer.eos_token"):
        PreferencePairs.from_rows([{"prompt": "p", "chosen": "c", "rejected": "r"}], NoPad(), 16, 8)


def test_reference_with_another_vocabulary_is_rejected():
    policy = TinyGPT(TinyGPTConfig(vocab_size=99, context=8, hidden_size=8, layers=1, heads=2))
    reference = TinyGPT(TinyGPTConfig(vocab_size=120, context=8, hidden_size=8, layers=1, heads=2))
    with pytest.raises(ConfigError, match="reference model has a vocabulary of 120 tokens but the policy has 99"):
        check_same_vocabulary(policy, reference)
