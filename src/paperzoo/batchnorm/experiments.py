"""The claims of seed post 7 (CMU Intro to DL: optimisation and batch normalization; Ioffe & Szegedy 2015,
arXiv 1502.03167; the small-batch limit from Wu & He 2018, arXiv 1803.08494) on real clothes images.

Data: Fashion-MNIST when installed (Debian `dataset-fashion-mnist`), else the 5,000 real MNIST digits. The MLP of
claims 2, 3 and 5 is the BN paper's MNIST network (Sec. 4.1: 3 hidden layers of 100 sigmoid units); its runs are
shared between those claims.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from paperzoo import plotting
from paperzoo.batchnorm.study import mlp, optimiser_study, small_cnn, train_sgd
from paperzoo.claims import Claim, Measurement, RunContext
from paperzoo.data import ImageSplit, fashion_mnist, fashion_mnist_available, mnist_5k

PAPER = "Ioffe & Szegedy 2015, arXiv 1502.03167 (seed post 7: CMU Intro to DL)"
BASE_LR, HIGH_LR, TARGET_ACC = 0.5, 20.0, 0.7


def _data(ctx: RunContext) -> ImageSplit:
    def load():
        split = fashion_mnist() if fashion_mnist_available() else mnist_5k()
        return split.subset(ctx.pick(smoke=1000, quick=5000, full=60000), ctx.pick(smoke=300, quick=2000, full=10000))
    return ctx.shared("data", load)


# -- claim 1: GD vs SGD vs mini-batch SGD --------------------------------------------------------------------------

def _run_optimisers(ctx: RunContext) -> Measurement:
    data = _data(ctx)
    n = ctx.pick(smoke=50, quick=1000, full=5000)
    target = 1.0
    curves = optimiser_study(lambda: mlp(layers=1, activation=nn.ReLU), data.train_x[:n], data.train_y[:n],
                             {"full-batch GD": n, "SGD (batch 1)": 1, "mini-batch SGD (32)": 32},
                             epochs=ctx.pick(smoke=2, quick=4, full=10), lr=0.1, log_every=max(1, n // 10),
                             seed=ctx.seed)
    gd, sgd, mini = curves["full-batch GD"], curves["SGD (batch 1)"], curves["mini-batch SGD (32)"]

    def seconds_to(curve):
        reached = curve.samples_to_reach(target)
        return next((t for s, t in zip(curve.samples, curve.seconds) if s == reached), float("inf"))

    fig, axes = plotting.figure(9, 3.2, ncols=2)
    ax_samples, ax_time = axes[0]
    for name, curve in curves.items():
        ax_samples.plot(curve.samples, curve.loss, label=name)
        ax_time.plot(curve.seconds, curve.loss, label=name)
    for ax, xlabel in ((ax_samples, "training samples processed"), (ax_time, "wall time of the updates (s)")):
        ax.axhline(target, color="grey", linestyle="--", linewidth=0.8)
        ax.set(xlabel=xlabel, ylabel="full training loss")
    ax_time.set_xscale("symlog", linthresh=0.01)
    ax_samples.legend()
    path = plotting.save(fig, ctx.figure_path("loss_vs_samples_and_time.png"))
    return Measurement({
        "target_loss": target, "train_examples": n,
        "gd_samples_to_target": gd.samples_to_reach(target), "sgd1_samples_to_target": sgd.samples_to_reach(target),
        "minibatch_samples_to_target": mini.samples_to_reach(target),
        "sgd1_seconds_to_target": round(seconds_to(sgd), 3), "minibatch_seconds_to_target": round(seconds_to(mini), 3),
        "gd_final_loss": round(gd.loss[-1], 4), "sgd1_final_loss": round(sgd.loss[-1], 4),
        "minibatch_final_loss": round(mini.loss[-1], 4),
        "sgd1_noise": round(sgd.noise(), 4), "minibatch_noise": round(mini.noise(), 4),
    }, [path], notes="same learning rate 0.1 and the same number of epochs for all three; noise = std of the "
                     "logged loss's changes over the second half")


# -- claims 2, 3, 5 share these runs -------------------------------------------------------------------------------

def _mlp_run(ctx: RunContext, norm: str, lr: float):
    def build():
        data = _data(ctx)
        torch.manual_seed(ctx.seed)
        model = mlp(norm=norm)
        sigmoids = [m for m in model if isinstance(m, nn.Sigmoid)]
        return train_sgd(model, data.train_x, data.train_y, data.test_x, data.test_y,
                         steps=ctx.pick(smoke=40, quick=1500, full=20000), batch=64, lr=lr,
                         eval_every=ctx.pick(smoke=10, quick=50, full=500), seed=ctx.seed,
                         probe_layer=sigmoids[-1], probe_x=data.test_x[:300])
    return ctx.shared(f"mlp-{norm}-{lr}", build)


def _steps_to(run, target: float) -> float:
    return next((s for s, a in zip(run.steps, run.test_acc) if a >= target), float("inf"))


def _run_faster(ctx: RunContext) -> Measurement:
    plain, bn = _mlp_run(ctx, "none", BASE_LR), _mlp_run(ctx, "batch", BASE_LR)
    plain_high, bn_high = _mlp_run(ctx, "none", HIGH_LR), _mlp_run(ctx, "batch", HIGH_LR)
    path = plotting.curves(ctx.figure_path("test_accuracy.png"), {
        f"no BN, lr {BASE_LR}": (plain.steps, plain.test_acc), f"BN, lr {BASE_LR}": (bn.steps, bn.test_acc),
        f"no BN, lr {HIGH_LR}": (plain_high.steps, plain_high.test_acc),
        f"BN, lr {HIGH_LR}": (bn_high.steps, bn_high.test_acc)},
        "SGD step (batch 64)", "test accuracy", "3x100 sigmoid MLP (BN paper Sec. 4.1)")
    steps_plain, steps_bn = _steps_to(plain, TARGET_ACC), _steps_to(bn, TARGET_ACC)
    return Measurement({
        "target_acc": TARGET_ACC, "steps_to_target_plain": steps_plain, "steps_to_target_bn": steps_bn,
        "speedup": round(steps_plain / steps_bn, 2) if steps_bn < float("inf") else 0.0,
        "final_acc_plain": round(plain.test_acc[-1], 4), "final_acc_bn": round(bn.test_acc[-1], 4),
        "high_lr": HIGH_LR, "high_lr_final_acc_plain": round(plain_high.test_acc[-1], 4),
        "high_lr_final_acc_bn": round(bn_high.test_acc[-1], 4),
    }, [path], notes="speedup = steps to the target without BN / with BN (inf when the plain net never gets there)")


# -- claim 3: internal covariate shift -----------------------------------------------------------------------------

def _drift(probe: list[torch.Tensor]) -> float:
    """Mean over features of the std over training of the feature's mean and of its std (probe batch)."""
    means = torch.stack([p.mean(0) for p in probe[1:]])  # (evals, features)
    stds = torch.stack([p.std(0) for p in probe[1:]])  # (evals, features)
    return (means.std(0).mean() + stds.std(0).mean()).item()


