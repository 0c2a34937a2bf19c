"""Claims of "Toward Causal Representation Learning" (Schölkopf et al. 2021, arXiv 2102.11107) and of the two
papers it builds on for its ML consequences: Bengio et al. 2019 (arXiv 1901.10912) for sparse mechanism shift, and
Schölkopf et al. 2012 (arXiv 1206.6471) for semi-supervised learning. Every claim runs on generated SCMs, the only
data where the true interventional and counterfactual answers are known.
"""

from __future__ import annotations

import numpy as np
import torch

from paperzoo import plotting
from paperzoo.causal.graph import backdoor_adjustment, backdoor_sets
from paperzoo.causal.mechanisms import Categorical, LinearGaussian
from paperzoo.causal.metatransfer import adaptation_curves, train_structural_parameter
from paperzoo.causal.scm import SCM
from paperzoo.causal.semisupervised import ssl_gain
from paperzoo.claims import Claim, Measurement, RunContext
from paperzoo.criteria import Effect, Precondition, at_least, at_most, beats, decide, every_seed, log_at_least, no_gain
from paperzoo.engine.distributed import derive_seed

PAPER = "Schölkopf et al. 2021, arXiv 2102.11107"


# 1. rung 1 vs rung 2 ----------------------------------------------------------------------------------------------
def correlate_scm() -> SCM:
    """Two causes X1, X2 of Y, and S an effect of Y (a non-causal correlate: a symptom, a watermark)."""
    return SCM({"X1": LinearGaussian(), "X2": LinearGaussian(),
                "Y": LinearGaussian({"X1": 1.0, "X2": -1.0}, std=0.5),
                "S": LinearGaussian({"Y": 1.0}, std=0.3)})


def _least_squares(data: dict, features: list[str]) -> torch.Tensor:
    x = torch.stack([data[f] for f in features] + [torch.ones_like(data["Y"])], 1)  # (n, k + 1)
    return torch.linalg.lstsq(x, data["Y"][:, None]).solution.squeeze(1)


def _mse(data: dict, features: list[str], coef: torch.Tensor) -> float:
    x = torch.stack([data[f] for f in features] + [torch.ones_like(data["Y"])], 1)
    return float(((x @ coef - data["Y"]) ** 2).mean())


def _run_rungs(ctx: RunContext) -> Measurement:
    n = ctx.pick(2000, 20_000, 200_000)
    scm = correlate_scm()

    def measure(seed: int) -> dict:
        train, test = scm.sample(n, seed=derive_seed(seed, 0)), scm.sample(n, seed=derive_seed(seed, 1))
        shifted = scm.do({"S": LinearGaussian(std=float(test["S"].std()))}).sample(n, seed=derive_seed(seed, 2))
        values = {}
        for name, features in {"all": ["X1", "X2", "S"], "causal": ["X1", "X2"]}.items():
            coef = _least_squares(train, features)
            values[f"{name}_mse_observational"] = _mse(test, features, coef)
            values[f"{name}_mse_intervened"] = _mse(shifted, features, coef)
        values["all_weight_on_S"] = float(_least_squares(train, ["X1", "X2", "S"])[2])
        return values

    per_seed = ctx.over_seeds(measure, "rungs")
    fig, ax = plotting.figure(5, 3)
    labels = ["observational", "do(S ~ noise)"]
    for i, name in enumerate(["all", "causal"]):
        mse = np.array([per_seed[f"{name}_mse_observational"], per_seed[f"{name}_mse_intervened"]])  # (2, seeds)
        ax.bar([j + 0.38 * i for j in range(2)], mse.mean(1), 0.38,
               label={"all": "regress on X1, X2, S", "causal": "regress on causes X1, X2"}[name])
    ax.set_xticks([0.19, 1.19], labels)
    ax.set(ylabel=f"test MSE of Y (mean of {len(ctx.seeds)} seeds)",
           title="a non-causal correlate fails under intervention")
    ax.legend()
    return Measurement({"samples": n}, [plotting.save(fig, ctx.figure_path("rungs.png"))], per_seed=per_seed)


ANY_GAIN = Effect(0.0, "an identity of the simulated SCM: any gain in the claimed direction counts")
TWICE = Effect(2.0, "the claim's own factor of 2")
SSL_GAIN = Effect(0.005, "a practical bound: half a point of accuracy, averaged over many random tasks")
NO_PRACTICAL_HELP = Effect(0.01, "the claim's own bound: a causal gain below 1 point is no practical help")


