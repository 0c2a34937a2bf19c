"""The claims of "Vision Transformers Need Registers" (Darcet et al., ICLR 2024, arXiv 2309.16588), measured on
small ViTs (patch 4 on real 28x28 Fashion-MNIST; MNIST digits if it is not installed) trained once with 0 and once
with 4 registers; the `paperzoo train vit_registers` method; the `paperzoo analyze-vit` verb.

Design: 28x28 images cut into 7x7 patches of 4x4 pixels give a 49-token grid with much exactly-black background
(the redundant, low-information patches where the paper finds artifacts), and two ViTs train in under a minute on
a CPU. The paper finds artifacts only in large models trained long (ViT-L and up, after ~1/3 of training): the
artifact claims state that scale, and the presence of enough outlier tokens to measure, as preconditions, so a
small model that grows no outliers makes them `inconclusive`, not refuted. Every measurement runs over the preset's
seeds (two models trained per seed).
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from paperzoo import plotting
from paperzoo.catalog import CliVerb, TrainSpec
from paperzoo.claims import Claim, Measurement, RunContext, SkipClaim
from paperzoo.criteria import Precondition, at_least, at_most, beats, decide, no_worse
from paperzoo.engine.trainer import TrainConfig, Trainer
from paperzoo.registers import figures
from paperzoo.registers.analyze import add_arguments as _analyze_arguments
from paperzoo.registers.analyze import run as _analyze_run
from paperzoo.registers.study import MIN_TOKENS, study
from paperzoo.registers.train import RegistersClassification, RegistersConfig, load_images

PAPER = "Darcet et al., ICLR 2024, arXiv 2309.16588"
REGISTERS = (0, 4)
MIN_OUTLIER_FRACTION = 0.01  # the paper: ~2% of tokens are high-norm in DINOv2 ViT-g
ACCURACY_MARGIN = 0.01  # registers may cost at most 1 point of test accuracy
PAPER_SCALE_PARAMETERS = 300e6  # ViT-L: the smallest model in which the paper sees outlier tokens (Fig. 4)


def _config(ctx: RunContext, num_registers: int, seed: int) -> RegistersConfig:
    steps = ctx.pick(smoke=40, quick=600, full=30000)
    train = TrainConfig(steps=steps, batch_size=ctx.pick(32, 64, 256), optimizer="adamw", lr=ctx.pick(2e-3, 2e-3, 1e-3),
                        weight_decay=0.05, schedule="cosine", warmup_steps=max(1, steps // 20), grad_clip=1.0,
                        log_every=max(1, steps // 30), eval_every=0, seed=seed, progress=False,
                        amp=ctx.pick("off", "off", "bf16"))
    return RegistersConfig(num_registers=num_registers, dataset=ctx.pick("mnist_5k", "auto", "auto"),
                           n_train=ctx.pick(1000, 20000, 0),
                           n_test=ctx.pick(500, 10000, 10000), embed_dim=ctx.pick(32, 64, 384),
                           depth=ctx.pick(2, 4, 12), num_heads=ctx.pick(2, 2, 6), max_shift=ctx.pick(0, 0, 2),
                           train=train)


def _train_both(ctx: RunContext, seed: int) -> dict:
    if ctx.preset == "full" and not torch.cuda.is_available():
        raise SkipClaim("needs a GPU (ViT-S-size models, 30k steps on the 60k Fashion-MNIST images)")
    base = _config(ctx, 0, seed)
    data = load_images(base.dataset, base.n_train)
    runs = {}
    for r in REGISTERS:
        method = RegistersClassification(replace(base, num_registers=r), data)
        result = Trainer(method, method.cfg.train).fit()
        runs[r] = (result.model.cpu().eval(), method, result)
    return runs


def _analyse(ctx: RunContext, seed: int) -> dict:
    runs = ctx.shared(f"registers.models/{seed}", lambda: _train_both(ctx, seed))
    n = ctx.pick(200, 1000, 4000)
    method = runs[0][1]
    raw, labels = method.data.test_x[:n], method.data.test_y[:n]
    probe_tokens = ctx.pick(400, 3000, 3000)
    studies = {f"{r} registers": study(model, m.normalize(raw), raw, labels, max_probe_tokens=probe_tokens,
                                       seed=seed)
               for r, (model, m, _) in runs.items()}
    return {"runs": runs, "studies": studies, "raw": raw, "dataset": method.data.name,
            "parameters": sum(p.numel() for p in runs[0][0].parameters())}


def _clean(values: dict) -> dict:
    """NaN (too few outlier tokens to measure) -> None, floats rounded for the report."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else round(v, 4) if isinstance(v, float) else v)
            for k, v in values.items()}


