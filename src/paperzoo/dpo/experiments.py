"""The claims of Rafailov et al., "Direct Preference Optimization: Your Language Model is Secretly a Reward
Model" (NeurIPS 2023, arXiv 2305.18290), and the `paperzoo train` methods of the preference pipeline."""

from __future__ import annotations

import numpy as np
import torch

from paperzoo import plotting
from paperzoo.claims import Claim, Measurement, RunContext
from paperzoo.criteria import (Effect, Precondition, all_of, at_least, at_most, decide, every_seed, late_trend,
                                no_worse, plateau)
from paperzoo.dpo import bandit as B
from paperzoo.dpo.cli import TRAIN_METHODS  # noqa: F401  (picked up by paperzoo.catalog)
from paperzoo.dpo.frontier import (COMPLETIONS_PER_STEP, DPO_PAIRS_PER_STEP, MATCHED_KLS, MIN_CHECKPOINTS, MIN_OVERLAP,
                                   RL_PROMPTS_PER_STEP, RL_SAMPLES, SCALES, Comparison, Pipeline, Point,
                                   compare_frontiers, frontier, frontier_reward)
from paperzoo.dpo.logprobs import pair_logps
from paperzoo.dpo.methods import pair_rewards
from paperzoo.engine.distributed import derive_seed

PAPER = "Rafailov et al., NeurIPS 2023, arXiv 2305.18290"
BETA = 0.1  # the DPO policy measured by the implicit-reward and pathology claims (the paper's usual beta)
QUICK, STANDARD = SCALES["quick"], SCALES["standard"]
FRONTIER_GAP = Effect(0.25, "a practical bound: a quarter of a vowel of reward, a quarter of the 1-vowel gain that "
                            "shows RLHF trained (the paper's Fig. 2 gives no gap in these units)")
RANKING_MARGIN = Effect(0.05, "a practical bound: 5 points of ranking accuracy (the paper gives no number)")
CHOSEN_FALL = Effect(0.5, "a practical bound: half a nat of a completion's log-probability")


RM_PLATEAU = plateau("the reward model", ("rm_late_trend_pts",),
                     measure="the least-squares trend of its held-out pair accuracy over the second half of training "
                             "(`late_trend`)")


def _pipeline(ctx: RunContext, seed: int) -> Pipeline:
    return ctx.shared(f"pipeline/{seed}", lambda: Pipeline(ctx.preset, seed))


def _rm_trend(pipe: Pipeline) -> float:
    """Points per 30% of training of the reward model's held-out pair accuracy (the plateau rule's trend)."""
    return late_trend(*pipe.reward_model_run().history.series("eval", "accuracy"))


def _reward_trend(pipe: Pipeline, result) -> float:
    """Points per 30% of training of a policy's true reward on the held-out prompts, as the fraction of the
    completion's characters that are vowels (reward / 16), so that a point is 0.16 vowels."""
    steps, rewards = result.history.series("eval", "task_reward")
    return late_trend(steps, [r / pipe.task.completion_len for r in rewards])


def _run_closed_form(ctx: RunContext) -> Measurement:
    sizes = ctx.pick(smoke=[30, 300, 3000], quick=[10, 30, 100, 300, 1000, 3000, 10000],
                     full=[10, 30, 100, 300, 1000, 3000, 10000, 30000, 100000])
    bandits = ctx.pick(smoke=2, quick=4, full=16)
    rl_steps = ctx.pick(smoke=300, quick=600, full=3000)
    curves: dict[str, list] = {"DPO": [], "RLHF (BT reward model + REINFORCE)": []}  # (seeds, sizes) each

    def measure(seed: int) -> dict:
        kl_dpo, kl_rlhf, kl_ref = np.zeros((bandits, len(sizes))), np.zeros((bandits, len(sizes))), []
        for i in range(bandits):
            bandit = B.Bandit.random(prompts=8, responses=6, beta=0.5, seed=derive_seed(seed, i))
            kl_ref.append(bandit.kl_to_optimal(bandit.log_ref))
            for j, n in enumerate(sizes):
                counts = bandit.preference_counts(n, seed=derive_seed(seed, i, j, 1))
                kl_dpo[i, j] = bandit.kl_to_optimal(B.dpo_policy(bandit, counts))
                reward = B.reward_table(counts)
                kl_rlhf[i, j] = bandit.kl_to_optimal(B.reinforce_policy(bandit, reward, steps=rl_steps,
                                                                        seed=derive_seed(seed, i, j, 2)))
        dpo, rlhf = kl_dpo.mean(0), kl_rlhf.mean(0)  # (sizes,) mean over this seed's bandits
        curves["DPO"].append(dpo)
        curves["RLHF (BT reward model + REINFORCE)"].append(rlhf)
        return {"kl_dpo_largest": float(dpo[-1]), "kl_rlhf_largest": float(rlhf[-1]),
                "kl_dpo_smallest": float(dpo[0]), "kl_rlhf_smallest": float(rlhf[0]),
                "kl_reference": float(np.mean(kl_ref))}

    per_seed = ctx.over_seeds(measure, "bandits")
    series = {name: (sizes, np.mean(rows, 0).tolist()) for name, rows in curves.items()}
    series["pi_ref"] = (sizes, [float(np.mean(per_seed["kl_reference"]))] * len(sizes))
    path = plotting.curves(ctx.figure_path("kl_to_optimum.png"), series, xlabel="preference pairs per prompt",
                           ylabel="KL(pi || pi*) (nats)", logy=True,
                           title=f"bandit, 8 prompts x 6 responses, beta 0.5, {bandits} per seed, "
                                 f"mean of {len(ctx.seeds)} seeds")
    return Measurement({"pairs_per_prompt": sizes, "bandits_per_seed": bandits,
                        **{f"kl_{name.split()[0].lower()}_mean_curve": [round(v, 5) for v in curve]
                           for name, (_, curve) in series.items() if name != "pi_ref"}}, [path], per_seed=per_seed)


