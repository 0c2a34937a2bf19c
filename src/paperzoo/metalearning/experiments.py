"""The meta-learning claims (seed post 8) on the offline glyph set, and the `paperzoo train` methods.

Papers: Finn, Abbeel, Levine 2017 (MAML, arXiv 1703.03400); Snell, Swersky, Zemel 2017 (Prototypical Networks,
arXiv 1703.05175); the transfer baseline as in Chen et al. 2019 (arXiv 1904.04232); the transductive batch-norm
pitfall as in Nichol et al. 2018 (arXiv 1803.02999, Sec. 5). Models are trained once per `reproduce` run and
shared between the claims (ctx.shared). Training compute is counted in examples through forward + backward.
"""

from __future__ import annotations

import dataclasses
import time

import torch

from paperzoo import plotting
from paperzoo.catalog import TrainSpec
from paperzoo.claims import Claim, Measurement, RunContext
from paperzoo.engine.trainer import TrainConfig, Trainer
from paperzoo.metalearning.evaluate import mean_ci95
from paperzoo.metalearning.methods import (FewShotData, MamlConfig, MamlMethod, ProtoNetConfig, ProtoNetMethod,
                                           TransferConfig, TransferMethod, load_characters, pixel_nn_accuracies,
                                           summarise)
from paperzoo.metalearning.profiling import graph_saved_bytes, median_seconds

PAPER = "Finn et al. 2017 (MAML, arXiv 1703.03400); Snell et al. 2017 (ProtoNets, arXiv 1703.05175)"
SHOTS = (1, 5)


def _scale(ctx: RunContext) -> dict:
    return ctx.pick(
        smoke=dict(glyphs=dict(max_alphabets=12, max_per_alphabet=10, renderings=10), channels=8, examples=600,
                   proto_way=5, meta_batch=2, queries=2, test_queries=5, episodes=20, test_steps=1, lr=3e-3,
                   task_chunk=1),
        quick=dict(glyphs={}, channels=32, examples=20_000, proto_way=20, meta_batch=4, queries=5, test_queries=5,
                   episodes=600, test_steps=1, lr=3e-3, task_chunk=1),
        full=dict(glyphs={}, channels=64, examples=4_000_000, proto_way=60, meta_batch=32, queries=15,
                  test_queries=15, episodes=1000, test_steps=3, lr=1e-3, task_chunk=0),
    )


def _data(ctx: RunContext) -> FewShotData:
    s = _scale(ctx)
    return FewShotData(test_shots=SHOTS, test_queries=s["test_queries"], test_episodes=s["episodes"], seed=ctx.seed,
                       **s["glyphs"])


def _chars(ctx: RunContext):
    return ctx.shared("chars", lambda: load_characters(_data(ctx)))


