"""The claims of seed post 7 (CMU Intro to DL: optimisation and batch normalization; Ioffe & Szegedy 2015,
arXiv 1502.03167; the small-batch limit from Wu & He 2018, arXiv 1803.08494) on real clothes images.

Data: Fashion-MNIST when installed (Debian `dataset-fashion-mnist`), else the 5,000 real MNIST digits. The MLP of
claims 2, 3, 5 and 6 is the BN paper's MNIST network (Sec. 4.1: 3 hidden layers of 100 sigmoid units); its runs
(one per seed) are shared between those claims. Claim 6 is the measurement with which Santurkar et al. 2018
(arXiv 1805.11604) questioned claim 3.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from paperzoo import plotting
from paperzoo.batchnorm.study import gradient_change, mlp, sgd_curve, small_cnn, train_sgd, tune_learning_rate
from paperzoo.claims import Claim, Measurement, RunContext
from paperzoo.criteria import (PLATEAU_TAIL, Effect, Precondition, accuracy_at_least, accuracy_at_most, at_least, at_most,
                               beats, decide, every_seed, plateau, ratio_at_least)
from paperzoo.data import ImageSplit, fashion_mnist, fashion_mnist_available, mnist_5k
from paperzoo.engine.distributed import derive_seed

PAPER = "Ioffe & Szegedy 2015, arXiv 1502.03167 (seed post 7: CMU Intro to DL)"
BASE_LR, HIGH_LR, TARGET_ACC = 0.5, 20.0, 0.7


def _data(ctx: RunContext) -> ImageSplit:
    def load():
        split = fashion_mnist() if fashion_mnist_available() else mnist_5k()
        return split.subset(ctx.pick(smoke=1000, quick=5000, full=60000), ctx.pick(smoke=300, quick=2000, full=10000))
    return ctx.shared("data", load)


# -- claim 1: GD vs SGD vs mini-batch SGD --------------------------------------------------------------------------

LR_GRID = (0.01, 0.03, 0.1, 0.3, 1.0)
SGD_TARGET_LOSS = 0.5


def _optimisers_once(ctx: RunContext, seed: int) -> dict:
    """Each method at its own learning rate, chosen on a tuning split (the fastest to the target loss), then
    measured from fresh weights on a disjoint split of the same size."""
    data = _data(ctx)
    n = ctx.pick(smoke=50, quick=1000, full=5000)
    tune_x, tune_y, x, y = data.train_x[:n], data.train_y[:n], data.train_x[n:2 * n], data.train_y[n:2 * n]
    methods = {"gd": (n, ctx.pick(smoke=20, quick=150, full=300)), "minibatch": (32, ctx.pick(smoke=3, quick=10,
               full=20)), "sgd1": (1, ctx.pick(smoke=2, quick=3, full=5))}  # (batch, epochs)
    build = lambda: mlp(layers=1, activation=nn.ReLU)  # noqa: E731
    grid = ctx.pick(smoke=(0.1, 1.0), quick=LR_GRID, full=LR_GRID)
    runs = {}
    for name, (batch, epochs) in methods.items():
        tuned = tune_learning_rate(build, tune_x, tune_y, batch, epochs, grid, SGD_TARGET_LOSS, max(1, n // 10), seed)
        runs[name] = tuned.lr, sgd_curve(build, x, y, batch, epochs, tuned.lr, max(1, n // 10), seed)[1]
    window = methods["sgd1"][1] * n  # noise over the same samples for both: SGD-1's budget
    return {"n": n, "budgets": {k: e for k, (_, e) in methods.items()}, "runs": runs, "window": window}


def _run_optimisers(ctx: RunContext) -> Measurement:
    runs = {}

    def measure(seed: int) -> dict:
        r = runs[seed] = _optimisers_once(ctx, seed)
        (gd_lr, gd), (mini_lr, mini), (sgd_lr, sgd) = r["runs"]["gd"], r["runs"]["minibatch"], r["runs"]["sgd1"]
        return {"gd_lr": gd_lr, "minibatch_lr": mini_lr, "sgd1_lr": sgd_lr,
                "gd_samples_to_target": gd.samples_to_reach(SGD_TARGET_LOSS),
                "minibatch_samples_to_target": mini.samples_to_reach(SGD_TARGET_LOSS),
                "sgd1_noise": sgd.until(r["window"]).noise(), "minibatch_noise": mini.until(r["window"]).noise()}

    per_seed = ctx.over_seeds(measure, "GD / SGD / mini-batch")
    first = runs[ctx.seeds[0]]
    fig, axes = plotting.figure(9, 3.2, ncols=2)
    ax_samples, ax_window = axes[0]
    for name, (lr, curve) in first["runs"].items():
        ax_samples.plot(curve.samples, curve.loss, label=f"{name} (lr {lr})")
        part = curve.until(first["window"])
        ax_window.plot(part.samples, part.loss, label=f"{name} (lr {lr})")
    ax_samples.set(xscale="symlog", xlabel="training samples processed", ylabel="full training loss",
                   title="to the target loss, first seed")
    ax_samples.axhline(SGD_TARGET_LOSS, color="grey", linestyle="--", linewidth=0.8)
    ax_window.set(xlabel="training samples processed", ylabel="full training loss",
                  title="the window where noise is measured")
    ax_samples.legend(fontsize=7)
    path = plotting.save(fig, ctx.figure_path("loss_vs_samples.png"))
    return Measurement({"target_loss": SGD_TARGET_LOSS, "train_examples": first["n"], "lr_grid": list(LR_GRID),
                        "epochs": first["budgets"], "noise_window_samples": first["window"]}, [path],
                       per_seed=per_seed,
                       notes="each method's learning rate is the grid's fastest to the target on a tuning split of "
                             "the same size; noise = std of the logged loss's changes over the second half of the "
                             "window")


FEWER_SAMPLES = Effect(1.1, "a practical bound: 10% fewer samples to the target (the lecture gives no number)")
LESS_NOISE = Effect(0.05, "a practical bound: 0.05 nats of the loss's step-to-step standard deviation")
FEWER_STEPS = Effect(50.0, "a practical bound: one evaluation interval at quick (50 steps); the paper's 14x is far "
                           "larger")
ANY_DRIFT_GAIN = Effect(0.0, "true by construction (BN normalises the very variable measured): any gain counts")
PITFALL_GAP = Effect(0.1, "the claim's own bound: 10 points of accuracy")
NOT_REDUCED = Effect(1.0, "the mirror of non-inferiority: refuted when BN is shown to reduce the change (ratio < 1)")


def _check_optimisers(m: dict):
    return decide(ratio_at_least("GD / mini-batch samples to the target loss", m["gd_samples_to_target"],
                                 m["minibatch_samples_to_target"], 1.0, effect=FEWER_SAMPLES),
                  beats("noise, SGD-1 - mini-batch", m["sgd1_noise"], m["minibatch_noise"], effect=LESS_NOISE))


# -- claims 2, 3, 5 share these runs -------------------------------------------------------------------------------

def _mlp_run(ctx: RunContext, norm: str, lr: float, seed: int):
    def build():
        data = _data(ctx)
        torch.manual_seed(seed)
        model = mlp(norm=norm)
        sigmoids = [m for m in model if isinstance(m, nn.Sigmoid)]
        return train_sgd(model, data.train_x, data.train_y, data.test_x, data.test_y,
                         steps=ctx.pick(smoke=40, quick=1500, full=20000), batch=64, lr=lr,
                         eval_every=ctx.pick(smoke=10, quick=50, full=500), seed=seed,
                         probe_layer=sigmoids[-1], probe_x=data.test_x[:300])
    return ctx.shared(f"mlp-{norm}-{lr}/{seed}", build)


def _steps_to(run, target: float) -> float:
    """The first evaluated step at the target accuracy; a run that never gets there counts one evaluation past
    its budget (a lower bound, so a speed-up computed from it is conservative)."""
    budget = run.steps[-1] + (run.steps[-1] - run.steps[-2])
    return next((s for s, a in zip(run.steps, run.test_acc) if a >= target), budget)


def _run_faster(ctx: RunContext) -> Measurement:
    def measure(seed: int) -> dict:
        plain, bn = _mlp_run(ctx, "none", BASE_LR, seed), _mlp_run(ctx, "batch", BASE_LR, seed)
        plain_high, bn_high = _mlp_run(ctx, "none", HIGH_LR, seed), _mlp_run(ctx, "batch", HIGH_LR, seed)
        return {"steps_to_target_plain": _steps_to(plain, TARGET_ACC), "steps_to_target_bn": _steps_to(bn, TARGET_ACC),
                "final_acc_plain": plain.test_acc[-1], "final_acc_bn": bn.test_acc[-1],
                "high_lr_final_acc_plain": plain_high.test_acc[-1], "high_lr_final_acc_bn": bn_high.test_acc[-1]}

    per_seed = ctx.over_seeds(measure, "BN paper MLPs")
    seed = ctx.seeds[0]
    plain, bn = _mlp_run(ctx, "none", BASE_LR, seed), _mlp_run(ctx, "batch", BASE_LR, seed)
    plain_high, bn_high = _mlp_run(ctx, "none", HIGH_LR, seed), _mlp_run(ctx, "batch", HIGH_LR, seed)
    path = plotting.curves(ctx.figure_path("test_accuracy.png"), {
        f"no BN, lr {BASE_LR}": (plain.steps, plain.test_acc), f"BN, lr {BASE_LR}": (bn.steps, bn.test_acc),
        f"no BN, lr {HIGH_LR}": (plain_high.steps, plain_high.test_acc),
        f"BN, lr {HIGH_LR}": (bn_high.steps, bn_high.test_acc)},
        "SGD step (batch 64)", "test accuracy", "3x100 sigmoid MLP (BN paper Sec. 4.1), first seed")
    return Measurement({"target_acc": TARGET_ACC, "base_lr": BASE_LR, "high_lr": HIGH_LR,
                        "test_examples": len(_data(ctx).test_y)}, [path], per_seed=per_seed,
                       notes="a run that never reaches the target counts one evaluation past its budget")


def _check_faster(m: dict):
    return decide(beats("steps to the target, no BN - BN", m["steps_to_target_plain"], m["steps_to_target_bn"],
                        effect=FEWER_STEPS),
                  accuracy_at_least(f"BN at lr {HIGH_LR}: final accuracy", m["high_lr_final_acc_bn"], TARGET_ACC,
                                    m["test_examples"]),
                  accuracy_at_most(f"no BN at lr {HIGH_LR}: final accuracy", m["high_lr_final_acc_plain"], 0.2,
                                   m["test_examples"]))


# -- claim 3: internal covariate shift -----------------------------------------------------------------------------

def _drift(probe: list[torch.Tensor]) -> float:
    """Mean over features of the std over training of the feature's mean and of its std (probe batch)."""
    means = torch.stack([p.mean(0) for p in probe[1:]])  # (evals, features)
    stds = torch.stack([p.std(0) for p in probe[1:]])  # (evals, features)
    return (means.std(0).mean() + stds.std(0).mean()).item()