def _check_closed_form(m: dict):
    tests = []
    for name in ("dpo", "rlhf"):
        ratio = [big / small for big, small in zip(m[f"kl_{name}_largest"], m[f"kl_{name}_smallest"])]
        tests += [at_most(f"KL({name.upper()} || pi*), largest data size", m[f"kl_{name}_largest"], 0.02),
                  at_most(f"KL({name.upper()}), largest / smallest data size", ratio, 0.25)]
    return decide(*tests)


def frontier_values(dpo: list[Point], rlhf: list[Point], sft: Point) -> tuple[Comparison, dict]:
    """One seed's comparison of the DPO and RLHF checkpoints at matched KL, and the values it measures."""
    c = compare_frontiers(dpo, rlhf, sft)
    return c, {"reward_gap_mean": float(np.mean(c.gaps)) if c.gaps else None,
               "reward_gap_min": min(c.gaps) if c.gaps else None,
               "overlap_fraction": c.overlap_fraction, "overlap_low": c.low, "overlap_high": c.high,
               "dpo_checkpoints_in_overlap": c.checkpoints_inside[0],
               "rlhf_checkpoints_in_overlap": c.checkpoints_inside[1], "checkpoints_compared": c.checkpoints_compared,
               "sft_reward": sft[1],
               "rlhf_gain_over_sft": frontier_reward(frontier(rlhf, sft), c.high) - sft[1]}


def _run_frontier(ctx: RunContext) -> Measurement:
    runs, comparisons = {}, {}

    def measure(seed: int) -> dict:
        pipe = _pipeline(ctx, seed)
        dpo = {beta: pipe.points(pipe.dpo(beta)) for beta in pipe.scale.dpo_betas}
        rlhf = {coef: pipe.points(pipe.rlhf(coef)) for coef in pipe.scale.rl_kl_coefs}
        runs[seed] = dpo, rlhf, pipe.sft_point()
        comparisons[seed], values = frontier_values([p for points in dpo.values() for p in points],
                                                    [p for points in rlhf.values() for p in points], runs[seed][2])
        trends = {"dpo_late_trend_pts": max(_reward_trend(pipe, pipe.dpo(b)) for b in pipe.scale.dpo_betas),
                  "rlhf_late_trend_pts": max(_reward_trend(pipe, pipe.rlhf(c)) for c in pipe.scale.rl_kl_coefs),
                  "rm_late_trend_pts": _rm_trend(pipe)}
        return {**values, **trends}

    per_seed = ctx.over_seeds(measure, "frontier pipelines")
    path = _plot_frontier(ctx.figure_path("frontier.png"), runs[ctx.seeds[0]], comparisons, ctx.seeds)
    pipe = _pipeline(ctx, ctx.seeds[0])
    scale = pipe.scale
    return Measurement({"corpus": pipe.task.source, "dpo_betas": list(scale.dpo_betas),
                        "rlhf_kl_coefs": list(scale.rl_kl_coefs), "checkpoints_per_run": scale.evals,
                        "steps_per_run": scale.policy_steps, "completions_per_step": COMPLETIONS_PER_STEP,
                        "reward_model_steps": scale.rm_steps,
                        "reward_gap_at_matched_kl": [[[round(k, 3), round(g, 3)] for k, g in zip(c.kls, c.gaps)]
                                                     for c in comparisons.values()]}, [path], per_seed=per_seed)