def _train_cfg(ctx: RunContext, steps: int, batch: int) -> TrainConfig:
    return TrainConfig(steps=max(1, steps), batch_size=batch, lr=_scale(ctx)["lr"], log_every=max(1, steps // 20),
                       seed=ctx.seed, progress=False)


def _fit(method, train: TrainConfig) -> dict:
    started = time.perf_counter()
    result = Trainer(method, train).fit()
    steps, losses = result.history.series("train", "loss")
    return {"model": result.model.eval(), "seconds": time.perf_counter() - started, "curve": (steps, losses)}


def _protonet(ctx: RunContext) -> dict:
    def build():
        s = _scale(ctx)
        per_step = s["proto_way"] * (5 + 5)
        cfg = ProtoNetConfig(data=_data(ctx), channels=s["channels"], n_way=s["proto_way"], k_shot=5, n_query=5,
                             train=_train_cfg(ctx, s["examples"] // per_step, 1))
        method = ProtoNetMethod(cfg, _chars(ctx))
        run = _fit(method, cfg.train)
        run["accs"] = method.accuracies(run["model"], torch.device("cpu"))
        run["examples"] = cfg.train.steps * per_step
        return run

    return ctx.shared("protonet", build)


def _maml_cfg(ctx: RunContext, first_order: bool, bn: str) -> MamlConfig:
    s = _scale(ctx)
    cfg = MamlConfig(data=_data(ctx), channels=s["channels"], n_way=5, k_shot=1, n_query=s["queries"],
                     first_order=first_order, bn=bn, test_inner_steps=s["test_steps"], task_chunk=s["task_chunk"])
    per_step = s["meta_batch"] * cfg.n_way * (cfg.k_shot * (cfg.inner_steps + 1) + cfg.n_query)
    return dataclasses.replace(cfg, train=_train_cfg(ctx, s["examples"] // per_step, s["meta_batch"]))


def _maml(ctx: RunContext, first_order: bool, bn: str = "support", shots=SHOTS, evaluate: bool = True) -> dict:
    def build():
        cfg = _maml_cfg(ctx, first_order, bn)
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, test_shots=shots))
        method = MamlMethod(cfg, _chars(ctx))
        run = _fit(method, cfg.train)
        run["method"], run["cfg"] = method, cfg
        run["accs"] = method.accuracies(run["model"], torch.device("cpu")) if evaluate else {}
        per_step = cfg.train.batch_size * cfg.n_way * (cfg.k_shot * (cfg.inner_steps + 1) + cfg.n_query)
        run["examples"] = cfg.train.steps * per_step
        return run

    return ctx.shared(f"maml-{'fo' if first_order else 'so'}-{bn}", build)


def _transfer(ctx: RunContext) -> dict:
    def build():
        s = _scale(ctx)
        batch = s["proto_way"] * 10  # the same examples per step as ProtoNet, the same number of steps
        cfg = TransferConfig(data=_data(ctx), channels=s["channels"], train=_train_cfg(ctx, s["examples"] // batch,
                                                                                        batch))
        method = TransferMethod(cfg, _chars(ctx))
        run = _fit(method, cfg.train)
        run["accs"] = method.accuracies(run["model"], torch.device("cpu"))
        run["examples"] = cfg.train.steps * batch
        return run

    return ctx.shared("transfer", build)


def _bars(path, groups: dict[str, dict[int, torch.Tensor]], title: str):
    fig, ax = plotting.figure(6.5, 3.2)
    width = 0.8 / len(groups)
    for i, (name, accs) in enumerate(groups.items()):
        stats = [mean_ci95(accs[k]) for k in SHOTS]
        xs = [j + i * width for j in range(len(SHOTS))]
        ax.bar(xs, [m for m, _ in stats], width, yerr=[c for _, c in stats], label=name, capsize=3)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(SHOTS))], [f"5-way {k}-shot" for k in SHOTS])
    ax.set(ylabel="meta-test accuracy (95% CI)", title=title, ylim=(0, 1))
    ax.legend(fontsize=7, loc="lower right")
    return plotting.save(fig, path)


def _glyph_grid(ctx: RunContext, path):
    chars = _chars(ctx)
    test = chars.split("test")
    picks = [test[i] for i in torch.linspace(0, len(test) - 1, 8).round().long().tolist()]
    per = int((chars.labels == picks[0]).sum())
    fig, axes = plotting.figure(8, 8, ncols=min(per, 8), nrows=8)
    for r, c in enumerate(picks):
        members = (chars.labels == c).nonzero()[:, 0]
        for j, ax in enumerate(axes[r]):
            ax.imshow(chars.images[members[j], 0].numpy(), cmap="gray_r")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(chars.class_names[c], fontsize=6)
    fig.suptitle("meta-test glyph classes (held-out alphabets), renderings by font, stroke and affine variation",
                 fontsize=8)
    return plotting.save(fig, path)


# --- claim 1 -----------------------------------------------------------------------------------------------------

def _run_beats_pixels(ctx: RunContext) -> Measurement:
    pixels = pixel_nn_accuracies(_chars(ctx), _data(ctx))
    proto, maml = _protonet(ctx), _maml(ctx, first_order=False)
    values = {**summarise(pixels, "pixel_nn_"), **summarise(proto["accs"], "protonet_"),
              **summarise(maml["accs"], "maml_")}
    chars = _chars(ctx)
    values.update(classes=chars.num_classes, alphabets=len(chars.alphabets),
                  test_classes=len(chars.split("test")), test_episodes=_data(ctx).test_episodes)
    figures = [_bars(ctx.figure_path("accuracy.png"), {"pixel 1-NN": pixels, "ProtoNet": proto["accs"],
                                                      "MAML (2nd order)": maml["accs"]},
                     "held-out alphabets of the glyph set"),
               _glyph_grid(ctx, ctx.figure_path("glyphs.png"))]
    return Measurement(values, figures, notes=chars.notes)