def _check_rungs(m: dict):
    ratio_all = [i / o for i, o in zip(m["all_mse_intervened"], m["all_mse_observational"])]
    change_causal = [abs(i / o - 1) for i, o in zip(m["causal_mse_intervened"], m["causal_mse_observational"])]
    return decide(beats("causal - all-feature MSE, i.i.d. test", m["causal_mse_observational"],
                        m["all_mse_observational"], effect=ANY_GAIN),
                  log_at_least("all-feature MSE, do(S) / i.i.d.", ratio_all, 2.0, effect=TWICE),
                  at_most("|causal MSE, do(S) / i.i.d. - 1|", change_causal, 0.1, strict=True))


# 2. back-door adjustment -------------------------------------------------------------------------------------------
def confounded_scm() -> SCM:
    """Z confounds X -> Y; the effect of X goes through the mediator M (so adjusting for M would be wrong)."""
    return SCM({
        "Z": Categorical([0.5, 0.5]),
        "X": Categorical([[0.8, 0.2], [0.2, 0.8]], ["Z"]),
        "M": Categorical([[0.9, 0.1], [0.3, 0.7]], ["X"]),
        "Y": Categorical([[[0.9, 0.1], [0.4, 0.6]], [[0.6, 0.4], [0.1, 0.9]]], ["M", "Z"]),
    })


def _run_adjustment(ctx: RunContext) -> Measurement:
    n = ctx.pick(5000, 50_000, 1_000_000)
    scm = confounded_scm()
    sets = backdoor_sets(scm.graph, "X", "Y")
    zs = sorted(min(sets, key=len))
    truths = {x: scm.do({"X": x}).prob({"Y": 1}) for x in (0, 1)}

    def measure(seed: int) -> dict:
        data = scm.sample(n, seed=seed)
        row = {}
        for x in (0, 1):
            row[f"backdoor_x{x}"] = backdoor_adjustment(data, "X", x, "Y", 1, zs)
            row[f"naive_x{x}"] = float((data["Y"][data["X"] == x] == 1).double().mean())
        row["max_error_backdoor"] = max(abs(row[f"backdoor_x{x}"] - truths[x]) for x in (0, 1))
        row["max_error_naive"] = max(abs(row[f"naive_x{x}"] - truths[x]) for x in (0, 1))
        return row

    per_seed = ctx.over_seeds(measure, "back-door")
    values: dict = {"backdoor_set": zs, "n_samples": n,
                    **{f"true_p_y1_do_x{x}": round(truths[x], 4) for x in (0, 1)}}
    means = {**values, **{k: float(np.mean(v)) for k, v in per_seed.items()}}
    fig, ax = plotting.figure(5, 3)
    for i, key in enumerate(["true_p_y1_do_x", "backdoor_x", "naive_x"]):
        ax.bar([j + 0.27 * i for j in range(2)], [means[f"{key}0"], means[f"{key}1"]], 0.27,
               label={"true_p_y1_do_x": "true P(Y=1 | do(x))", "backdoor_x": f"back-door on {zs}",
                      "naive_x": "naive P(Y=1 | x)"}[key])
    ax.set_xticks([0.27, 1.27], ["x = 0", "x = 1"])
    ax.set(ylabel=f"P(Y = 1) (mean of {len(ctx.seeds)} seeds)", title="adjustment vs conditioning")
    ax.legend(fontsize=7)
    return Measurement(values, [plotting.save(fig, ctx.figure_path("adjustment.png"))], per_seed=per_seed)


def _check_adjustment(m: dict):
    gap = [naive - 3 * adjusted for naive, adjusted in zip(m["max_error_naive"], m["max_error_backdoor"])]
    return decide(at_most("max |back-door - truth|", m["max_error_backdoor"], 0.02),
                  at_least("max |naive - truth|", m["max_error_naive"], 0.05, strict=True),
                  at_least("naive error - 3 x back-door error", gap, 0.0, strict=True, effect=ANY_GAIN))