def _plot_frontier(path, first_seed: tuple[dict, dict, tuple], comparisons: dict, seeds: list[int]):
    """Left: the first seed's checkpoints, both frontiers and the matched KLs; right: DPO - RLHF at the matched KLs,
    one line per seed."""
    dpo, rlhf, sft = first_seed
    c = comparisons[seeds[0]]
    fig, axes = plotting.figure(11, 4, ncols=2)
    ax = axes[0][0]
    for (name, runs, marker), colour in zip((("DPO beta", dpo, "o"), ("RLHF kl_coef", rlhf, "s")),
                                            ("tab:blue", "tab:orange")):
        for value, points in runs.items():
            ax.scatter(*zip(*points), marker=marker, s=18, alpha=0.6, label=f"{name}={value}")
        front = frontier([p for points in runs.values() for p in points], sft)
        ax.plot(*zip(*front), color=colour, lw=1.5, label=f"{name.split()[0]} frontier")
        ax.plot(c.kls, [frontier_reward(front, k) for k in c.kls], "x", color=colour, markersize=7)
    ax.axvspan(c.low, c.high, color="grey", alpha=0.1, label="overlap of the KL ranges (x: matched KLs)")
    ax.scatter([sft[0]], [sft[1]], marker="*", s=80, color="black", label="SFT (reference)")
    ax.set(xlabel="KL(pi || pi_ref) per completion (nats)", ylabel="true reward (vowels in 16 chars)",
           title="reward / KL frontier, held-out prompts, first seed")
    ax.legend(fontsize=6)
    ax = axes[0][1]
    for i, seed in enumerate(seeds):
        ax.plot(comparisons[seed].kls, comparisons[seed].gaps, marker="o", label=f"seed {i}")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xlabel="matched KL (nats)", ylabel="frontier reward DPO - RLHF", title="DPO - RLHF at matched KL")
    ax.legend(fontsize=7)
    return plotting.save(fig, path)


def _check_frontier(m: dict):
    label = "DPO - RLHF frontier reward, {} over " + f"{MATCHED_KLS} matched KLs"
    return decide(at_least(label.format("mean"), m["reward_gap_mean"], 0.0, strict=True, effect=FRONTIER_GAP),
                  at_least(label.format("minimum"), m["reward_gap_min"], 0.0, strict=True, effect=FRONTIER_GAP))


def _reward_gaps(pipe: Pipeline) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """On the held-out pairs: DPO's implicit reward gap, the reward model's gap, the true gap (chosen - rejected)."""
    _, test, true_rewards = pipe.pairs
    policy, reference, reward_model = pipe.dpo(BETA).model, pipe.reference(), pipe.reward_model
    batch = test[:]
    with torch.no_grad():
        policy_c, policy_r = pair_logps(policy, batch)
        ref_c, ref_r = pair_logps(reference, batch)
        explicit = torch.sub(*pair_rewards(reward_model, batch))
    implicit = BETA * (policy_c - ref_c) - BETA * (policy_r - ref_r)  # r_hat(chosen) - r_hat(rejected)
    return implicit, explicit, true_rewards[:, 0] - true_rewards[:, 1]


def _run_implicit_reward(ctx: RunContext) -> Measurement:
    gaps = {}

    def measure(seed: int) -> dict:
        implicit, explicit, truth = gaps[seed] = _reward_gaps(_pipeline(ctx, seed))
        untied = truth != 0

        def accuracy(score_gap: torch.Tensor) -> tuple[float, float]:
            return (((score_gap > 0) == (truth > 0))[untied].float().mean().item(),
                    (score_gap > 0).float().mean().item())

        (dpo_truth, dpo_labels), (rm_truth, rm_labels) = accuracy(implicit), accuracy(explicit)
        return {"dpo_accuracy_vs_true_reward": dpo_truth, "rm_accuracy_vs_true_reward": rm_truth,
                "dpo_accuracy_vs_labels": dpo_labels, "rm_accuracy_vs_labels": rm_labels,
                "untied_pairs": int(untied.sum()), "rm_late_trend_pts": _rm_trend(_pipeline(ctx, seed))}

    per_seed = ctx.over_seeds(measure, "DPO pipelines")
    implicit, explicit, truth = gaps[ctx.seeds[0]]
    fig, axes = plotting.figure(8, 3.2, ncols=2)
    for ax, gap, name in ((axes[0][0], implicit, f"DPO implicit reward (beta {BETA})"),
                          (axes[0][1], explicit, "Bradley-Terry reward model")):
        ax.scatter(truth.numpy(), gap.numpy(), s=6, alpha=0.5)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set(xlabel="true reward gap (chosen - rejected)", ylabel="predicted gap", title=f"{name}, first seed")
    path = plotting.save(fig, ctx.figure_path("implicit_vs_explicit.png"))
    return Measurement({"held_out_pairs": len(truth), "beta": BETA}, [path], per_seed=per_seed)