def _none_if_nan(v):
    return None if isinstance(v, float) and math.isnan(v) else v


def _get(ctx: RunContext, seed: int) -> tuple[dict, dict, dict]:
    a = ctx.shared(f"registers.analysis/{seed}", lambda: _analyse(ctx, seed))
    return a, a["studies"]["0 registers"].values, a["studies"]["4 registers"].values


def _per_seed(ctx: RunContext, keys: dict[str, tuple[int, str]]) -> dict[str, list]:
    """{name: (registers, study key)} measured on every seed's pair of models; NaN (too few tokens) -> None."""
    def measure(seed: int) -> dict:
        _, v0, v4 = _get(ctx, seed)
        return {name: _none_if_nan({0: v0, 4: v4}[r].get(key, math.nan)) for name, (r, key) in keys.items()}
    return ctx.over_seeds(measure, "ViT pairs")


def _measurable(*names: str) -> Precondition:
    return Precondition(
        f"enough outlier tokens to measure: the no-register model has >= {MIN_TOKENS} high-norm tokens in each "
        "half of the probe images on every seed (else these quantities are undefined)",
        lambda m: all(v is not None for name in names for v in m[name]), ("outlier_tokens_0reg",))


PAPER_SCALE = Precondition(
    "the model is at the scale where the paper sees outlier tokens: >= 300M parameters (ViT-L and up, Fig. 4), "
    "trained long",
    lambda m: m["parameters"] >= PAPER_SCALE_PARAMETERS, ("parameters",))


def _run_outliers(ctx: RunContext) -> Measurement:
    per_seed = _per_seed(ctx, {"outlier_fraction_0reg": (0, "outlier_fraction"),
                               "outlier_fraction_4reg": (4, "outlier_fraction"),
                               "max_over_median_0reg": (0, "max_over_median"),
                               "max_over_median_4reg": (4, "max_over_median")})
    a, v0, v4 = _get(ctx, ctx.seeds[0])
    paths = [figures.norm_histograms(ctx.figure_path("norm_histograms.png"), a["studies"]),
             figures.outlier_fraction_curve(ctx.figure_path("outlier_fraction_by_layer.png"), a["studies"])]
    s0 = a["studies"]["0 registers"]
    paths.append(figures.image_maps(ctx.figure_path("outlier_maps.png"), a["raw"][:6],
                                    {"norm (0 reg)": s0.norms[:6].reshape(6, *s0.grid),
                                     "norm (4 reg)": a["studies"]["4 registers"].norms[:6].reshape(6, *s0.grid)}))
    return Measurement(_clean({
        "dataset": a["dataset"], "parameters": a["parameters"],
        "first_outlier_layer_0reg_first_seed": v0["first_outlier_layer"],
        "norm_median_0reg_first_seed": v0["norm_median"], "otsu_threshold_0reg_first_seed": v0["otsu_threshold"],
        "layers": len(s0.layer_fraction)}), paths, per_seed=per_seed,
        notes="high-norm = patch-token norm (last block, before the final norm) > 3x the median norm; figures: "
              "first seed")


def _check_outliers(m: dict):
    vanish = [f0 / 5 - f4 for f0, f4 in zip(m["outlier_fraction_0reg"], m["outlier_fraction_4reg"])]
    return decide(at_least("outlier fraction, 0 registers", m["outlier_fraction_0reg"], MIN_OUTLIER_FRACTION),
                  at_least("outlier fraction 0 reg / 5 - 4 reg", vanish, 0.0))