# 3. counterfactuals -------------------------------------------------------------------------------------------------
def _run_counterfactuals(ctx: RunContext) -> Measurement:
    n = ctx.pick(20_000, 200_000, 2_000_000)
    # (a) linear-Gaussian chain X -> M -> Y, X -> Y, every variable observed: Y_x' = y + (2 - 1.5)(x' - x) exactly
    chain = SCM({"X": LinearGaussian(std=1.0), "M": LinearGaussian({"X": 1.5}, std=0.5),
                 "Y": LinearGaussian({"X": 2.0, "M": -1.0}, bias=0.5, std=0.7)})
    evidence = {"X": 1.0, "M": 2.0, "Y": 0.3}
    answer = chain.counterfactual(evidence, {"X": -1.0}, n=16).mean("Y")
    analytic_full = 0.3 + (2.0 - 1.5) * (-1.0 - 1.0)
    # (b) only Y observed in Y = 2X + U_y: E[Y_x' | Y = y] = 2x' + E[U_y | y], E[U_y | y] = s_y^2 / (4 s_x^2 + s_y^2) y
    pair = SCM({"X": LinearGaussian(std=1.0), "Y": LinearGaussian({"X": 2.0}, std=1.0)})
    analytic_partial = 2 * 0.5 + 1.0 / (4 * 1.0 + 1.0) * 3.0
    interventional_partial = 2 * 0.5  # E[Y | do(X = 0.5)]: rung 2, what skipping abduction would answer
    # (c) binary X -> Y with a noisy copy, P(Y_{x=0} = 1 | X = 1, Y = 1) = 0.2 / 0.8 by the inverse-CDF coupling
    copy = SCM({"X": Categorical([0.5, 0.5]), "Y": Categorical([[0.8, 0.2], [0.2, 0.8]], ["X"])})
    exact_discrete = copy.counterfactual_prob({"Y": 1}, {"X": 1, "Y": 1}, {"X": 0})
    interventional_discrete = copy.do({"X": 0}).prob({"Y": 1})  # rung 2: P(Y = 1 | do(X = 0)) = 0.2

    def measure(seed: int) -> dict:
        sampled_partial = pair.counterfactual({"Y": 3.0}, {"X": 0.5}, n=n, seed=seed).mean("Y")
        sampled_discrete = copy.counterfactual({"X": 1, "Y": 1}, {"X": 0}, n=n, seed=seed).prob("Y", 1)
        return {"partial_evidence_sampled": sampled_partial,
                "partial_evidence_error": abs(sampled_partial - analytic_partial),
                "discrete_sampled": sampled_discrete, "discrete_sampled_error": abs(sampled_discrete - 0.25)}

    values = {
        "full_evidence_answer": round(answer, 6), "full_evidence_analytic": analytic_full,
        "full_evidence_error": abs(answer - analytic_full), "partial_evidence_analytic": analytic_partial,
        "partial_evidence_interventional": interventional_partial,
        "discrete_exact": exact_discrete, "discrete_analytic": 0.25, "discrete_exact_error": abs(exact_discrete - 0.25),
        "discrete_interventional": round(interventional_discrete, 6), "samples": n,
    }
    return Measurement(values, per_seed=ctx.over_seeds(measure, "counterfactuals"))


def _check_counterfactuals(m: dict):
    return decide(every_seed("exact answer error, full evidence", [m["full_evidence_error"]], "<=", 1e-6),
                  every_seed("exact answer error, discrete", [m["discrete_exact_error"]], "<=", 1e-6),
                  at_most("sampled answer error, partial evidence", m["partial_evidence_error"], 0.02),
                  at_most("sampled answer error, discrete", m["discrete_sampled_error"], 0.02))


def _counterfactuals_differ(m: dict) -> bool:
    return (abs(m["partial_evidence_analytic"] - m["partial_evidence_interventional"]) > 0.02
            and abs(m["discrete_analytic"] - m["discrete_interventional"]) > 0.02)


# 4. sparse mechanism shift (Bengio et al. 2019) ---------------------------------------------------------------------
def _steps_to(curve: torch.Tensor, level: float) -> int:
    below = (curve <= level).nonzero()
    return int(below[0]) if len(below) else len(curve)  # never reached: one more than the budget