def _run_pathology(ctx: RunContext) -> Measurement:
    def measure(seed: int) -> dict:
        history = _pipeline(ctx, seed).dpo(BETA).history
        chosen, margins = history.series("train", "logps/chosen")[1], history.series("train", "rewards/margins")[1]
        return {"logps_chosen_fall": chosen[0] - chosen[-1], "margin_gain": margins[-1] - margins[0]}

    per_seed = ctx.over_seeds(measure, "DPO runs")
    history = _pipeline(ctx, ctx.seeds[0]).dpo(BETA).history
    steps, chosen = history.series("train", "logps/chosen")
    _, rejected = history.series("train", "logps/rejected")
    _, margins = history.series("train", "rewards/margins")
    fig, axes = plotting.figure(8, 3.2, ncols=2)
    axes[0][0].plot(steps, chosen, label="logps/chosen")
    axes[0][0].plot(steps, rejected, label="logps/rejected")
    axes[0][0].set(xlabel="step", ylabel="completion log-prob (train batches)", title="log-probs")
    axes[0][0].legend()
    axes[0][1].plot(steps, margins, color="tab:green")
    axes[0][1].set(xlabel="step", ylabel="rewards/margins", title=f"implicit reward margin (beta {BETA})")
    path = plotting.save(fig, ctx.figure_path("chosen_logps_vs_margin.png"))
    return Measurement({"first_seed_logps_chosen_first": round(chosen[0], 3),
                        "first_seed_logps_chosen_last": round(chosen[-1], 3),
                        "first_seed_logps_rejected_first": round(rejected[0], 3),
                        "first_seed_logps_rejected_last": round(rejected[-1], 3)}, [path], per_seed=per_seed)