def _run_shift(ctx: RunContext) -> Measurement:
    plain, bn = _mlp_run(ctx, "none", BASE_LR), _mlp_run(ctx, "batch", BASE_LR)
    fig, axes = plotting.figure(9, 3.2, ncols=2)
    for ax, run, title in ((axes[0][0], plain, "without BN"), (axes[0][1], bn, "with BN")):
        feature = torch.stack([p[:, 0] for p in run.probe])  # (evals, probe batch): one sigmoid's input
        q = torch.quantile(feature, torch.tensor([0.15, 0.5, 0.85]), dim=1)  # (3, evals)
        for row, label in zip(q, ("15th", "50th", "85th")):
            ax.plot(run.steps, row.tolist(), label=f"{label} percentile")
        ax.set(xlabel="SGD step", ylabel="input to a last-hidden-layer sigmoid", title=title)
        ax.legend()
    path = plotting.save(fig, ctx.figure_path("sigmoid_input_distribution.png"))
    drift_plain, drift_bn = _drift(plain.probe), _drift(bn.probe)
    return Measurement({"drift_plain": round(drift_plain, 4), "drift_bn": round(drift_bn, 4),
                        "drift_ratio_plain_over_bn": round(drift_plain / drift_bn, 2), "evaluations": len(plain.probe)},
                       [path], notes="as the BN paper's Fig. 1(b, c): the input of the last hidden layer's sigmoids "
                                     "on a fixed batch of 300 test images, normalised with its own statistics")