def _run_sparse_shift(ctx: RunContext) -> Measurement:
    sizes = ctx.pick([10], [10, 20], [10, 20, 50, 100])
    examples = ctx.pick(100, 300, 1000)
    episodes = ctx.pick(20, 200, 1000)
    shown: dict = {}  # the first seed's curves, for the figure

    def measure(seed: int) -> dict:
        row = {}
        for n in sizes:
            curves = adaptation_curves(n, interventions=ctx.pick(5, 20, 100), transfer_examples=examples, batch=1,
                                       lr=0.1, seed=seed)
            shown.setdefault(n, curves)
            start = float(curves["A->B"][0])
            for name, curve in curves.items():
                row[f"N{n}_{name}_steps_to_half_gap"] = _steps_to(curve, start / 2)
                row[f"N{n}_{name}_final_kl"] = float(curve[-1])
            row[f"N{n}_initial_kl"] = start
        meta = train_structural_parameter(10, episodes=episodes, transfer_examples=100, batch=10, lr=1.0, seed=seed)
        shown.setdefault("gamma", meta.sigmoid_gamma)
        row["sigmoid_gamma_final"] = meta.sigmoid_gamma[-1]
        return row

    per_seed = ctx.over_seeds(measure, "sparse mechanism shift")
    fig, axes = plotting.figure(4 * (len(sizes) + 1), 3, ncols=len(sizes) + 1)
    for ax, n in zip(axes[0], sizes):
        for name, curve in shown[n].items():
            ax.plot(range(len(curve)), curve.tolist(), label=f"model {name}")
        ax.set(xlabel="SGD steps (1 example each)", ylabel="KL(p_new || model), nats",
               title=f"after redrawing p(A), N = {n} (first seed)")
        ax.legend()
    ax = axes[0][-1]
    ax.plot(range(1, len(shown["gamma"]) + 1), shown["gamma"])
    ax.set(xlabel="episode (one intervention each)", ylabel="sigmoid(gamma) = belief in A -> B", ylim=(0, 1.02),
           title="meta-transfer structural parameter, N = 10 (first seed)")
    return Measurement({"sizes": sizes, "episodes": episodes, "transfer_examples": examples},
                       [plotting.save(fig, ctx.figure_path("adaptation.png"))], per_seed=per_seed)


def _check_sparse_shift(m: dict):
    ratios = {n: [b / a for a, b in zip(m[f"N{n}_A->B_steps_to_half_gap"], m[f"N{n}_B->A_steps_to_half_gap"])]
              for n in m["sizes"]}
    return decide(*[log_at_least(f"N = {n}: steps to half the KL, B->A / A->B", r, 2.0, effect=TWICE)
                    for n, r in ratios.items()],
                  at_least("final sigmoid(gamma)", m["sigmoid_gamma_final"], 0.9))


# 5. semi-supervised learning, causal vs anticausal ------------------------------------------------------------------
def _run_ssl(ctx: RunContext) -> Measurement:
    reps = ctx.pick(20, 100, 500)

    def measure(seed: int) -> dict:
        row = {}
        for direction in ("anticausal", "causal"):
            r = ssl_gain(direction, reps, labeled=10, unlabeled=ctx.pick(100, 500, 2000), seed=seed)
            row.update({f"{direction}_{k}": v for k, v in r.items() if k != "gain_se"})
        return row

    per_seed = ctx.over_seeds(measure, "semi-supervised")
    means = {k: float(np.mean(v)) for k, v in per_seed.items()}
    fig, ax = plotting.figure(5, 3)
    for i, key in enumerate(["acc_supervised", "acc_semi_supervised"]):
        ax.bar([j + 0.38 * i for j in range(2)], [means[f"anticausal_{key}"], means[f"causal_{key}"]], 0.38,
               label={"acc_supervised": "10 labels", "acc_semi_supervised": "10 labels + unlabeled"}[key])
    ax.set_xticks([0.19, 1.19], ["anticausal (predict cause)", "causal (predict effect)"])
    ax.set(ylabel=f"test accuracy (mean of {len(ctx.seeds)} seeds)", ylim=(0.5, 1.0),
           title="unlabeled data helps only anticausally")
    ax.legend()
    return Measurement({"repetitions_per_seed": reps}, [plotting.save(fig, ctx.figure_path("ssl.png"))],
                       per_seed=per_seed)