def _run_redundant(ctx: RunContext) -> Measurement:
    per_seed = _per_seed(ctx, {"outlier_tokens_0reg": (0, "outlier_tokens"),
                               "neighbor_cos_outlier": (0, "neighbor_cos_outlier"),
                               "neighbor_cos_normal": (0, "neighbor_cos_normal")})
    a, _, _ = _get(ctx, ctx.seeds[0])
    path = figures.neighbor_cosine_hist(ctx.figure_path("neighbor_cosine.png"), a["studies"]["0 registers"])
    return Measurement({"parameters": a["parameters"]}, [path], per_seed=per_seed)


INFORMATION_KEYS = ("outlier_tokens", "images_with_outlier", "position_acc_normal", "position_acc_outlier",
                    "pixel_mse_normal", "pixel_mse_outlier", "class_acc_cls", "class_acc_normal", "class_acc_outlier",
                    "class_acc_topnorm")


def _run_information(ctx: RunContext) -> Measurement:
    per_seed = _per_seed(ctx, {(k if k != "outlier_tokens" else "outlier_tokens_0reg"): (0, k)
                               for k in INFORMATION_KEYS})
    a, v0, _ = _get(ctx, ctx.seeds[0])
    path = figures.probe_bars(ctx.figure_path("probes.png"), v0)
    return Measurement({"parameters": a["parameters"]}, [path], per_seed=per_seed,
                       notes="probes trained and tested per token type on equal numbers of tokens (0-register model); "
                             "class_acc_topnorm: the highest-norm patch of every image, outlier or not; figure: "
                             "first seed")


def _check_information(m: dict):
    return decide(beats("position accuracy, normal - outlier", m["position_acc_normal"], m["position_acc_outlier"]),
                  beats("pixel MSE, outlier - normal", m["pixel_mse_outlier"], m["pixel_mse_normal"]),
                  beats("class accuracy, outlier - normal", m["class_acc_outlier"], m["class_acc_normal"]))


def _run_accuracy(ctx: RunContext) -> Measurement:
    series = {}

    def measure(seed: int) -> dict:
        a, _, _ = _get(ctx, seed)
        return {f"test_acc_{r}reg": result.final["test_acc"] for r, (_, _, result) in a["runs"].items()}

    per_seed = ctx.over_seeds(measure, "ViT pairs")
    a, _, _ = _get(ctx, ctx.seeds[0])
    for r, (_, _, result) in a["runs"].items():
        series[f"{r} registers (test {result.final['test_acc']:.3f})"] = result.history.series("train", "acc")
    values = {"test_images": a["runs"][0][1].cfg.n_test, "steps": a["runs"][0][1].cfg.train.steps, "chance": 0.1}
    path = plotting.curves(ctx.figure_path("accuracy.png"), series, "step", "training-batch accuracy",
                           f"{a['dataset']}: accuracy with and without registers (first seed)")
    return Measurement(values, [path], per_seed=per_seed)


def _run_attention(ctx: RunContext) -> Measurement:
    per_seed = _per_seed(ctx, {"background_fraction": (0, "background_fraction"),
                               "cls_attention_background_0reg": (0, "cls_attention_background"),
                               "cls_attention_background_4reg": (4, "cls_attention_background"),
                               "cls_attention_max_0reg": (0, "cls_attention_max"),
                               "cls_attention_max_4reg": (4, "cls_attention_max")})
    a, _, _ = _get(ctx, ctx.seeds[0])
    s0, s4 = a["studies"]["0 registers"], a["studies"]["4 registers"]
    path = figures.image_maps(ctx.figure_path("cls_attention.png"), a["raw"][:6],
                              {"CLS attn, 0 reg": s0.cls_maps[:6].mean(1), "CLS attn, 4 reg": s4.cls_maps[:6].mean(1)})
    return Measurement({}, [path], per_seed=per_seed,
                       notes="last block, head-averaged [CLS] attention over patches (prefix tokens dropped, "
                             "renormalised); background = patches with mean pixel < 0.02; figure: first seed")