def _run_shift(ctx: RunContext) -> Measurement:
    def measure(seed: int) -> dict:
        plain, bn = _mlp_run(ctx, "none", BASE_LR, seed), _mlp_run(ctx, "batch", BASE_LR, seed)
        return {"drift_plain": _drift(plain.probe), "drift_bn": _drift(bn.probe)}

    per_seed = ctx.over_seeds(measure, "BN paper MLPs")
    plain, bn = _mlp_run(ctx, "none", BASE_LR, ctx.seeds[0]), _mlp_run(ctx, "batch", BASE_LR, ctx.seeds[0])
    fig, axes = plotting.figure(9, 3.2, ncols=2)
    for ax, run, title in ((axes[0][0], plain, "without BN"), (axes[0][1], bn, "with BN")):
        feature = torch.stack([p[:, 0] for p in run.probe])  # (evals, probe batch): one sigmoid's input
        q = torch.quantile(feature, torch.tensor([0.15, 0.5, 0.85]), dim=1)  # (3, evals)
        for row, label in zip(q, ("15th", "50th", "85th")):
            ax.plot(run.steps, row.tolist(), label=f"{label} percentile")
        ax.set(xlabel="SGD step", ylabel="input to a last-hidden-layer sigmoid", title=f"{title} (first seed)")
        ax.legend()
    path = plotting.save(fig, ctx.figure_path("sigmoid_input_distribution.png"))
    return Measurement({"evaluations": len(plain.probe)}, [path], per_seed=per_seed,
                       notes="as the BN paper's Fig. 1(b, c): the input of the last hidden layer's sigmoids on a "
                             "fixed batch of 300 test images, the network in inference mode (BN: running statistics)")