def _check_beats_pixels(m: dict) -> bool:
    return all(m[f"{method}_acc_{k}shot"] - m[f"pixel_nn_acc_{k}shot"] >= 0.15
               for method in ("protonet", "maml") for k in SHOTS)


# --- claim 2 -----------------------------------------------------------------------------------------------------

def _step_cost(run: dict) -> tuple[float, int]:
    """Median seconds and saved-for-backward bytes of one meta-training step on a fixed meta-batch."""
    model, method = run["model"].train(), run["method"]
    data = method.train_dataset()
    batch = [torch.stack(parts) for parts in zip(*(data[i] for i in range(run["cfg"].train.batch_size)))]

    def step():
        model.zero_grad(set_to_none=True)
        loss = method.training_step(model, batch).loss
        loss.backward()

    seconds = median_seconds(step, repeats=5)
    saved = graph_saved_bytes(method.training_step(model, batch).loss)
    model.zero_grad(set_to_none=True)
    model.eval()
    return seconds, saved


def _run_first_order(ctx: RunContext) -> Measurement:
    so, fo = _maml(ctx, first_order=False), _maml(ctx, first_order=True, shots=(1,))
    so_time, so_mem = _step_cost(so)
    fo_time, fo_mem = _step_cost(fo)
    values = {"so_acc_1shot": mean_ci95(so["accs"][1])[0], "fo_acc_1shot": mean_ci95(fo["accs"][1])[0],
              "so_ci95_1shot": mean_ci95(so["accs"][1])[1], "fo_ci95_1shot": mean_ci95(fo["accs"][1])[1],
              "so_saved_mb": round(so_mem / 2**20, 1), "fo_saved_mb": round(fo_mem / 2**20, 1),
              "memory_ratio_fo_over_so": round(fo_mem / so_mem, 3),
              "meta_batch": so["cfg"].train.batch_size, "steps": so["cfg"].train.steps}
    path = plotting.curves(ctx.figure_path("train_loss.png"), {"second-order": so["curve"], "first-order":
                                                               fo["curve"]},
                           "meta-step", "query loss", "MAML 5-way 1-shot meta-training")
    timings = {"so_step_s": round(so_time, 4), "fo_step_s": round(fo_time, 4),
               "time_ratio_fo_over_so": round(fo_time / so_time, 3),
               "so_train_s": round(so["seconds"], 1), "fo_train_s": round(fo["seconds"], 1)}
    return Measurement(values, [path], timings=timings)


def _check_first_order(m: dict) -> bool:
    return (m["fo_acc_1shot"] >= m["so_acc_1shot"] - 0.03 and m["time_ratio_fo_over_so"] <= 0.85
            and m["memory_ratio_fo_over_so"] < 1.0)


# --- claim 3 -----------------------------------------------------------------------------------------------------

def _run_meta_vs_transfer(ctx: RunContext) -> Measurement:
    proto, maml, transfer = _protonet(ctx), _maml(ctx, first_order=False), _transfer(ctx)
    values = {**summarise(proto["accs"], "protonet_"), **summarise(maml["accs"], "maml_"),
              **summarise(transfer["accs"]["centroid"], "transfer_centroid_"),
              **summarise(transfer["accs"]["finetune"], "transfer_finetune_"),
              "protonet_train_examples": proto["examples"], "maml_train_examples": maml["examples"],
              "transfer_train_examples": transfer["examples"]}
    for k in SHOTS:
        meta = max(values[f"protonet_acc_{k}shot"], values[f"maml_acc_{k}shot"])
        base = max(values[f"transfer_centroid_acc_{k}shot"], values[f"transfer_finetune_acc_{k}shot"])
        values[f"winner_{k}shot"] = "meta-learning" if meta > base else "transfer"
        values[f"meta_minus_transfer_{k}shot"] = meta - base
    path = _bars(ctx.figure_path("meta_vs_transfer.png"),
                 {"ProtoNet": proto["accs"], "MAML": maml["accs"], "transfer: centroid": transfer["accs"]["centroid"],
                  "transfer: new head": transfer["accs"]["finetune"]}, "equal training examples")
    return Measurement(values, [path])


def _check_meta_vs_transfer(m: dict) -> bool:
    return all(m[f"meta_minus_transfer_{k}shot"] > 0 for k in SHOTS)


# --- claim 4 -----------------------------------------------------------------------------------------------------