# -- claim 4: the small-batch limit --------------------------------------------------------------------------------

GN_PAPER_BN = {32: 23.6, 16: 23.7, 8: 24.5, 4: 27.3, 2: 34.7}  # ResNet-50 ImageNet top-1 error, images per GPU


def _run_small_batch(ctx: RunContext) -> Measurement:
    data = _data(ctx)
    n = ctx.pick(smoke=64, quick=3000, full=60000)
    sizes = ctx.pick(smoke=(8, 2), quick=(32, 8, 2), full=(32, 16, 8, 4, 2))
    epochs = ctx.pick(smoke=1, quick=2, full=10)
    errors: dict[str, dict[int, float]] = {"batch": {}, "group": {}}
    for norm in errors:
        for b in sizes:
            torch.manual_seed(ctx.seed)
            run = train_sgd(small_cnn(norm), data.train_x[:n], data.train_y[:n], data.test_x, data.test_y,
                            steps=epochs * n // b, batch=b, lr=0.05 * b / 32, momentum=0.9, eval_every=10 ** 9,
                            seed=ctx.seed)
            errors[norm][b] = round(100 * (1 - run.test_acc[-1]), 2)
    big, small = max(sizes), min(sizes)
    bn_rise = errors["batch"][small] - errors["batch"][big]
    gn_rise = errors["group"][small] - errors["group"][big]
    path = plotting.curves(ctx.figure_path("error_vs_batch_size.png"),
                           {"BatchNorm": (list(sizes), [errors["batch"][b] for b in sizes]),
                            "GroupNorm": (list(sizes), [errors["group"][b] for b in sizes])},
                           "images per batch", "test error (%)", "small CNN, same epochs, lr scaled with batch")
    values = {f"bn_error_b{b}": errors["batch"][b] for b in sizes}
    values |= {f"gn_error_b{b}": errors["group"][b] for b in sizes}
    values |= {"bn_rise_pts": round(bn_rise, 2), "gn_rise_pts": round(gn_rise, 2),
               "paper_bn_error_by_batch": GN_PAPER_BN, "paper_gn_error": 24.1}
    return Measurement(values, [path], notes="paper: Wu & He 2018 Fig. 1/Table, ResNet-50 on ImageNet")


# -- claim 5: eval-mode pitfall ------------------------------------------------------------------------------------

def _run_eval_pitfall(ctx: RunContext) -> Measurement:
    data = _data(ctx)
    model = _mlp_run(ctx, "batch", BASE_LR).model
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
    return Measurement({
        "acc_running_stats": round((pure_running == labels).float().mean().item(), 4),
        "acc_batch_stats_one_class_batches": round((pure_batch == labels).float().mean().item(), 4),
        "changed_by_batch_running_stats": round((pure_running != mixed[order]).float().mean().item(), 4),
        "changed_by_batch_batch_stats": round((pure_batch != mixed[order]).float().mean().item(), 4),
    }, notes="each test batch holds the images of one class; 'changed' compares each image's prediction with its "
             "eval-mode prediction inside the mixed test set")