# -- claim 6: the gradient view of internal covariate shift (Santurkar et al. 2018) -------------------------------

def _run_gradient_change(ctx: RunContext) -> Measurement:
    data = _data(ctx)
    batches = ctx.pick(smoke=2, quick=10, full=50)

    def measure(seed: int) -> dict:
        row = {}
        for norm in ("none", "batch"):
            model = _mlp_run(ctx, norm, BASE_LR, seed).model
            linears = [m for m in model if isinstance(m, nn.Linear)]
            generator = torch.Generator().manual_seed(derive_seed(seed, 6))
            changes = []
            for _ in range(batches):
                idx = torch.randperm(len(data.train_x), generator=generator)[:64]
                changes.append(gradient_change(model, linears[-2], data.train_x[idx], data.train_y[idx], BASE_LR))
            key = "plain" if norm == "none" else "bn"
            row[f"relative_change_{key}"] = sum(c["relative_change"] for c in changes) / batches
            row[f"cosine_{key}"] = sum(c["cosine"] for c in changes) / batches
        return row

    per_seed = ctx.over_seeds(measure, "gradient change")
    fig, ax = plotting.figure(5, 3.2)
    ax.bar(["no BN", "BN"], [sum(per_seed[k]) / len(ctx.seeds) for k in ("relative_change_plain",
                                                                          "relative_change_bn")])
    for i, key in enumerate(("relative_change_plain", "relative_change_bn")):
        ax.scatter([i] * len(ctx.seeds), per_seed[key], color="black", s=10, zorder=3)
    ax.set(ylabel="||G - G'|| / ||G||, last hidden layer",
           title="gradient change after the earlier layers' step")
    path = plotting.save(fig, ctx.figure_path("gradient_change.png"))
    return Measurement({"batches_per_seed": batches, "batch": 64, "lr": BASE_LR, "layer": "last hidden Linear"},
                       [path], per_seed=per_seed,
                       notes="after training (the claim-2 runs); each value is the mean over batches of the training "
                             "set; BN layers in train mode")


