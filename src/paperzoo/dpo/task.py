"""The offline controlled-generation task behind the frontier claims (a small stand-in for DPO's IMDb task).

The DPO paper (Section 6.1) fine-tunes GPT-2 to write positive movie reviews, with a sentiment classifier as the
known reward. Here a tiny character-level GPT is pretrained on real English text (`paperzoo.data.text`), prompts
are 16-character windows of that text starting at a word, completions are 16 sampled characters, and the known
reward is a style score: **the number of vowels (a, e, i, o, u, either case) in the completion** (0 to 16). It is
dense, cannot be read off the prompt, and pulls the model away from its pretraining distribution, which is what a
reward/KL frontier needs. Preference pairs are two completions sampled from the SFT model for one prompt, ordered
by a Bradley-Terry draw: p(y1 preferred) = sigmoid(r(y1) - r(y2)) (Rafailov et al. Eq. 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from paperzoo.data.text import english_text
from paperzoo.dpo.data import PreferencePairs, Sequences
from paperzoo.dpo.generation import sample, token_kl
from paperzoo.dpo.logprobs import model_device
from paperzoo.dpo.model import CharTokenizer

VOWELS = "aeiouAEIOU"


def vowel_reward(text: str) -> float:
    """The known reward of a completion's text."""
    return float(sum(c in VOWELS for c in text))


@dataclass
class StyleTask:
    tokenizer: CharTokenizer
    train_ids: torch.Tensor  # (N,) the first 90% of the corpus
    test_ids: torch.Tensor  # (M,) the last 10%: held-out prompts
    source: str
    prompt_len: int = 16
    completion_len: int = 16

    @classmethod
    def load(cls) -> "StyleTask":
        text, source = english_text()
        text = re.sub(r"\s+", " ", text)  # one space for any run of whitespace
        tokenizer = CharTokenizer()
        ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
        cut = int(0.9 * len(ids))
        return cls(tokenizer, ids[:cut], ids[cut:], source)

    def reward(self, ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
        """(B,) vowel counts of the completion tokens of (B, T) sequences: `vowel_reward` on token ids."""
        vowel_ids = torch.tensor([self.tokenizer.index[c] for c in VOWELS], device=ids.device)
        return (torch.isin(ids, vowel_ids) & completion_mask.bool()).sum(-1).float()

    def windows(self, n: int, length: int, generator: torch.Generator) -> Sequences:
        """n random training windows of `length` characters; every token but the first is scored (SFT)."""
        start = torch.randint(0, len(self.train_ids) - length, (n,), generator=generator)
        ids = self.train_ids[start[:, None] + torch.arange(length)]  # (n, length)
        scored = torch.ones_like(ids)
        scored[:, 0] = 0
        return Sequences(ids, torch.ones_like(ids), scored)

    def prompts(self, n: int, split: str, generator: torch.Generator) -> torch.Tensor:
        """(n, prompt_len) windows of the train or test text that start right after a space."""
        source = self.train_ids if split == "train" else self.test_ids
        space = self.tokenizer.index[" "]
        starts = torch.nonzero(source[:-self.prompt_len - 1] == space).squeeze(1) + 1
        pick = starts[torch.randint(0, len(starts), (n,), generator=generator)]
        return source[pick[:, None] + torch.arange(self.prompt_len)]  # (n, prompt_len)

    @torch.no_grad()
    def preference_pairs(self, reference: nn.Module, prompts: torch.Tensor, seed: int,
                         batch_size: int = 256) -> tuple[PreferencePairs, torch.Tensor]:
        """Pairs of completions sampled from `reference`, ordered by Bradley-Terry draws on the known reward;
        also the true rewards (N, 2) of [chosen, rejected]. Built on the reference's device, returned on the CPU."""
        device = model_device(reference)
        generator = torch.Generator(device).manual_seed(seed)
        sides, rewards = [], []
        for start in range(0, len(prompts), batch_size):
            p = prompts[start:start + batch_size].to(device).repeat_interleave(2, dim=0)  # (2b, P): 2 per prompt
            ids, _, completion = sample(reference, p, self.completion_len, generator=generator)
            ids, completion = ids.view(-1, 2, ids.shape[1]), completion.view(-1, 2, ids.shape[1])  # (b, 2, T)
            r = self.reward(ids.flatten(0, 1), completion.flatten(0, 1)).view(-1, 2)  # (b, 2)
            first_wins = torch.rand(len(r), generator=generator, device=device) < torch.sigmoid(r[:, 0] - r[:, 1])
            order = torch.stack([(~first_wins).long(), first_wins.long()], dim=1)  # (b, 2): [chosen, rejected]
            sides.append((ids.gather(1, order[..., None].expand_as(ids)).cpu(),
                          completion.gather(1, order[..., None].expand_as(ids)).cpu()))
            rewards.append(r.gather(1, order).cpu())
        ids = torch.cat([s[0] for s in sides])
        completion = torch.cat([s[1] for s in sides])
        return PreferencePairs(ids, torch.ones_like(ids), completion), torch.cat(rewards)

    @torch.no_grad()
    def evaluate(self, policy: nn.Module, reference: nn.Module, prompts: torch.Tensor, seed: int,
                 batch_size: int = 256) -> dict[str, float]:
        """Mean true reward of completions sampled from `policy`, and KL(policy || reference) along them."""
        device = model_device(policy)
        generator = torch.Generator(device).manual_seed(seed)
        reference.to(device)
        rewards, kls = [], []
        for start in range(0, len(prompts), batch_size):
            ids, attention, completion = sample(policy, prompts[start:start + batch_size].to(device),
                                                self.completion_len, generator=generator)
            rewards.append(self.reward(ids, completion))
            kls.append(token_kl(policy(ids, attention_mask=attention).logits,
                                reference(ids, attention_mask=attention).logits, completion))
        return {"reward": torch.cat(rewards).mean().item(), "kl": torch.cat(kls).mean().item()}
