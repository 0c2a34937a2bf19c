"""Tiny training runs on the engine: DPO, the reward model and the RL step each move their metric the right way;
IPO's per-token form and TRL's metrics against values worked out by hand; 2-rank DDP against one process on the
union batch; the bandit's closed form; the claims at smoke preset."""

import copy
from pathlib import Path

import pytest
import torch
from dpo_helpers import TOK, dpo_run, tiny_lm, toy_pairs

from paperzoo.claims import RunContext, run_claim
from paperzoo.dpo import bandit as B
from paperzoo.dpo.data import PreferencePairs, Sequences
from paperzoo.dpo.experiments import CLAIMS
from paperzoo.dpo.methods import DPO, Reinforce, RewardModel, RewardTraining
from paperzoo.engine.trainer import TrainConfig, Trainer
from paperzoo.errors import ConfigError
from paperzoo.multigpu.launch import spawn_group


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


def hand_logps(model, prompt: str, completion: str) -> tuple[float, int]:
    """(summed log-prob, token count) of [BOS] prompt completion [EOS]'s completion, one token at a time."""
    ids = [TOK.bos_token_id, *TOK.encode(prompt)]
    start, ids = len(ids), ids + TOK.encode(completion) + [TOK.eos_token_id]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
    return sum(logp[t - 1, ids[t]].item() for t in range(start, len(ids))), len(ids) - start


@pytest.mark.parametrize("average_logps", [None, True, False])
def test_ipo_is_per_token_by_default_and_logs_trl_metrics(average_logps):
    """IPO's h is per token unless asked (Azar et al. 2023 / TRL's `ipo`); rewards/logps are TRL's: summed."""
    rows = [{"prompt": "ab", "chosen": "c", "rejected": "ddddd"}, {"prompt": "efg", "chosen": "hhhh", "rejected": "i"}]
    pairs = PreferencePairs.from_rows(rows, TOK, max_length=16, max_prompt_length=8)
    policy, reference, beta = tiny_lm(seed=1), tiny_lm(), 0.5
    method = DPO(lambda: policy, copy.deepcopy(reference), pairs, beta=beta, loss_type="ipo",
                 average_logps=average_logps)
    losses, metrics = method.losses(policy, method.train_dataset()[:])
    per_token = average_logps in (None, True)
    expected, rewards, logps = [], [], []
    for row in rows:
        (pc, nc), (pr, nr) = (hand_logps(policy, row["prompt"], row[k]) for k in ("chosen", "rejected"))
        (rc, _), (rr, _) = (hand_logps(reference, row["prompt"], row[k]) for k in ("chosen", "rejected"))
        h = (pc - rc) / nc - (pr - rr) / nr if per_token else (pc - rc) - (pr - rr)
        expected.append((h - 1 / (2 * beta)) ** 2)
        rewards.append((beta * (pc - rc), beta * (pr - rr)))
        logps.append((pc, pr))
    assert losses.tolist() == pytest.approx(expected, rel=1e-4)
    mean = lambda pairs, side: sum(p[side] for p in pairs) / len(pairs)  # noqa: E731
    assert metrics["rewards/chosen"].item() == pytest.approx(mean(rewards, 0), rel=1e-4)
    assert metrics["rewards/rejected"].item() == pytest.approx(mean(rewards, 1), rel=1e-4)
    assert metrics["logps/chosen"].item() == pytest.approx(mean(logps, 0), rel=1e-5)
    assert metrics["logps/rejected"].item() == pytest.approx(mean(logps, 1), rel=1e-5)


def test_other_losses_sum_by_default_and_can_average():
    """sigmoid stays the summed form of Eq. 7 (the claims' numbers); average_logps=True divides each log-ratio."""
    pairs = toy_pairs(4, 0)
    policy, reference = tiny_lm(seed=1), tiny_lm()
    batch = pairs[:]
    summed = DPO(lambda: policy, copy.deepcopy(reference), pairs, precompute_reference=False).losses(policy, batch)[0]
    mean = DPO(lambda: policy, copy.deepcopy(reference), pairs, precompute_reference=False,
               average_logps=True).losses(policy, batch)[0]
    h_summed = -torch.log(torch.expm1(summed)) / 0.1  # invert -log sigmoid(beta h)
    h_mean = -torch.log(torch.expm1(mean)) / 0.1
    torch.testing.assert_close(h_mean, h_summed / 4)  # every completion is 3 letters + EOS


def test_two_rank_ddp_equals_one_process_on_the_union_batch():
    """2 ranks x 8 pairs take the same SGD steps as 1 process x 16 pairs: same losses and parameters."""
    ranks = spawn_group(dpo_run, world_size=2, args=(8,), timeout_s=180)
    union_params, union_losses = dpo_run(16)
    half_params, _ = dpo_run(8)
    assert ranks[0] == ranks[1]  # DDP keeps the replicas equal
    assert ranks[0][1] == pytest.approx(union_losses, abs=1e-6)
    assert (torch.tensor(ranks[0][0]) - torch.tensor(union_params)).abs().max() < 1e-6
    assert (torch.tensor(half_params) - torch.tensor(union_params)).abs().max() > 1e-3  # 8 pairs differ from 16


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


def test_reinforce_refuses_completions_longer_than_the_context_before_training():
    reference = tiny_lm()  # context 24
    prompts = torch.tensor([TOK.encode("abcdefghij")] * 4)  # 10 tokens
    data = Sequences(prompts, torch.ones_like(prompts), torch.zeros_like(prompts))
    fits = Reinforce(lambda: copy.deepcopy(reference), reference, CountReward(3, 4), data, new_tokens=14)
    assert fits.build_model().config.context == 24  # 10 + 14 = 24 fits exactly
    method = Reinforce(lambda: copy.deepcopy(reference), reference, CountReward(3, 4), data, new_tokens=15)
    with pytest.raises(ConfigError, match="10 tokens \\+ new_tokens=15 exceed the model's context of 24"):
        method.build_model()


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
    assert frontier.verdict == "inconclusive" and len(frontier.preconditions) == 4
    assert frontier.measured["checkpoints_per_run"] == 5 and len(frontier.measured["reward_gap_at_matched_kl"]) == 1
    assert frontier.measured["completions_per_step"] == 64 and frontier.measured["steps_per_run"] == 20
    assert all(len(frontier.per_seed[k]) == 1 for k in ("rm_late_trend_pts", "dpo_late_trend_pts",
                                                          "rlhf_late_trend_pts"))
    assert "the reward model reached a plateau" in results["dpo.implicit_reward"].preconditions[1]["text"]
    closed = run_claim(CLAIMS[0], RunContext("smoke", tmp_path / "closed", seeds=[0, 1, 2]))
    assert closed.id == "dpo.closed_form" and closed.verdict in ("reproduced", "inconclusive"), closed.reason
    assert len(closed.tests) == 4 and all(t["interval"]["low"] is not None for t in closed.tests)
    assert all(big < small for big, small in zip(closed.per_seed["kl_dpo_largest"], closed.per_seed["kl_dpo_smallest"]))