CLAIMS = [
    Claim(
        id="batchnorm.minibatch_sgd",
        paper="CMU Intro to DL (seed post 7): GD, SGD and mini-batch SGD",
        statement="Mini-batch SGD reaches a given training loss with fewer samples processed than full-batch "
                  "gradient descent, and with less noise than SGD on single examples.",
        paper_reports="(lecture: mini-batches trade the variance of SGD against the cost of full-batch GD)",
        criterion="minibatch_samples_to_target < gd_samples_to_target and minibatch_noise < sgd1_noise "
                  "(target loss 1.0, equal epochs and learning rate)",
        run=_run_optimisers,
        check=lambda m: m["minibatch_samples_to_target"] < m["gd_samples_to_target"]
        and m["minibatch_noise"] < m["sgd1_noise"],
    ),
    Claim(
        id="batchnorm.trains_faster",
        paper=PAPER,
        statement="With batch normalization the network reaches a target accuracy in fewer steps at the same "
                  "learning rate, and trains at a learning rate where the un-normalised network fails.",
        paper_reports="Inception: same accuracy in 14x fewer steps; BN-x30 trains at 30x the learning rate (Sec. 4.2)",
        criterion=f"steps_to_target_bn < steps_to_target_plain (test acc {TARGET_ACC}, lr {BASE_LR}) and at lr "
                  f"{HIGH_LR}: high_lr_final_acc_bn >= {TARGET_ACC} while high_lr_final_acc_plain < 0.2 (chance 0.1)",
        run=_run_faster,
        check=lambda m: m["steps_to_target_bn"] < m["steps_to_target_plain"]
        and m["high_lr_final_acc_bn"] >= TARGET_ACC and m["high_lr_final_acc_plain"] < 0.2,
    ),
    Claim(
        id="batchnorm.less_covariate_shift",
        paper=PAPER,
        statement="The distribution of a hidden nonlinearity's input drifts less during training with batch "
                  "normalization (internal covariate shift).",
        paper_reports="Fig. 1(b, c): the 15/50/85th percentiles of a sigmoid's input drift without BN and stay "
                      "stable with BN",
        criterion="drift_bn < drift_plain (std over training of each feature's mean and std, averaged)",
        run=_run_shift,
        check=lambda m: m["drift_bn"] < m["drift_plain"],
    ),
    Claim(
        id="batchnorm.small_batch_limit",
        paper="Wu & He 2018, Group Normalization, arXiv 1803.08494",
        statement="As the batch shrinks from 32 to 2 images, BatchNorm's test error rises while GroupNorm's "
                  "stays flat.",
        paper_reports="ResNet-50 ImageNet top-1 error at 32/16/8/4/2 images per GPU: BN 23.6/23.7/24.5/27.3/34.7, "
                      "GN about 24.1 throughout",
        criterion="bn_rise_pts > gn_rise_pts + 2 (rise of test error in points from the largest to the smallest "
                  "batch)",
        run=_run_small_batch,
        check=lambda m: m["bn_rise_pts"] > m["gn_rise_pts"] + 2,
    ),
    Claim(
        id="batchnorm.eval_mode_pitfall",
        paper=PAPER,
        statement="Normalising test batches with their own statistics changes predictions when a batch holds one "
                  "class; the running statistics (eval mode) make each prediction independent of its batch.",
        paper_reports="Sec. 3.1: at inference the normalisation uses population statistics so the output depends "
                      "only on the input",
        criterion="changed_by_batch_running_stats == 0 and acc_batch_stats_one_class_batches <= "
                  "acc_running_stats - 0.1",
        run=_run_eval_pitfall,
        check=lambda m: m["changed_by_batch_running_stats"] == 0
        and m["acc_batch_stats_one_class_batches"] <= m["acc_running_stats"] - 0.1,
    ),
]
