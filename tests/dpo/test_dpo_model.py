"""TinyGPT (the offline causal LM), the character tokenizer, sampling and the reward model."""

import pytest
import torch
from dpo_helpers import uncached_sample

from paperzoo.dpo.generation import sample, token_kl
from paperzoo.dpo.methods import RewardModel
from paperzoo.dpo.model import CharTokenizer, TinyGPT, TinyGPTConfig


def tiny(seed=0, **kw):
    torch.manual_seed(seed)
    return TinyGPT(TinyGPTConfig(**{"vocab_size": 99, "context": 16, "hidden_size": 16, "layers": 2, "heads": 2,
                                    **kw}))


def test_forward_shapes_and_every_parameter_gets_a_gradient():
    model = tiny()
    ids = torch.randint(0, 99, (3, 10))
    out = model(ids, attention_mask=torch.ones_like(ids), output_hidden_states=True)
    assert out.logits.shape == (3, 10, 99) and len(out.hidden_states) == 3
    assert out.hidden_states[-1].shape == (3, 10, 16)
    out.logits.logsumexp(-1).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_causal_and_padding_invariant():
    model = tiny().eval()
    ids = torch.randint(3, 99, (1, 8))
    changed = ids.clone()
    changed[0, 5:] = 7  # the future changes
    a, b = model(ids).logits, model(changed).logits
    torch.testing.assert_close(a[:, :5], b[:, :5])
    # right padding hidden by the attention mask leaves the logits of the real tokens unchanged
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], 1)
    mask = torch.cat([torch.ones(1, 8), torch.zeros(1, 4)], 1).long()
    torch.testing.assert_close(model(padded, attention_mask=mask).logits[:, :8], a)


def test_left_padding_is_masked():
    model = tiny().eval()
    ids = torch.randint(3, 99, (1, 6))
    pad_a = torch.cat([torch.zeros(1, 2, dtype=torch.long), ids], 1)
    pad_b = torch.cat([torch.full((1, 2), 50), ids], 1)  # other tokens in the padded slots
    mask = torch.cat([torch.zeros(1, 2), torch.ones(1, 6)], 1).long()
    torch.testing.assert_close(model(pad_a, attention_mask=mask).logits[:, 2:],
                               model(pad_b, attention_mask=mask).logits[:, 2:])


def test_too_long_sequence_is_a_clear_error():
    with pytest.raises(ValueError, match="longer than the model's context 16"):
        tiny()(torch.zeros(1, 17, dtype=torch.long))


def test_char_tokenizer_round_trip_and_specials():
    tok = CharTokenizer()
    text = "Hello, World! 42\n~"
    assert tok.decode(tok.encode(text)) == text
    assert tok.encode("a", add_special_tokens=True)[0] == tok.bos_token_id
    assert tok.decode(tok.encode("é")) == "?"
    assert tok.vocab_size == 3 + 96
    assert tok.decode([tok.bos_token_id, *tok.encode("x"), tok.eos_token_id], skip_special_tokens=False) \
        == "<bos>x<eos>"


def test_sample_stops_after_eos_and_masks_the_rest():
    class Scripted(torch.nn.Module):  # emits token 5, then EOS (2), then 6 forever
        def forward(self, input_ids, attention_mask=None):
            t = input_ids.shape[1]
            nxt = 5 if t == 2 else (2 if t == 3 else 6)
            logits = torch.full((*input_ids.shape, 10), -1e9)
            logits[:, -1, nxt] = 0
            return type("Out", (), {"logits": logits})()

    ids, attention, completion = sample(Scripted(), torch.tensor([[1, 4]]), 4, eos_token_id=2, pad_token_id=0)
    assert ids.tolist() == [[1, 4, 5, 2, 0, 0]]
    assert attention.tolist() == [[1, 1, 1, 1, 0, 0]] and completion.tolist() == [[0, 0, 1, 1, 0, 0]]


def left_padded_prompts():
    ids = torch.randint(3, 99, (3, 5))
    mask = torch.ones_like(ids)
    ids[0, :2], mask[0, :2] = 0, 0  # the first prompt is 3 tokens, left-padded
    return ids, mask


def test_cached_forward_equals_one_forward_over_the_whole_sequence():
    model = tiny().eval()
    ids, mask = left_padded_prompts()
    ids, mask = torch.cat([ids, torch.randint(3, 99, (3, 4))], 1), torch.cat([mask, torch.ones(3, 4).long()], 1)
    whole = model(ids, attention_mask=mask).logits  # (3, 9, V)
    first = model(ids[:, :5], attention_mask=mask[:, :5], use_cache=True)
    cache, steps = first.past_key_values, [first.logits]
    for t in range(5, 9):
        out = model(ids[:, t:t + 1], attention_mask=mask[:, :t + 1], past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        steps.append(out.logits)
    assert cache[0][0].shape == (3, 2, 9, 8)  # (B, H, T, Dh) of every position
    torch.testing.assert_close(torch.cat(steps, 1), whole)
    with pytest.raises(ValueError, match="17 tokens is longer than the model's context 16"):
        model(torch.zeros(3, 8, dtype=torch.long), past_key_values=cache)


def test_sample_with_the_cache_draws_the_tokens_of_the_uncached_loop():
    model = tiny().eval()
    read = []  # the number of positions each forward reads
    model.register_forward_hook(lambda module, args, out: read.append(args[0].shape[1]))
    prompts, mask = left_padded_prompts()
    ids, _, _ = sample(model, prompts, 8, prompt_mask=mask, generator=torch.Generator().manual_seed(3))
    assert read == [5] + [1] * 7  # the prompt once, then one new token per step
    assert torch.equal(ids, uncached_sample(model, prompts, mask, 8, seed=3))


def test_a_model_that_returns_no_cache_rereads_the_sequence():
    class NoCache(torch.nn.Module):  # takes past_key_values but never returns one (HF under gradient checkpointing)
        def __init__(self):
            super().__init__()
            self.lm = tiny().eval()

        def forward(self, input_ids, attention_mask=None, past_key_values=None, use_cache=False):
            assert past_key_values is None
            return self.lm(input_ids, attention_mask=attention_mask)

    model = NoCache()
    prompts, mask = left_padded_prompts()
    ids, _, _ = sample(model, prompts, 6, prompt_mask=mask, generator=torch.Generator().manual_seed(4))
    assert torch.equal(ids, uncached_sample(model.lm, prompts, mask, 6, seed=4))


def test_token_kl_is_zero_for_the_same_model_and_positive_otherwise():
    a, b = tiny(0).eval(), tiny(1).eval()
    ids, attention, completion = sample(a, torch.randint(3, 99, (4, 4)), 6,
                                        generator=torch.Generator().manual_seed(0))
    logits = a(ids).logits
    assert token_kl(logits, logits, completion).abs().max() < 1e-6
    assert (token_kl(logits, b(ids).logits, completion) > 0).all()


def test_reward_model_reads_the_last_real_token():
    torch.manual_seed(0)
    rm = RewardModel(tiny(), 16)
    torch.nn.init.normal_(rm.head.weight)
    ids = torch.randint(3, 99, (1, 5))
    right = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], 1)
    mask = torch.cat([torch.ones(1, 5), torch.zeros(1, 3)], 1).long()
    torch.testing.assert_close(rm(right, mask), rm(ids, torch.ones_like(ids)))
    assert rm(ids, torch.ones_like(ids)).shape == (1,)