CLAIMS = [
    Claim(id="registers.outliers_without_registers", paper=PAPER,
          statement="ViTs without registers develop high-norm outlier tokens (~2% of the patch tokens), which "
                    "vanish when registers are added.",
          paper_reports="DINOv2 ViT-g: ~2.4% of tokens with norm > 150 (~10x the others), from ~layer 15 of 40; "
                        "none with 4 registers (Fig. 3, 4a, 7)",
          criterion="over seeds (95% t-intervals): outlier_fraction_0reg >= 0.01 and outlier_fraction_0reg / 5 - "
                    "outlier_fraction_4reg >= 0 (outlier: norm > 3x median)",
          run=_run_outliers,
          check=_check_outliers,
          preconditions=(PAPER_SCALE,)),
    Claim(id="registers.outliers_on_redundant_patches", paper=PAPER,
          statement="High-norm tokens appear on patches that are very similar to their 4 neighbours after the "
                    "patch embedding (redundant patches).",
          paper_reports="neighbour cosine of high-norm patches concentrated near 1, normal patches much lower "
                        "(Fig. 5a)",
          criterion="paired over seeds (95% t-interval): neighbor_cos_outlier - neighbor_cos_normal > 0",
          run=_run_redundant,
          check=lambda m: beats("neighbour cosine, outlier - normal", m["neighbor_cos_outlier"],
                                m["neighbor_cos_normal"]),
          preconditions=(_measurable("neighbor_cos_outlier"),)),
    Claim(id="registers.outliers_hold_global_information", paper=PAPER,
          statement="High-norm tokens hold less local information (their position and pixels are predicted worse "
                    "by linear probes) and more global information (one such token classifies the image better "
                    "than a normal patch).",
          paper_reports="position top-1 41.7% normal vs 22.8% outlier; pixel L2 18.38 vs 25.23 (Table 1); "
                        "class probe on an outlier token far above a normal one, close to [CLS] (Fig. 5b)",
          criterion="paired over seeds (95% t-intervals): position_acc_normal - position_acc_outlier > 0, "
                    "pixel_mse_outlier - pixel_mse_normal > 0, class_acc_outlier - class_acc_normal > 0",
          run=_run_information,
          check=_check_information,
          preconditions=(_measurable("position_acc_outlier", "pixel_mse_outlier", "class_acc_outlier"),)),
    Claim(id="registers.no_accuracy_cost", paper=PAPER,
          statement="Adding registers does not cost accuracy.",
          paper_reports="ImageNet linear probe with/without 4 registers: DeiT-III 84.7/84.7, OpenCLIP 78.0/78.1, "
                        "DINOv2 84.3/84.8 (Table 2)",
          criterion=f"non-inferiority, paired over seeds (95% t-interval): test_acc_4reg - test_acc_0reg >= "
                    f"-{ACCURACY_MARGIN}",
          run=_run_accuracy,
          check=lambda m: no_worse("test accuracy, 4 - 0 registers", m["test_acc_4reg"], m["test_acc_0reg"],
                                   ACCURACY_MARGIN),
          preconditions=(Precondition(
              "both models trained: test accuracy >= 20 points above chance (10%) on every seed",
              lambda m: min(m["test_acc_0reg"] + m["test_acc_4reg"]) >= 0.3, ("test_acc_0reg", "test_acc_4reg")),)),
    Claim(id="registers.cleaner_attention_maps", paper=PAPER,
          statement="With registers, the [CLS] attention maps of the last layer are cleaner: less attention lands "
                    "on uninformative background patches.",
          paper_reports="attention maps without artifacts (Fig. 1, 9); LOST object discovery +20 corloc points for "
                        "DINOv2 (Table 3)",
          criterion="over seeds (95% t-interval): cls_attention_background_4reg / cls_attention_background_0reg "
                    "<= 0.9",
          run=_run_attention,
          check=lambda m: at_most("CLS attention on background, 4 reg / 0 reg",
                                  [b4 / b0 for b4, b0 in zip(m["cls_attention_background_4reg"],
                                                             m["cls_attention_background_0reg"])], 0.9),
          preconditions=(Precondition(
              "there is background to attend to: >= 10% of the patches are background on every seed",
              lambda m: min(m["background_fraction"]) >= 0.1, ("background_fraction",)),)),
]

TRAIN_METHODS = {"vit_registers": TrainSpec(
    "vit_registers", "small ViT with registers (registers.num_registers) on real 28x28 Fashion-MNIST",
    RegistersConfig, RegistersClassification)}

CLI_VERBS = {"analyze-vit": CliVerb(
    "analyze-vit", "artifact analysis of a (DINOv2) ViT checkpoint: norms, outliers, probes, attention (HTML)",
    _analyze_arguments, _analyze_run)}
