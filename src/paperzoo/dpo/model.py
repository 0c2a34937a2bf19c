"""paperzoo's own tiny causal language model and a character tokenizer, shaped like their Hugging Face twins.

The DPO trainer only assumes `model(input_ids, attention_mask=...).logits` (and, for a reward model,
`output_hidden_states=True` giving `.hidden_states[-1]`; sampling also uses `past_key_values` and `use_cache`
where the model takes them), and a tokenizer with `encode(text,
add_special_tokens=False)`, `decode(ids)`, `pad_token_id`, `bos_token_id`, `eos_token_id`. `TinyGPT` and
`CharTokenizer` provide exactly that, so the offline claims and any `transformers` causal LM go through the same
code. The architecture is GPT-2's (Radford et al. 2019): pre-LayerNorm blocks, learned positions, tied embeddings.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo.config import at_least, require_divisor


@dataclass
class TinyGPTConfig:
    vocab_size: int = 100
    context: int = 64
    hidden_size: int = 96
    layers: int = 2
    heads: int = 4

    def check(self, prefix: str) -> None:
        at_least(self, prefix, 1, "vocab_size", "context", "hidden_size", "layers")
        require_divisor(self.heads, prefix + "heads", self.hidden_size, f"{prefix}hidden_size={self.hidden_size}")


KeyValues = tuple[tuple[torch.Tensor, torch.Tensor], ...]  # per block: keys and values, each (B, H, T, Dh)


@dataclass
class CausalLMOutput:
    logits: torch.Tensor  # (B, T, V)
    hidden_states: tuple[torch.Tensor, ...] | None = None  # each (B, T, D); the last is after the final norm
    past_key_values: KeyValues | None = None  # with use_cache=True: every position's keys and values so far


class Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (B, T, D) of the new positions, `allowed` (B or 1, 1, T, P + T) over the P cached and the new keys;
        returns the block's output and the keys and values of all P + T positions."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).unbind(2)  # 3 x (B, T, H, Dh)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # (B, H, T, Dh)
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)  # (B, H, P + T, Dh)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)  # (B, H, T, Dh)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))  # (B, T, D)
        return x + self.mlp(self.norm2(x)), (k, v)


class TinyGPT(nn.Module):
    def __init__(self, config: TinyGPTConfig):
        super().__init__()
        if config.hidden_size % config.heads:
            raise ValueError(f"hidden_size {config.hidden_size} is not divisible by heads {config.heads}")
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.pos = nn.Embedding(config.context, config.hidden_size)
        self.blocks = nn.ModuleList(Block(config.hidden_size, config.heads) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.hidden_size)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                output_hidden_states: bool = False, past_key_values: KeyValues | None = None,
                use_cache: bool = False) -> CausalLMOutput:
        """Logits of `input_ids` (B, T). With `past_key_values` (from a call with use_cache=True) the ids are the
        T positions after the P cached ones and `attention_mask`, when given, covers all P + T, as in Hugging Face
        models; the logits then equal those of one call on the whole sequence."""
        b, t = input_ids.shape
        p = past_key_values[0][0].shape[2] if past_key_values else 0
        if p + t > self.config.context:
            raise ValueError(f"sequence of {p + t} tokens is longer than the model's context {self.config.context}")
        device = input_ids.device
        position = torch.arange(p, p + t, device=device)  # (T,)
        keys = torch.arange(p + t, device=device)  # (P + T,)
        causal = keys[None, :] <= position[:, None]  # (T, P + T)
        allowed = causal[None]  # (1, T, P + T)
        if attention_mask is not None:  # padding keys are hidden; a token always sees itself (no empty rows)
            itself = keys[None, :] == position[:, None]  # (T, P + T)
            allowed = causal & (attention_mask.bool()[:, None, :] | itself)  # (B, T, P + T)
        allowed = allowed[:, None]  # (B or 1, 1, T, P + T)
        x = self.embed(input_ids) + self.pos(position)  # (B, T, D)
        hidden, cache = [x], []
        for i, block in enumerate(self.blocks):
            x, key_values = block(x, allowed, past_key_values[i] if past_key_values else None)
            hidden.append(x)
            cache.append(key_values)
        x = self.norm(x)
        hidden[-1] = x
        logits = x @ self.embed.weight.T  # (B, T, V), tied embeddings
        return CausalLMOutput(logits, tuple(hidden) if output_hidden_states else None,
                              tuple(cache) if use_cache else None)


class CharTokenizer:
    """Printable ASCII characters plus newline, and three special tokens: pad 0, bos 1, eos 2.

    A fixed alphabet (not learned from a corpus) so a checkpoint needs no tokenizer file. Other characters
    become '?'; whitespace runs are kept as they are.
    """

    specials = ("<pad>", "<bos>", "<eos>")
    pad_token_id, bos_token_id, eos_token_id = 0, 1, 2

    def __init__(self):
        self.alphabet = string.printable[:95] + "\n"  # digits, letters, punctuation, space; then newline
        self.index = {c: i + len(self.specials) for i, c in enumerate(self.alphabet)}
        self.unknown = self.index["?"]
        self.vocab_size = len(self.specials) + len(self.alphabet)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        ids = [self.index.get(c, self.unknown) for c in text]
        return [self.bos_token_id, *ids] if add_special_tokens else ids

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        out = []
        for i in (ids.tolist() if torch.is_tensor(ids) else ids):
            if i < len(self.specials):
                if not skip_special_tokens:
                    out.append(self.specials[i])
                continue
            out.append(self.alphabet[i - len(self.specials)])
        return "".join(out)
