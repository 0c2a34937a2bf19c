"""Tiny training runs on the engine: DPO, the reward model and the RL step each move their metric the right way;
the bandit's closed form; the claims at smoke preset."""

import copy
import random
from pathlib import Path

import pytest
import torch

from paperzoo.claims import RunContext, run_claim
from paperzoo.dpo import bandit as B
from paperzoo.dpo.data import PreferencePairs, Sequences
from paperzoo.dpo.experiments import CLAIMS
from paperzoo.dpo.methods import DPO, Reinforce, RewardModel, RewardTraining
from paperzoo.dpo.model import CharTokenizer, TinyGPT, TinyGPTConfig
from paperzoo.engine.trainer import TrainConfig, Trainer

TOK = CharTokenizer()


def tiny_lm(seed=0):
    torch.manual_seed(seed)
    return TinyGPT(TinyGPTConfig(vocab_size=TOK.vocab_size, context=24, hidden_size=32, layers=1, heads=2))


def toy_pairs(n, seed, copy_rule=True):
    """Prompts of random letters; the chosen completion repeats the prompt's first letter, the rejected does not
    (or, without `copy_rule`, the chosen one is "aaa" and the rejected one another letter)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        prompt = "".join(rng.choice("abcdefgh") for _ in range(4))
        good = prompt[0] if copy_rule else "a"
        other = rng.choice([c for c in "abcdefgh" if c != good])
        rows.append({"prompt": prompt, "chosen": good * 3, "rejected": other * 3})
    return PreferencePairs.from_rows(rows, TOK, max_length=16, max_prompt_length=8)


def fit(method, steps, lr=3e-3, batch_size=16):
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, log_every=5, device="cpu", progress=False)
    return Trainer(method, cfg).fit()


def test_dpo_run_raises_reward_accuracy():
    reference = tiny_lm()
    method = DPO(lambda: copy.deepcopy(reference), copy.deepcopy(reference), toy_pairs(256, 0), toy_pairs(64, 1),
                 beta=0.1)
    result = fit(method, 40)
    _, accuracy = result.history.series("train", "rewards/accuracies")
    _, loss = result.history.series("train", "loss")
    assert accuracy[-1] > accuracy[0] + 0.3 and accuracy[-1] > 0.9
    assert loss[-1] < loss[0]
    assert result.final["rewards/accuracies"] > 0.9  # held-out pairs
    assert result.final["rewards/margins"] > 0
    assert "reference_logps" in method.pairs.tensors  # computed once and cached


def test_dpo_without_cached_reference_gives_the_same_losses():
    reference = tiny_lm()
    pairs = toy_pairs(16, 0)
    cached = DPO(lambda: copy.deepcopy(reference), copy.deepcopy(reference), pairs)
    fresh = DPO(lambda: copy.deepcopy(reference), copy.deepcopy(reference), toy_pairs(16, 0),
                precompute_reference=False)
    policy = tiny_lm(seed=1)
    batch_cached, batch_fresh = cached.train_dataset()[:], fresh.train_dataset()[:]
    assert "reference_logps" not in batch_fresh
    torch.testing.assert_close(cached.losses(policy, batch_cached)[0], fresh.losses(policy, batch_fresh)[0])
    assert not any(p.requires_grad for p in fresh.reference.parameters()) and not fresh.reference.training


def test_reward_model_learns_the_preference():
    backbone = tiny_lm()
    result = fit(RewardTraining(lambda: RewardModel(copy.deepcopy(backbone), 32), toy_pairs(256, 0, False),
                                toy_pairs(64, 1, False)), 40)
    assert result.final["accuracy"] > 0.9


class CountReward(torch.nn.Module):
    """A known reward: how many of the last `n` tokens are `token`."""

    def __init__(self, token, n):
        super().__init__()
        self.token, self.n = token, n
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the module a device

    def forward(self, input_ids, attention_mask):
        return (input_ids[:, -self.n:] == self.token).float().sum(1)


def test_reinforce_raises_a_known_reward_and_stays_near_the_reference_with_a_large_kl_coef():
    reference = tiny_lm()
    prompts = torch.tensor([TOK.encode("abcd"), TOK.encode("efgh")] * 32)
    data = Sequences(prompts, torch.ones_like(prompts), torch.zeros_like(prompts))
    target = TOK.encode("e")[0]
    runs = {}
    for kl_coef in (0.0, 50.0):
        method = Reinforce(lambda: copy.deepcopy(reference), copy.deepcopy(reference), CountReward(target, 4), data,
                           kl_coef=kl_coef, samples_per_prompt=4, new_tokens=4)
        runs[kl_coef] = fit(method, 30, lr=1e-2, batch_size=8).history
    _, reward_free = runs[0.0].series("train", "reward")
    _, reward_tied = runs[50.0].series("train", "reward")
    _, kl_tied = runs[50.0].series("train", "kl")
    assert reward_free[-1] > reward_free[0] + 1.0  # from ~0.04 (1/99 per token) towards 4
    assert reward_tied[-1] < reward_free[-1] and abs(kl_tied[-1]) < 0.5


def test_bandit_optimum_maximises_the_kl_regularised_reward():
    bandit = B.Bandit.random(prompts=3, responses=5, beta=0.5, seed=0)

    def objective(log_pi):
        pi = torch.softmax(log_pi, -1)
        return ((pi * bandit.reward).sum(-1) - bandit.beta * (pi * (torch.log(pi) - bandit.log_ref)).sum(-1)).sum()

    best = objective(bandit.log_optimal)
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        nudged = bandit.log_optimal + 0.1 * torch.randn(3, 5, generator=g, dtype=torch.float64)
        assert objective(nudged) < best
    assert bandit.kl_to_optimal(bandit.log_optimal) == pytest.approx(0.0, abs=1e-12)


def test_bandit_reward_model_recovers_reward_differences():
    bandit = B.Bandit.random(prompts=2, responses=4, beta=0.5, seed=1)
    fitted = B.reward_table(bandit.preference_counts(20000, seed=2))
    centred = lambda r: r - r.mean(-1, keepdim=True)  # noqa: E731  (BT identifies rewards up to a constant)
    torch.testing.assert_close(centred(fitted), centred(bandit.reward), atol=0.1, rtol=0)


def test_claims_at_smoke_preset(tmp_path: Path):
    memo: dict = {}
    results = {c.id: run_claim(c, RunContext("smoke", tmp_path / c.id, 0, memo)) for c in CLAIMS}
    for claim_id, result in results.items():
        assert result.verdict != "error", (claim_id, result.message)
        assert all(Path(f).is_file() for f in result.figures)
    assert results["dpo.closed_form"].verdict == "inconclusive"  # one seed: no interval, no decision
    frontier = results["dpo.frontier"]
    assert frontier.verdict == "inconclusive" and len(frontier.preconditions) == 2
    assert frontier.measured["checkpoints_per_run"] == 5 and len(frontier.measured["reward_gap_at_matched_kl"]) == 1
    closed = run_claim(CLAIMS[0], RunContext("smoke", tmp_path / "closed", seeds=[0, 1, 2]))
    assert closed.id == "dpo.closed_form" and closed.verdict in ("reproduced", "inconclusive"), closed.reason
    assert len(closed.tests) == 4 and all(t["interval"]["low"] is not None for t in closed.tests)
    assert all(big < small for big, small in zip(closed.per_seed["kl_dpo_largest"], closed.per_seed["kl_dpo_smallest"]))