CLAIMS = [
    Claim(
        id="dpo.closed_form",
        paper=PAPER,
        statement="The KL-constrained reward maximisation problem is solved by pi*(y|x) = pi_ref(y|x) exp(r(x,y)/beta)"
                  " / Z(x); DPO on Bradley-Terry preferences recovers it without a reward model or RL, as does RLHF"
                  " (reward model + RL).",
        paper_reports="Eq. 4 and Theorem 1 (exact, no number); measured here on random bandits with a known reward",
        criterion="over seeds (each the mean of several random bandits; 95% t-intervals), for both DPO and RLHF: "
                  "KL(pi || pi*) at the largest data size <= 0.02 nats, and <= 1/4 of the KL at the smallest",
        run=_run_closed_form,
        check=_check_closed_form,
        kind="check",
        preconditions=(Precondition(
            "the task is not solved at the start: KL(pi_ref || pi*) >= 0.2 nats (10x the tolerance) on every seed",
            lambda m: min(m["kl_reference"]) >= 0.2, ("kl_reference",)),),
    ),
    Claim(
        id="dpo.frontier",
        paper=PAPER,
        statement="DPO provides the highest expected reward for all KL values: its reward/KL frontier strictly "
                  "dominates PPO's (controlled generation, Figure 2 left). Here: RLHF uses REINFORCE with a "
                  "leave-one-out baseline instead of PPO, on a tiny GPT and a vowel-count reward.",
        paper_reports="GPT-2 on IMDb with a sentiment reward: DPO's frontier above PPO's at every KL",
        criterion=f"per seed (one SFT -> pairs -> reward model pipeline each, shared with implicit_reward; at quick "
                  f"DPO betas {', '.join(map(str, QUICK.dpo_betas))} and RLHF KL coefficients "
                  f"{', '.join(map(str, QUICK.rl_kl_coefs))}, {QUICK.evals} evaluated checkpoints per run; equal "
                  f"compute: every run {QUICK.policy_steps} steps (standard {STANDARD.policy_steps}) whose loss scores "
                  f"{COMPLETIONS_PER_STEP} completions, DPO's {DPO_PAIRS_PER_STEP} pairs and RLHF's "
                  f"{RL_PROMPTS_PER_STEP} prompts x {RL_SAMPLES} samples), each method's frontier is the upper-left "
                  f"Pareto front of its checkpoints and the SFT start (KL 0), linear between its points, both methods "
                  f"counting the same checkpoints inside the overlap of their KL ranges (the one with more thinned "
                  f"evenly in KL order); at {MATCHED_KLS} matched KLs (the centres of equal bins of that overlap), "
                  f"the frontier reward DPO - RLHF; over seeds (95% t-intervals, or the sequential plan's level; Holm "
                  f"over the two): its mean over the matched KLs > 0 and its minimum over them > 0 (DPO above RLHF at "
                  f"every matched KL); smallest effect {FRONTIER_GAP.size} vowels (a practical bound)",
        run=_run_frontier,
        check=_check_frontier,
        kind="empirical",
        preconditions=(
            Precondition(f"the frontiers are comparable: the two methods' checkpoint KL ranges overlap on >= "
                         f"{MIN_OVERLAP:.0%} of their union (the seeds' mean on its 95% interval), and on every seed "
                         f"each method has >= {MIN_CHECKPOINTS} checkpoints compared inside the overlap",
                         lambda m: all_of(at_least("overlap of the KL ranges / their union", m["overlap_fraction"],
                                                   MIN_OVERLAP),
                                          every_seed("checkpoints of each method compared in the overlap",
                                                     m["checkpoints_compared"], ">=", MIN_CHECKPOINTS))),
            Precondition("RLHF is a trained baseline: its frontier reward at the top of the overlap exceeds the SFT "
                         "model's by >= 1 vowel on its 95% interval over seeds",
                         lambda m: at_least("RLHF frontier reward at the top of the overlap - SFT reward",
                                            m["rlhf_gain_over_sft"], 1.0)),
            RM_PLATEAU,
            plateau("every DPO and every RLHF run (the largest trend among each method's runs)",
                    ("dpo_late_trend_pts", "rlhf_late_trend_pts"),
                    measure="the least-squares trend of the true reward on the held-out prompts, as the vowel "
                            "fraction of the completion (1 point = 0.16 vowels), over the second half of training "
                            "(`late_trend`)"),
        ),
    ),
    Claim(
        id="dpo.implicit_reward",
        paper=PAPER,
        statement="Your language model is secretly a reward model: DPO's implicit reward beta*log(pi/pi_ref) ranks "
                  "held-out preference pairs about as well as an explicit Bradley-Terry reward model.",
        paper_reports="Section 5 (theory); TRL logs it as rewards/accuracies",
        criterion="on held-out pairs with different true rewards, paired over seeds (one SFT -> RM / DPO pipeline "
                  "each; 95% t-interval): accuracy of the implicit reward (beta 0.1) - accuracy of the reward model "
                  ">= -0.05 (non-inferiority, margin 5 points: a practical bound); not met when the interval lies "
                  "wholly below 0",
        run=_run_implicit_reward,
        check=lambda m: no_worse("DPO implicit - reward model accuracy", m["dpo_accuracy_vs_true_reward"],
                                 m["rm_accuracy_vs_true_reward"], effect=RANKING_MARGIN),
        kind="empirical",
        preconditions=(Precondition(
            "the explicit reward model is a trained baseline: its accuracy against the true reward is >= 0.6 "
            "(chance 0.5) on its 95% interval over seeds",
            lambda m: at_least("reward model accuracy", m["rm_accuracy_vs_true_reward"], 0.6)), RM_PLATEAU),
    ),
    Claim(
        id="dpo.chosen_logps_fall",
        paper=PAPER,
        statement="A known pathology of DPO reported by users: the log-probability of the chosen completions falls "
                  "during training while the reward margin grows.",
        paper_reports="(not in the paper; reported for TRL's DPOTrainer and in later work, e.g. arXiv 2404.04626)",
        criterion=f"over seeds (the beta {BETA} DPO run of each seed's pipeline; 95% t-interval), first vs last "
                  f"logged window: the fall of logps/chosen > 0 (smallest effect {CHOSEN_FALL.size} nats, a "
                  "practical bound), once the reward margin grew (precondition)",
        run=_run_pathology,
        check=lambda m: at_least("fall of logps/chosen (nats)", m["logps_chosen_fall"], 0.0, strict=True,
                                 effect=CHOSEN_FALL),
        kind="empirical",
        preconditions=(Precondition("DPO trained: the reward margin grew over training on its 95% interval over seeds",
                                    lambda m: at_least("rewards/margins gain", m["margin_gain"], 0.0, strict=True)),),
    ),
]
