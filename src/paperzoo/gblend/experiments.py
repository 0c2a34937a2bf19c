"""Claims of "What Makes Training Multi-Modal Classification Networks Hard?" (Wang, Tran, Feiszli, CVPR 2020,
arXiv 1905.12681) on AV-digits, and the `paperzoo train gblend_*` methods.

The paper's ablation (Kinetics audio+RGB) is rebuilt at laptop scale: real MNIST digits (PCA-degraded) paired by
label with espeak-ng spoken digits in noise (see data.py). Every strategy trains the same late-fusion MLPs with
Adam at a constant learning rate for the same number of epochs, over several seeds; test accuracy is measured on
the 1,000 test images paired with clips of speakers never heard in training.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from paperzoo import plotting
from paperzoo.catalog import TrainSpec
from paperzoo.claims import Claim, Measurement, RunContext, SkipClaim
from paperzoo.engine.trainer import TrainConfig
from paperzoo.gblend.audio import espeak_available
from paperzoo.gblend.data import AVDigitsConfig, av_digits
from paperzoo.gblend.method import Blend, Checkpoint, MultiModalConfig, MultiModalMethod, build_offline, fit, offline_weights
from paperzoo.gblend.model import FUSED
from paperzoo.gblend.ogr import ogr_window

PAPER = "Wang, Tran, Feiszli, CVPR 2020, arXiv 1905.12681"
MODALITIES = ("image", "audio")
# name -> MultiModalConfig options; "early_stop" reuses the naive runs (best held-out epoch)
STRATEGIES = {
    "image": dict(modalities=("image",), blend="unimodal"),
    "audio": dict(modalities=("audio",), blend="unimodal"),
    "naive": dict(blend="fused"),
    "dropout": dict(blend="fused", dropout=0.5),
    "mid_fusion": dict(blend="fused", fusion="mid"),
    "ogm_ge": dict(blend="fused", ogm_alpha=0.8, ogm_epochs=0),
    "online_gblend": dict(blend="online"),
}


@dataclass
class Runs:
    """Per strategy, per seed: the checkpoint history and the final test accuracy."""

    epochs: int
    super_epoch: int
    history: dict[str, list[list[Checkpoint]]] = field(default_factory=dict)
    test_acc: dict[str, list[float]] = field(default_factory=dict)
    offline_weights: list[dict[str, float]] = field(default_factory=list)

    def mean(self, name: str) -> float:
        return statistics.fmean(self.test_acc[name])

    def std(self, name: str) -> float:
        values = self.test_acc[name]
        return statistics.stdev(values) if len(values) > 1 else 0.0


def _train_config(epochs: int, seed: int, batch: int = 128, n_train: int = 3200) -> TrainConfig:
    per_epoch = n_train // batch
    return TrainConfig(steps=epochs * per_epoch, batch_size=batch, lr=1e-3, log_every=per_epoch,
                       eval_every=per_epoch, seed=seed, progress=False)


def _run_all(ctx: RunContext) -> Runs:
    if not espeak_available():
        raise SkipClaim("the audio modality is spoken with espeak-ng: apt-get install espeak-ng")
    data_cfg = ctx.pick(smoke=AVDigitsConfig(utterances_per_digit=20), quick=AVDigitsConfig(), full=AVDigitsConfig())
    data = av_digits(data_cfg)
    epochs = ctx.pick(smoke=2, quick=12, full=40)
    seeds = ctx.pick(smoke=(ctx.seed,), quick=tuple(ctx.seed + i for i in range(3)),
                     full=tuple(ctx.seed + i for i in range(5)))
    runs = Runs(epochs, super_epoch=ctx.pick(smoke=1, quick=3, full=5))
    for seed in seeds:
        base = MultiModalConfig(data=data_cfg, super_epoch=runs.super_epoch,
                                train=_train_config(epochs, seed, n_train=len(data.train)))
        for name, options in STRATEGIES.items():
            method, final = fit(MultiModalConfig(**{**base.__dict__, **options}), data)
            _record(runs, name, method, final["test_acc"])
        # offline G-Blend: weights from the first n epochs of this seed's unimodal and naive runs, which are the
        # short runs themselves (same seed and data order, constant learning rate)
        w = offline_weights({"image": runs.history["image"][-1], "audio": runs.history["audio"][-1],
                             FUSED: runs.history["naive"][-1]}, runs.super_epoch)
        runs.offline_weights.append(w)
        cfg = MultiModalConfig(**{**base.__dict__, "blend": "offline",
                                  "weights": tuple(w[k] for k in (*MODALITIES, FUSED))})
        method, final = fit(cfg, data)
        _record(runs, "offline_gblend", method, final["test_acc"])
        naive = runs.history["naive"][-1]
        best = max(naive[1:], key=lambda p: p.val_acc[FUSED])  # early stopping on held-out accuracy
        runs.test_acc.setdefault("early_stop", []).append(best.test_acc[FUSED])
    return runs


def _record(runs: Runs, name: str, method: MultiModalMethod, test_acc: float) -> None:
    runs.history.setdefault(name, []).append(method.history)
    runs.test_acc.setdefault(name, []).append(test_acc)


def _shared(ctx: RunContext) -> Runs:
    return ctx.shared("gblend.runs", lambda: _run_all(ctx))


def _accuracy_figure(ctx: RunContext, runs: Runs, names: list[str], title: str):
    fig, ax = plotting.figure(6.5, 3.2)
    means = [runs.mean(n) for n in names]
    ax.bar(range(len(names)), means, yerr=[runs.std(n) for n in names], capsize=3, color="tab:blue")
    ax.set_xticks(range(len(names)), [n.replace("_", "\n") for n in names])
    low = min(means) - 0.05
    ax.set(ylabel="test accuracy (mean ± sd over seeds)", ylim=(max(0.0, low), min(1.0, max(means) + 0.03)),
           title=title)
    return plotting.save(fig, ctx.figure_path("test_accuracy.png"))


def _table(runs: Runs, names: list[str]) -> dict:
    out = {}
    for n in names:
        out[f"{n}_acc"] = round(runs.mean(n), 4)
        out[f"{n}_acc_sd"] = round(runs.std(n), 4)
    out["seeds"] = len(runs.test_acc["naive"])
    out["epochs"] = runs.epochs
    return out


# ---- claim 1: the problem ------------------------------------------------------------------------------------
def _run_problem(ctx: RunContext) -> Measurement:
    runs = _shared(ctx)
    names = ["image", "audio", "naive"]
    values = _table(runs, names)
    values["best_unimodal_acc"] = max(values["image_acc"], values["audio_acc"])
    values["naive_minus_best_unimodal"] = round(values["naive_acc"] - values["best_unimodal_acc"], 4)
    fig = _accuracy_figure(ctx, runs, names, "unimodal vs naive late fusion")
    return Measurement(values, [fig])


# ---- claim 2: the cause --------------------------------------------------------------------------------------
def _ogr_whole_run(history: list[Checkpoint], head: str) -> float:
    return ogr_window(history[0].train_loss[head], history[0].val_loss[head], history[-1].train_loss[head],
                      history[-1].val_loss[head]).ogr


def _run_cause(ctx: RunContext) -> Measurement:
    runs = _shared(ctx)
    n = runs.super_epoch
    fig, axes = plotting.figure(9, 3.2, ncols=2)
    ax_o, ax_r = axes[0]
    values = {}
    for name, head in (("image", "image"), ("audio", "audio"), ("naive", FUSED)):
        history = runs.history[name][0]  # first seed
        epochs = [p.epoch for p in history]
        ax_o.plot(epochs, [p.val_loss[head] - p.train_loss[head] for p in history], marker="o", markersize=3,
                  label=f"{name} ({head} head)")
        windows = [ogr_window(a.train_loss[head], a.val_loss[head], b.train_loss[head], b.val_loss[head])
                   for a, b in zip(history, history[n:])]
        ax_r.plot(epochs[n:], [w.ogr for w in windows], marker="o", markersize=3, label=name)
        per_seed = [_ogr_whole_run(h, head) for h in runs.history[name]]
        values[f"{name}_ogr"] = round(statistics.fmean(per_seed), 4)
        values[f"{name}_final_overfit"] = round(statistics.fmean(h[-1].val_loss[head] - h[-1].train_loss[head]
                                                                 for h in runs.history[name]), 4)
    ax_o.set(xlabel="epoch", ylabel="O_N = L^V - L^T (nats)", title="overfitting per modality")
    ax_r.set(xlabel="epoch N+n", ylabel=f"OGR over n={n} epochs", yscale="log", title="OGR = |dO / dG|")
    ax_o.legend()
    ax_r.legend()
    path = plotting.save(fig, ctx.figure_path("ogr_curves.png"))
    low, high = sorted((values["image_ogr"], values["audio_ogr"]))
    values["ogr_ratio"] = round(high / low, 3) if low > 0 else float("inf")
    return Measurement(values, [path], notes="OGR over the whole run (checkpoint 0 -> last), mean over seeds")


# ---- claims 3 and 4: the fix ---------------------------------------------------------------------------------
def _run_fix(ctx: RunContext, variant: str) -> Measurement:
    runs = _shared(ctx)
    names = ["image", "audio", "naive", variant]
    values = _table(runs, names)
    best_uni = max(values["image_acc"], values["audio_acc"])
    values["best_unimodal_acc"] = best_uni
    values["margin_vs_naive"] = round(values[f"{variant}_acc"] - values["naive_acc"], 4)
    values["margin_vs_best_unimodal"] = round(values[f"{variant}_acc"] - best_uni, 4)
    values["margin_vs_naive_per_seed"] = [round(a - b, 4) for a, b in
                                          zip(runs.test_acc[variant], runs.test_acc["naive"])]
    figures = [_accuracy_figure(ctx, runs, names, variant.replace("_", " "))]
    if variant == "offline_gblend":
        values["weights_seed0"] = {k: round(v, 3) for k, v in runs.offline_weights[0].items()}
    else:
        history = runs.history[variant][0]
        series = {k: ([p.epoch for p in history], [p.weights[k] for p in history]) for k in (*MODALITIES, FUSED)}
        figures.append(plotting.curves(ctx.figure_path("online_weights.png"), series, "epoch", "blending weight",
                                       "online G-Blend weights (seed 0)"))
        # the weights in force during the last epoch (the estimate at the final checkpoint is never used)
        values["last_epoch_weights_seed0"] = {k: round(v, 3) for k, v in history[-2].weights.items()}
    return Measurement(values, figures)


# ---- claim 5: vs the usual remedies --------------------------------------------------------------------------
REMEDIES = ["dropout", "early_stop", "mid_fusion", "ogm_ge"]


def _run_remedies(ctx: RunContext) -> Measurement:
    runs = _shared(ctx)
    names = ["naive", *REMEDIES, "offline_gblend", "online_gblend"]
    values = _table(runs, names)
    values["best_remedy_acc"] = max(values[f"{n}_acc"] for n in REMEDIES)
    values["offline_gblend_margin_vs_best_remedy"] = round(values["offline_gblend_acc"] - values["best_remedy_acc"], 4)
    fig = _accuracy_figure(ctx, runs, names, "G-Blend vs the usual remedies")
    return Measurement(values, [fig])


CLAIMS = [
    Claim(id="gblend.naive_fusion_no_better",
          paper=PAPER,
          statement="Naive late-fusion multi-modal training is no better than (or worse than) its best single "
                    "modality (here: PCA-degraded MNIST images + espeak-ng spoken digits in noise).",
          paper_reports="Kinetics top-1: RGB 72.6% vs audio+RGB late fusion 71.4% (Table 1)",
          criterion="naive_acc <= best_unimodal_acc (test accuracy, mean over seeds)",
          run=_run_problem,
          check=lambda m: m["naive_acc"] <= m["best_unimodal_acc"]),
    Claim(id="gblend.modalities_overfit_differently",
          paper=PAPER,
          statement="The modalities overfit and generalise at different rates: their Overfitting-to-Generalization "
                    "Ratios differ (OGR curves per head over training).",
          paper_reports="modalities overfit and generalise at different rates (section 3.2, OGR)",
          criterion="ogr_ratio >= 2: the larger of the two unimodal models' OGR over the whole run "
                    "(checkpoint 0 -> last, mean over seeds) is at least twice the smaller",
          run=_run_cause,
          check=lambda m: m["ogr_ratio"] >= 2),
    Claim(id="gblend.offline_gblend_beats_naive",
          paper=PAPER,
          statement="Offline Gradient-Blending (weights from short per-head runs) beats naive joint training and "
                    "the best single modality.",
          paper_reports="G-Blend beats late fusion (71.4%) and RGB alone (72.6%) on Kinetics A+RGB (sections 4-5)",
          criterion="offline_gblend_acc > naive_acc and offline_gblend_acc > best_unimodal_acc (means over seeds)",
          run=lambda ctx: _run_fix(ctx, "offline_gblend"),
          check=lambda m: m["offline_gblend_acc"] > m["naive_acc"] and
          m["offline_gblend_acc"] > m["best_unimodal_acc"]),
    Claim(id="gblend.online_gblend_beats_naive",
          paper=PAPER,
          statement="Online Gradient-Blending (weights re-estimated every super-epoch) beats naive joint training "
                    "and the best single modality.",
          paper_reports="online G-Blend (weights re-estimated during training) also beats late fusion (section 4)",
          criterion="online_gblend_acc > naive_acc and online_gblend_acc > best_unimodal_acc (means over seeds)",
          run=lambda ctx: _run_fix(ctx, "online_gblend"),
          check=lambda m: m["online_gblend_acc"] > m["naive_acc"] and
          m["online_gblend_acc"] > m["best_unimodal_acc"]),
    Claim(id="gblend.beats_usual_remedies",
          paper=PAPER,
          statement="Gradient-Blending beats the usual remedies for multi-modal overfitting (dropout, early "
                    "stopping, mid fusion) and, beyond the paper, OGM-GE (Peng et al., CVPR 2022).",
          paper_reports="Kinetics A+RGB: dropout and mid-concat gain only 1.5 / 1.4 points over late fusion, early "
                        "stopping under-fits (Figure 1); G-Blend does better; OGM-GE is not in the paper",
          criterion="offline_gblend_acc > max(dropout, early_stop, mid_fusion, ogm_ge) accuracy (means over seeds)",
          run=_run_remedies,
          check=lambda m: m["offline_gblend_acc"] > m["best_remedy_acc"]),
]


# ---- `paperzoo train gblend_*` -------------------------------------------------------------------------------
@dataclass
class NaiveConfig(MultiModalConfig):
    pass


@dataclass
class UnimodalConfig(MultiModalConfig):
    modalities: tuple[str, ...] = ("image",)
    blend: Blend = "unimodal"


@dataclass
class OfflineConfig(MultiModalConfig):
    blend: Blend = "offline"


@dataclass
class OnlineConfig(MultiModalConfig):
    blend: Blend = "online"


@dataclass
class OgmConfig(MultiModalConfig):
    ogm_alpha: float = 0.8


TRAIN_METHODS = {
    "gblend_naive": TrainSpec("gblend_naive", "naive late fusion of AV-digits images + spoken digits "
                                              "(fusion=mid or dropout=0.5 for the baselines)",
                              NaiveConfig, MultiModalMethod),
    "gblend_unimodal": TrainSpec("gblend_unimodal", "one modality of AV-digits (modalities=audio for speech)",
                                 UnimodalConfig, MultiModalMethod),
    "gblend_offline": TrainSpec("gblend_offline", "offline Gradient-Blending: weights from short per-head runs",
                                OfflineConfig, build_offline),
    "gblend_online": TrainSpec("gblend_online", "online Gradient-Blending: weights re-estimated every super_epoch",
                               OnlineConfig, MultiModalMethod),
    "gblend_ogm": TrainSpec("gblend_ogm", "OGM-GE gradient modulation on naive late fusion (Peng et al. 2022)",
                            OgmConfig, MultiModalMethod),
}
