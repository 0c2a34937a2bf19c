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
from paperzoo.criteria import Precondition, at_least, at_most, beats, decide
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
    runs = Runs(epochs, super_epoch=ctx.pick(smoke=1, quick=3, full=5))
    for seed in ctx.seeds:
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


def _best_unimodal(runs: Runs) -> str:
    """The single modality with the higher mean test accuracy over seeds."""
    return max(MODALITIES, key=runs.mean)


def _ogr_whole_run(history: list[Checkpoint], head: str) -> float:
    return ogr_window(history[0].train_loss[head], history[0].val_loss[head], history[-1].train_loss[head],
                      history[-1].val_loss[head]).ogr


def _evidence(runs: Runs, names: list[str]) -> tuple[dict, dict]:
    """(values, per_seed): test accuracy per seed of each strategy in `names` and of the best single modality, and
    the whole-run OGR per seed of the naive model's fused head and of the best single-modality model (the regime)."""
    best = _best_unimodal(runs)
    per_seed = {f"{n}_acc": list(runs.test_acc[n]) for n in names}
    per_seed["best_unimodal_acc"] = list(runs.test_acc[best])
    per_seed["naive_fused_ogr"] = [_ogr_whole_run(h, FUSED) for h in runs.history["naive"]]
    per_seed["best_unimodal_ogr"] = [_ogr_whole_run(h, best) for h in runs.history[best]]
    return {"best_unimodal": best, "epochs": runs.epochs}, per_seed


REGIME = Precondition(
    "the regime of the paper: the naive multi-modal model overfits more than its best single modality, by the "
    "whole-run OGR of its fused head vs the best unimodal model's, paired over seeds",
    lambda m: beats("OGR, naive fused - best unimodal", m["naive_fused_ogr"], m["best_unimodal_ogr"]))


# ---- claim 1: the problem ------------------------------------------------------------------------------------
def _run_problem(ctx: RunContext) -> Measurement:
    runs = _shared(ctx)
    names = ["image", "audio", "naive"]
    values, per_seed = _evidence(runs, names)
    fig = _accuracy_figure(ctx, runs, names, "unimodal vs naive late fusion")
    return Measurement(values, [fig], per_seed=per_seed)


# ---- claim 2: the cause --------------------------------------------------------------------------------------

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
        values[f"{name}_final_overfit"] = round(statistics.fmean(h[-1].val_loss[head] - h[-1].train_loss[head]
                                                                 for h in runs.history[name]), 4)
    ax_o.set(xlabel="epoch", ylabel="O_N = L^V - L^T (nats)", title="overfitting per modality")
    ax_r.set(xlabel="epoch N+n", ylabel=f"OGR over n={n} epochs", yscale="log", title="OGR = |dO / dG|")
    ax_o.legend()
    ax_r.legend()
    path = plotting.save(fig, ctx.figure_path("ogr_curves.png"))
    ogr = {m: [_ogr_whole_run(h, m) for h in runs.history[m]] for m in MODALITIES}
    fast, slow = sorted(MODALITIES, key=lambda m: statistics.fmean(ogr[m]), reverse=True)
    per_seed = {"image_ogr": ogr["image"], "audio_ogr": ogr["audio"],
                "ogr_ratio_fast_over_slow": [f / s for f, s in zip(ogr[fast], ogr[slow])]}
    values = {"fast_overfitting_modality": fast,
              **{k: v for k, v in values.items() if k.endswith("_final_overfit")}}
    return Measurement(values, [path], per_seed=per_seed,
                       notes="OGR over the whole run (checkpoint 0 -> last) per seed; curves: first seed")


# ---- claims 3 and 4: the fix ---------------------------------------------------------------------------------
def _run_fix(ctx: RunContext, variant: str) -> Measurement:
    runs = _shared(ctx)
    names = ["image", "audio", "naive", variant]
    values, per_seed = _evidence(runs, names)
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
    return Measurement(values, figures, per_seed=per_seed)


def _check_fix(m: dict, variant: str):
    return decide(beats(f"{variant} - naive accuracy", m[f"{variant}_acc"], m["naive_acc"]),
                  beats(f"{variant} - best unimodal accuracy", m[f"{variant}_acc"], m["best_unimodal_acc"]))


# ---- claim 5: vs the usual remedies --------------------------------------------------------------------------
REMEDIES = ["dropout", "early_stop", "mid_fusion", "ogm_ge"]