# -- claim 4: the small-batch limit --------------------------------------------------------------------------------

GN_PAPER_BN = {32: 23.6, 16: 23.7, 8: 24.5, 4: 27.3, 2: 34.7}  # ResNet-50 ImageNet top-1 error, images per GPU




def _run_small_batch(ctx: RunContext) -> Measurement:
    """The GN paper's recipe at small scale: every batch size for the same epochs, the learning rate scaled with the
    batch (0.1 per 32 images, momentum 0.9), decayed to 0 (cosine); test error logged 10 times per run."""
    data = _data(ctx)
    n = ctx.pick(smoke=64, quick=500, full=60000)
    sizes = ctx.pick(smoke=(8, 2), quick=(32, 2), full=(32, 16, 8, 4, 2))
    epochs = ctx.pick(smoke=1, quick=10, full=30)
    big, small = max(sizes), min(sizes)
    curves = {}

    def measure(seed: int) -> dict:
        row, drops = {}, []
        for norm, key in (("batch", "bn"), ("group", "gn")):
            for b in sizes:
                torch.manual_seed(seed)
                steps = epochs * n // b
                run = train_sgd(small_cnn(norm), data.train_x[:n], data.train_y[:n], data.test_x, data.test_y,
                                steps=steps, batch=b, lr=0.1 * b / 32, momentum=0.9, eval_every=max(1, steps // 10),
                                seed=seed, cosine=True)
                errors = [100 * (1 - a) for a in run.test_acc]
                curves.setdefault(seed, {})[f"{key.upper()}, batch {b}"] = ([s / steps * epochs for s in run.steps],
                                                                          errors)
                tail = next(e for s, e in zip(run.steps, errors) if s >= (1 - PLATEAU_TAIL) * steps)
                drops.append(tail - errors[-1])
                row[f"{key}_error_b{b}"] = errors[-1]
            row[f"{key}_rise_pts"] = row[f"{key}_error_b{small}"] - row[f"{key}_error_b{big}"]
        row["largest_late_drop_pts"] = max(drops)
        return row

    per_seed = ctx.over_seeds(measure, "small-batch CNNs")
    mean = lambda key: sum(per_seed[key]) / len(ctx.seeds)  # noqa: E731
    path = plotting.curves(ctx.figure_path("error_vs_batch_size.png"),
                           {"BatchNorm": (list(sizes), [mean(f"bn_error_b{b}") for b in sizes]),
                            "GroupNorm": (list(sizes), [mean(f"gn_error_b{b}") for b in sizes])},
                           "images per batch", "test error (%, mean over seeds)",
                           f"small CNN, {epochs} epochs each, lr scaled with batch")
    training = plotting.curves(ctx.figure_path("test_error_during_training.png"), curves[ctx.seeds[0]], "epoch",
                               "test error (%)", "is each run at its plateau? (first seed)")
    return Measurement({"paper_bn_error_by_batch": GN_PAPER_BN, "paper_gn_error": 24.1, "epochs": epochs,
                        "train_images": n, "batch_sizes": list(sizes)}, [path, training], per_seed=per_seed,
                       notes="paper: Wu & He 2018 Fig. 1/Table, ResNet-50 on ImageNet")


# -- claim 5: eval-mode pitfall ------------------------------------------------------------------------------------

def _eval_pitfall(ctx: RunContext, seed: int) -> dict:
    data = _data(ctx)
    model = _mlp_run(ctx, "batch", BASE_LR, seed).model
    model.eval()
    with torch.no_grad():
        mixed = model(data.test_x).argmax(1)  # running statistics, the whole test set at once
        batch_stats_model = copy.deepcopy(model).train()  # a copy: its running buffers may change
        pure_running, pure_batch, labels = [], [], []
        for c in range(10):
            x = data.test_x[data.test_y == c]
            pure_running.append(model(x).argmax(1))
            pure_batch.append(batch_stats_model(x).argmax(1))
            labels.append(torch.full((len(x),), c))
    order = torch.cat([(data.test_y == c).nonzero().flatten() for c in range(10)])
    pure_running, pure_batch, labels = torch.cat(pure_running), torch.cat(pure_batch), torch.cat(labels)
    return {"acc_running_stats": (pure_running == labels).float().mean().item(),
            "acc_batch_stats_one_class_batches": (pure_batch == labels).float().mean().item(),
            "changed_by_batch_running_stats": (pure_running != mixed[order]).float().mean().item(),
            "changed_by_batch_batch_stats": (pure_batch != mixed[order]).float().mean().item()}


def _run_eval_pitfall(ctx: RunContext) -> Measurement:
    return Measurement({}, per_seed=ctx.over_seeds(lambda seed: _eval_pitfall(ctx, seed), "eval mode"),
                       notes="each test batch holds the images of one class; 'changed' compares each image's "
                             "prediction with its eval-mode prediction inside the mixed test set")


CLAIMS = [
    Claim(
        id="batchnorm.minibatch_sgd",
        paper="CMU Intro to DL (seed post 7): GD, SGD and mini-batch SGD",
        statement="Mini-batch SGD reaches a given training loss with fewer samples processed than full-batch "
                  "gradient descent, and with less noise than SGD on single examples.",
        paper_reports="(lecture: mini-batches trade the variance of SGD against the cost of full-batch GD)",
        criterion=f"over seeds (95% t-intervals), each method at the learning rate of {LR_GRID} that reaches "
                  f"training loss {SGD_TARGET_LOSS} with the fewest samples on a tuning split, measured on a "
                  "disjoint split: samples to the target, GD / mini-batch (geometric mean) >= 1; and noise of the "
                  "full training loss over SGD-1's budget, SGD-1 - mini-batch > 0 (paired); smallest effects 1.1x "
                  "samples and 0.05 nats of noise (practical bounds); Holm over the two",
        run=_run_optimisers,
        check=_check_optimisers,
        kind="empirical",
        preconditions=(Precondition(
            "enough updates: GD and mini-batch SGD reach the target loss within their budgets on every seed",
            lambda m: all(math.isfinite(v) for v in m["gd_samples_to_target"] + m["minibatch_samples_to_target"]),
            ("gd_samples_to_target", "minibatch_samples_to_target")),),
    ),
    Claim(
        id="batchnorm.trains_faster",
        paper=PAPER,
        statement="With batch normalization the network reaches a target accuracy in fewer steps at the same "
                  "learning rate, and trains at a learning rate where the un-normalised network fails.",
        paper_reports="Inception: BN-x5 (5x the learning rate and other changes, Sec. 4.2.1) reaches the baseline's "
                      "accuracy in 14x fewer steps; BN-x30 trains at 30x the learning rate (Sec. 4.2)",
        criterion=f"over seeds (95% t-intervals): steps to test acc {TARGET_ACC} at lr {BASE_LR}, no BN - BN > 0 "
                  f"(paired; smallest effect 50 steps, a practical bound); at lr {HIGH_LR}: BN's final accuracy >= "
                  f"{TARGET_ACC}, no BN's < 0.2 (chance 0.1), both on intervals that hold the test set's sampling "
                  f"error; Holm over the three; sequential looks at 3 and 5 seeds "
                  "at quick (Pocock)",
        run=_run_faster,
        check=_check_faster,
        kind="empirical",
        looks={"quick": (3, 5)},
    ),
    Claim(
        id="batchnorm.less_covariate_shift",
        paper=PAPER,
        statement="The distribution of a hidden nonlinearity's input drifts less during training with batch "
                  "normalization (internal covariate shift).",
        paper_reports="Fig. 1(b, c): the 15/50/85th percentiles of a sigmoid's input drift without BN and stay "
                      "stable with BN",
        criterion="paired over seeds (95% t-interval): drift_plain - drift_bn > 0 (std over training of each "
                  "feature's mean and std on a fixed probe batch, network in inference mode, averaged)",
        run=_run_shift,
        check=lambda m: beats("drift, no BN - BN", m["drift_plain"], m["drift_bn"], effect=ANY_DRIFT_GAIN),
        kind="check",  # nearly true by construction: BN normalises the variable whose drift is measured
    ),
    Claim(
        id="batchnorm.small_batch_limit",
        paper="Wu & He 2018, Group Normalization, arXiv 1803.08494",
        statement="As the batch shrinks from 32 to 2 images, BatchNorm's test error rises while GroupNorm's "
                  "stays flat.",
        paper_reports="ResNet-50 ImageNet top-1 error at 32/16/8/4/2 images per GPU: BN 23.6/23.7/24.5/27.3/34.7, "
                      "GN about 24.1 throughout",
        criterion="over seeds (95% t-intervals), test error from the largest to the smallest batch: BN rises by "
                  ">= 3 points, GN's change stays within +-2 points (absolute bounds); Holm over the three",
        run=_run_small_batch,
        kind="empirical",
        check=lambda m: decide(at_least("BN error rise (points)", m["bn_rise_pts"], 3.0),
                               at_most("GN error change (points)", m["gn_rise_pts"], 2.0),
                               at_least("GN error change (points)", m["gn_rise_pts"], -2.0)),
        preconditions=(plateau(
            "every run (BN and GN at every batch size; else the batch sizes differ in how far they got, not in what "
            "they can reach)", ("largest_late_drop_pts",),
            measure=f"the largest fall of test error over the last {PLATEAU_TAIL:.0%} of training among the runs "
                    "(cosine schedule)"),),
    ),
    Claim(
        id="batchnorm.eval_mode_pitfall",
        paper=PAPER,
        statement="Normalising test batches with their own statistics changes predictions when a batch holds one "
                  "class; the running statistics (eval mode) make each prediction independent of its batch.",
        paper_reports="Sec. 3.1: at inference the normalisation uses population statistics so the output depends "
                      "only on the input",
        criterion="on every seed changed_by_batch_running_stats == 0; over seeds (95% t-interval) acc_running_stats "
                  "- acc_batch_stats_one_class_batches >= 0.1",
        run=_run_eval_pitfall,
        check=lambda m: decide(
            every_seed("predictions changed by the batch, eval mode", m["changed_by_batch_running_stats"], "<=", 0.0),
            at_least("accuracy, running stats - one-class batch stats",
                     [a - b for a, b in zip(m["acc_running_stats"], m["acc_batch_stats_one_class_batches"])], 0.1,
                     effect=PITFALL_GAP)),
        kind="check",
        preconditions=(Precondition("the BN model trained: test accuracy with running statistics >= 0.5 (chance "
                                    "0.1) on every seed", lambda m: min(m["acc_running_stats"]) >= 0.5,
                                    ("acc_running_stats",)),),
    ),
    Claim(
        id="batchnorm.gradient_ics_not_reduced",
        paper="Santurkar, Tsipras, Ilyas, Madry 2018, How Does Batch Normalization Help Optimization?, arXiv "
              "1805.11604",
        statement="Measured as the change of a layer's gradient caused by updating the layers before it, internal "
                  "covariate shift is not reduced by batch normalization (it is often larger).",
        paper_reports="Fig. 3: VGG and deep linear nets with BN show no smaller (often larger) l2 change and no "
                      "better cosine between G and G' than without BN",
        criterion="over seeds, geometric-mean ratio of ||G - G'|| / ||G|| (last hidden layer, after training), "
                  "BN / no BN >= 0.9 on the t-interval of the per-seed log-ratios (BN does not reduce it by more "
                  "than 10%); not met when the interval lies wholly below 1 (BN shown to reduce it)",
        run=_run_gradient_change,
        check=lambda m: ratio_at_least("relative gradient change, BN / no BN", m["relative_change_bn"],
                                       m["relative_change_plain"], 0.9, effect=NOT_REDUCED),
        kind="empirical",
    ),
]