def _run_transductive_bn(ctx: RunContext) -> Measurement:
    run = _maml(ctx, first_order=True, bn="transductive", shots=(1,), evaluate=False)
    method, model = run["method"], run["model"]
    transductive = method.accuracies(model, torch.device("cpu"), bn="transductive")[1]
    honest = method.accuracies(model, torch.device("cpu"), bn="support")[1]
    gap = transductive - honest  # paired: the same episodes
    gap_mean, gap_ci = mean_ci95(gap)
    values = {"transductive_acc_1shot": mean_ci95(transductive)[0], "per_example_acc_1shot": mean_ci95(honest)[0],
              "gap": gap_mean, "gap_ci95": gap_ci, "gap_ci_low": gap_mean - gap_ci,
              "episodes": len(gap)}
    fig, ax = plotting.figure()
    ax.hist(gap.numpy(), bins=21, color="tab:red", alpha=0.8)
    ax.axvline(0, color="black", lw=1)
    ax.set(xlabel="per-episode accuracy: query-batch BN minus per-example BN", ylabel="episodes",
           title=f"MAML trained with transductive BN: gap {gap_mean:+.3f} +- {gap_ci:.3f}")
    return Measurement(values, [plotting.save(fig, ctx.figure_path("bn_gap.png"))])


CLAIMS = [
    Claim(
        id="metalearning.beats_pixel_nn",
        paper=PAPER,
        statement="On held-out alphabets, 5-way 1-shot and 5-shot, ProtoNet and MAML beat nearest neighbour in "
                  "pixel space by a wide margin.",
        paper_reports="Omniglot 5-way: pixels 41.7% / 63.2% (Vinyals et al. 2016); MAML 98.7% / 99.9%; "
                      "ProtoNet 98.8% / 99.7% (1-shot / 5-shot)",
        criterion="ProtoNet and MAML accuracy each >= pixel 1-NN accuracy + 15 points, at 1-shot and at 5-shot",
        run=_run_beats_pixels,
        check=_check_beats_pixels,
    ),
    Claim(
        id="metalearning.first_order_maml",
        paper=PAPER,
        statement="First-order MAML reaches nearly the accuracy of second-order MAML at a fraction of the time "
                  "and memory per meta-step.",
        paper_reports="MAML Sec. 5.2: first-order 98.3-98.9% vs 98.7% (Omniglot 5-way 1-shot), ~33% faster",
        criterion="fo_acc_1shot >= so_acc_1shot - 3 points, fo/so step time <= 0.85, fo/so saved-for-backward "
                  "bytes < 1",
        run=_run_first_order,
        check=_check_first_order,
    ),
    Claim(
        id="metalearning.meta_vs_transfer",
        paper=PAPER,
        statement="At equal training compute, meta-learning (ProtoNet or MAML) beats the pretrain-then-adapt "
                  "transfer baseline at 1 and 5 shots.",
        paper_reports="meta-learning papers report it; Chen et al. 2019 find strong transfer baselines competitive",
        criterion="max(ProtoNet, MAML) accuracy > max(transfer centroid, transfer new head) at 1-shot and at 5-shot",
        run=_run_meta_vs_transfer,
        check=_check_meta_vs_transfer,
    ),
    Claim(
        id="metalearning.transductive_bn_inflates",
        paper="Nichol et al. 2018 (arXiv 1803.02999) Sec. 5; Bronskill et al. 2020 (TaskNorm, arXiv 2003.03284)",
        statement="Evaluating MAML with query-batch BatchNorm statistics (transductive, as the original code does) "
                  "inflates accuracy compared with classifying each query on its own.",
        paper_reports="Reptile paper: transductive evaluation gives MAML a few points (Omniglot/Mini-ImageNet)",
        criterion="paired per-episode gap (transductive - per-example): lower end of its 95% CI > 0",
        run=_run_transductive_bn,
        check=lambda m: m["gap_ci_low"] > 0,
    ),
]

TRAIN_METHODS = {
    "protonet": TrainSpec("protonet", "Prototypical Networks on the glyph set (or data.source=omniglot)",
                          ProtoNetConfig, ProtoNetMethod),
    "maml": TrainSpec("maml", "MAML (second/first order, Meta-SGD, support/transductive BN) on the glyph set",
                      MamlConfig, MamlMethod),
    "fewshot_transfer": TrainSpec("fewshot_transfer", "pretrain on all meta-train classes, adapt per episode",
                                  TransferConfig, TransferMethod),
}