CLAIMS = [
    Claim(
        id="causal.rung1_vs_rung2",
        paper=PAPER,
        statement="A predictor fit on i.i.d. data that uses a non-causal correlate fails when that correlate is "
                  "intervened on, while a predictor on the causal parents keeps its accuracy (Sec. 2-3).",
        paper_reports="qualitative (the i.i.d. assumption breaks under interventions)",
        criterion="over seeds (95% t-intervals): all-feature MSE below causal MSE on i.i.d. test data (paired), "
                  "rises >= 2x under do(S) (geometric mean, interval of the log-ratios), and the causal predictor's "
                  "MSE changes by < 10%",
        run=_run_rungs,
        check=_check_rungs,
        kind="check",
    ),
    Claim(
        id="causal.backdoor_adjustment",
        paper=PAPER,
        statement="The back-door adjustment of observational samples recovers P(y | do(x)) of the SCM, while the "
                  "conditional P(y | x) does not (rung 2 from rung-1 data plus the graph).",
        paper_reports="exact identity in the infinite-sample limit (Pearl 2009, Thm. 3.3.2)",
        criterion="over seeds (95% t-intervals): max |back-door - truth| <= 0.02, max |naive - truth| > 0.05, and "
                  "naive error - 3 x back-door error > 0",
        run=_run_adjustment,
        check=_check_adjustment,
        kind="check",
    ),
    Claim(
        id="causal.counterfactuals",
        paper=PAPER,
        statement="Abduction-action-prediction answers counterfactual queries of SCMs with known noise "
                  "(rung 3, Sec. 2).",
        paper_reports="exact for additive-noise and discrete models",
        criterion="exact answers within 1e-6 of the analytic ones; sampled answers' mean error over seeds <= 0.02 "
                  "on its 95% t-interval",
        run=_run_counterfactuals,
        check=_check_counterfactuals,
        kind="check",
        preconditions=(Precondition(
            "the tolerance can tell rung 3 from rung 2: each counterfactual answer differs from the interventional "
            "answer (no abduction) by > 0.02", _counterfactuals_differ,
            ("partial_evidence_analytic", "partial_evidence_interventional", "discrete_analytic",
             "discrete_interventional")),),
    ),
    Claim(
        id="causal.sparse_mechanism_shift",
        paper="Bengio et al. 2019, arXiv 1901.10912 (SMS in Schölkopf et al. 2021, Sec. 4)",
        statement="After an intervention that redraws P(A), the model factorised A -> B recovers the new "
                  "likelihood in far fewer SGD steps than B -> A, and the meta-transfer structural parameter "
                  "converges to the true direction.",
        paper_reports="A->B adapts much faster (Fig. 2); sigmoid(gamma) -> 1 (Fig. 3), N = 10 and larger",
        criterion="over seeds (95% t-intervals; ratios on the log scale), for every N: steps B->A needs to halve "
                  "A->B's initial KL / steps A->B needs >= 2 (geometric mean); final sigmoid(gamma) >= 0.9; Holm "
                  "over the tests",
        run=_run_sparse_shift,
        check=_check_sparse_shift,
        kind="empirical",
    ),
    Claim(
        id="causal.ssl_anticausal_only",
        paper="Schölkopf et al. 2012, arXiv 1206.6471 (Sec. 5 of Schölkopf et al. 2021)",
        statement="Unlabeled data helps when predicting the cause from the effect (anticausal) and not when "
                  "predicting the effect from the cause (causal).",
        paper_reports="SSL gains only on anticausal/confounded benchmark data sets (meta-analysis, Sec. 5)",
        criterion="over seeds (each the mean of many random tasks; 95% t-intervals): anticausal gain > 0, and "
                  "causal gain < 0.01 (no practical help; not met when the whole interval lies above 0); the "
                  "anticausal test fails when its interval lies below 0.005 (smallest effect: half a point, a "
                  "practical bound); Holm over the two",
        run=_run_ssl,
        kind="empirical",
        check=lambda m: decide(at_least("anticausal gain (accuracy)", m["anticausal_gain"], 0.0, strict=True,
                                        effect=SSL_GAIN),
                               no_gain("causal gain (accuracy)", m["causal_gain"], [0.0] * len(m["causal_gain"]),
                                       effect=NO_PRACTICAL_HELP)),
        preconditions=(Precondition(
            "the supervised baselines learned: 10-label accuracy >= 0.6 (chance 0.5) in both directions",
            lambda m: min(m["anticausal_acc_supervised"] + m["causal_acc_supervised"]) >= 0.6,
            ("anticausal_acc_supervised", "causal_acc_supervised")),),
    ),
]