def _run_remedies(ctx: RunContext) -> Measurement:
    runs = _shared(ctx)
    names = ["naive", *REMEDIES, "offline_gblend", "online_gblend"]
    values, per_seed = _evidence(runs, names)
    best = max(REMEDIES, key=runs.mean)
    values["best_remedy"] = best
    per_seed["best_remedy_acc"] = list(runs.test_acc[best])
    fig = _accuracy_figure(ctx, runs, names, "G-Blend vs the usual remedies")
    return Measurement(values, [fig], per_seed=per_seed)


CLAIMS = [
    Claim(id="gblend.naive_fusion_no_better",
          paper=PAPER,
          statement="Naive late-fusion multi-modal training is no better than (or worse than) its best single "
                    "modality (here: PCA-degraded MNIST images + espeak-ng spoken digits in noise).",
          paper_reports="Kinetics top-1: RGB 72.6% vs audio+RGB late fusion 71.4% (Table 1)",
          criterion="paired over seeds (95% t-interval): naive_acc - best_unimodal_acc <= 0 (test accuracy; the "
                    "best single modality by mean accuracy)",
          run=_run_problem,
          check=lambda m: at_most("naive - best unimodal accuracy",
                                  [a - b for a, b in zip(m["naive_acc"], m["best_unimodal_acc"])], 0.0),
          preconditions=(REGIME,)),
    Claim(id="gblend.modalities_overfit_differently",
          paper=PAPER,
          statement="The modalities overfit and generalise at different rates: their Overfitting-to-Generalization "
                    "Ratios differ (OGR curves per head over training).",
          paper_reports="modalities overfit and generalise at different rates (section 3.2, OGR)",
          criterion="over seeds (95% t-interval): the per-seed ratio of the faster-overfitting unimodal model's "
                    "whole-run OGR (checkpoint 0 -> last) to the other's >= 2",
          run=_run_cause,
          check=lambda m: at_least("OGR, fast / slow modality", m["ogr_ratio_fast_over_slow"], 2.0)),
    Claim(id="gblend.offline_gblend_beats_naive",
          paper=PAPER,
          statement="Offline Gradient-Blending (weights from short per-head runs) beats naive joint training and "
                    "the best single modality.",
          paper_reports="G-Blend beats late fusion (71.4%) and RGB alone (72.6%) on Kinetics A+RGB (sections 4-5)",
          criterion="paired over seeds (95% t-intervals): offline_gblend_acc - naive_acc > 0 and offline_gblend_acc "
                    "- best_unimodal_acc > 0",
          run=lambda ctx: _run_fix(ctx, "offline_gblend"),
          check=lambda m: _check_fix(m, "offline_gblend"),
          preconditions=(REGIME,)),
    Claim(id="gblend.online_gblend_beats_naive",
          paper=PAPER,
          statement="Online Gradient-Blending (weights re-estimated every super-epoch) beats naive joint training "
                    "and the best single modality.",
          paper_reports="online G-Blend (weights re-estimated during training) also beats late fusion (section 4)",
          criterion="paired over seeds (95% t-intervals): online_gblend_acc - naive_acc > 0 and online_gblend_acc "
                    "- best_unimodal_acc > 0",
          run=lambda ctx: _run_fix(ctx, "online_gblend"),
          check=lambda m: _check_fix(m, "online_gblend"),
          preconditions=(REGIME,)),
    Claim(id="gblend.beats_usual_remedies",
          paper=PAPER,
          statement="Gradient-Blending beats the usual remedies for multi-modal overfitting (dropout, early "
                    "stopping, mid fusion) and, beyond the paper, OGM-GE (Peng et al., CVPR 2022).",
          paper_reports="Kinetics A+RGB: dropout and mid-concat gain only 1.5 / 1.4 points over late fusion, early "
                        "stopping under-fits (Figure 1); G-Blend does better; OGM-GE is not in the paper",
          criterion="paired over seeds (95% t-interval): offline_gblend_acc - best remedy's accuracy > 0 (the remedy "
                    "among dropout, early_stop, mid_fusion, ogm_ge with the best mean)",
          run=_run_remedies,
          check=lambda m: beats("offline G-Blend - best remedy accuracy", m["offline_gblend_acc"],
                                m["best_remedy_acc"]),
          preconditions=(REGIME,)),
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
