"""The claims of "Vision Transformers Need Registers" (Darcet et al., ICLR 2024, arXiv 2309.16588), measured on
small ViTs (patch 4 on real 28x28 Fashion-MNIST; MNIST digits if it is not installed) trained once with 0 and once
with 4 registers; the `paperzoo train vit_registers` method; the `paperzoo analyze-vit` verb.

Design: 28x28 images cut into 7x7 patches of 4x4 pixels give a 49-token grid with much exactly-black background
(the redundant, low-information patches where the paper finds artifacts), and two ViTs train in under a minute on
a CPU. The paper finds artifacts only in large models trained long (ViT-L and up, after ~1/3 of training), so at
the quick scale the artifact claims are expected not to reproduce; the verdicts report what was measured.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from paperzoo import plotting
from paperzoo.catalog import CliVerb, TrainSpec
from paperzoo.claims import Claim, Measurement, RunContext, SkipClaim
from paperzoo.engine.trainer import TrainConfig, Trainer
from paperzoo.registers import figures
from paperzoo.registers.analyze import add_arguments as _analyze_arguments
from paperzoo.registers.analyze import run as _analyze_run
from paperzoo.registers.study import study
from paperzoo.registers.train import RegistersClassification, RegistersConfig, load_images

PAPER = "Darcet et al., ICLR 2024, arXiv 2309.16588"
REGISTERS = (0, 4)
MIN_OUTLIER_FRACTION = 0.01  # the paper: ~2% of tokens are high-norm in DINOv2 ViT-g
ACCURACY_MARGIN = 0.01  # registers may cost at most 1 point of test accuracy


def _config(ctx: RunContext, num_registers: int) -> RegistersConfig:
    steps = ctx.pick(smoke=40, quick=600, full=30000)
    train = TrainConfig(steps=steps, batch_size=ctx.pick(32, 64, 256), optimizer="adamw", lr=ctx.pick(2e-3, 2e-3, 1e-3),
                        weight_decay=0.05, schedule="cosine", warmup_steps=max(1, steps // 20), grad_clip=1.0,
                        log_every=max(1, steps // 30), eval_every=0, seed=ctx.seed, progress=False,
                        amp=ctx.pick("off", "off", "bf16"))
    return RegistersConfig(num_registers=num_registers, dataset=ctx.pick("mnist_5k", "auto", "auto"),
                           n_train=ctx.pick(1000, 20000, 0),
                           n_test=ctx.pick(500, 10000, 10000), embed_dim=ctx.pick(32, 64, 384),
                           depth=ctx.pick(2, 4, 12), num_heads=ctx.pick(2, 2, 6), max_shift=ctx.pick(0, 0, 2),
                           train=train)


def _train_both(ctx: RunContext) -> dict:
    if ctx.preset == "full" and not torch.cuda.is_available():
        raise SkipClaim("needs a GPU (ViT-S-size models, 30k steps on the 60k Fashion-MNIST images)")
    base = _config(ctx, 0)
    data = load_images(base.dataset, base.n_train)
    runs = {}
    for r in REGISTERS:
        method = RegistersClassification(replace(base, num_registers=r), data)
        result = Trainer(method, method.cfg.train).fit()
        runs[r] = (result.model.cpu().eval(), method, result)
    return runs


def _analyse(ctx: RunContext) -> dict:
    runs = ctx.shared("registers.models", lambda: _train_both(ctx))
    n = ctx.pick(200, 1000, 4000)
    method = runs[0][1]
    raw, labels = method.data.test_x[:n], method.data.test_y[:n]
    probe_tokens = ctx.pick(400, 3000, 3000)
    studies = {f"{r} registers": study(model, m.normalize(raw), raw, labels, max_probe_tokens=probe_tokens,
                                       seed=ctx.seed)
               for r, (model, m, _) in runs.items()}
    return {"runs": runs, "studies": studies, "raw": raw, "dataset": method.data.name}


def _clean(values: dict) -> dict:
    """NaN (too few outlier tokens to measure) -> None, floats rounded for the report."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else round(v, 4) if isinstance(v, float) else v)
            for k, v in values.items()}


def _finite(*xs) -> bool:
    return all(x is not None for x in xs)


def _get(ctx: RunContext) -> tuple[dict, dict, dict]:
    a = ctx.shared("registers.analysis", lambda: _analyse(ctx))
    return a, a["studies"]["0 registers"].values, a["studies"]["4 registers"].values


def _run_outliers(ctx: RunContext) -> Measurement:
    a, v0, v4 = _get(ctx)
    paths = [figures.norm_histograms(ctx.figure_path("norm_histograms.png"), a["studies"]),
             figures.outlier_fraction_curve(ctx.figure_path("outlier_fraction_by_layer.png"), a["studies"])]
    s0 = a["studies"]["0 registers"]
    paths.append(figures.image_maps(ctx.figure_path("outlier_maps.png"), a["raw"][:6],
                                    {"norm (0 reg)": s0.norms[:6].reshape(6, *s0.grid),
                                     "norm (4 reg)": a["studies"]["4 registers"].norms[:6].reshape(6, *s0.grid)}))
    return Measurement(_clean({
        "dataset": a["dataset"],
        "outlier_fraction_0reg": v0["outlier_fraction"], "outlier_fraction_4reg": v4["outlier_fraction"],
        "first_outlier_layer_0reg": v0["first_outlier_layer"], "first_outlier_layer_4reg": v4["first_outlier_layer"],
        "max_over_median_0reg": v0["max_over_median"], "max_over_median_4reg": v4["max_over_median"],
        "norm_median_0reg": v0["norm_median"], "otsu_threshold_0reg": v0["otsu_threshold"],
        "layers": len(s0.layer_fraction)}), paths,
        notes="high-norm = patch-token norm (last block, before the final norm) > 3x the median norm")


def _run_redundant(ctx: RunContext) -> Measurement:
    a, v0, _ = _get(ctx)
    path = figures.neighbor_cosine_hist(ctx.figure_path("neighbor_cosine.png"), a["studies"]["0 registers"])
    return Measurement(_clean({"outlier_tokens_0reg": v0["outlier_tokens"],
                               "neighbor_cos_outlier": v0["neighbor_cos_outlier"],
                               "neighbor_cos_normal": v0["neighbor_cos_normal"]}), [path])


def _run_information(ctx: RunContext) -> Measurement:
    a, v0, _ = _get(ctx)
    path = figures.probe_bars(ctx.figure_path("probes.png"), v0)
    keys = ["outlier_tokens", "images_with_outlier", "position_acc_normal", "position_acc_outlier",
            "pixel_mse_normal", "pixel_mse_outlier", "class_acc_cls", "class_acc_normal", "class_acc_outlier",
            "class_acc_topnorm"]
    return Measurement(_clean({k: v0[k] for k in keys}), [path],
                       notes="probes trained and tested per token type on equal numbers of tokens (0-register model); "
                             "class_acc_topnorm: the highest-norm patch of every image, outlier or not")


def _run_accuracy(ctx: RunContext) -> Measurement:
    a, _, _ = _get(ctx)
    series, values = {}, {}
    for r, (_, _, result) in a["runs"].items():
        values[f"test_acc_{r}reg"] = result.final["test_acc"]
        series[f"{r} registers (test {result.final['test_acc']:.3f})"] = result.history.series("train", "acc")
    values["test_images"] = a["runs"][0][1].cfg.n_test
    values["steps"] = a["runs"][0][1].cfg.train.steps
    path = plotting.curves(ctx.figure_path("accuracy.png"), series, "step", "training-batch accuracy",
                                   f"{a['dataset']}: accuracy with and without registers")
    return Measurement(_clean(values), [path])


def _run_attention(ctx: RunContext) -> Measurement:
    a, v0, v4 = _get(ctx)
    s0, s4 = a["studies"]["0 registers"], a["studies"]["4 registers"]
    path = figures.image_maps(ctx.figure_path("cls_attention.png"), a["raw"][:6],
                              {"CLS attn, 0 reg": s0.cls_maps[:6].mean(1), "CLS attn, 4 reg": s4.cls_maps[:6].mean(1)})
    return Measurement(_clean({
        "background_fraction": v0["background_fraction"],
        "cls_attention_background_0reg": v0.get("cls_attention_background", math.nan),
        "cls_attention_background_4reg": v4.get("cls_attention_background", math.nan),
        "cls_attention_outliers_0reg": v0["cls_attention_outliers"],
        "cls_attention_max_0reg": v0["cls_attention_max"], "cls_attention_max_4reg": v4["cls_attention_max"]}),
        [path], notes="last block, head-averaged [CLS] attention over patches (prefix tokens dropped, renormalised); "
                      "background = patches with mean pixel < 0.02")


CLAIMS = [
    Claim(id="registers.outliers_without_registers", paper=PAPER,
          statement="ViTs without registers develop high-norm outlier tokens (~2% of the patch tokens), which "
                    "vanish when registers are added.",
          paper_reports="DINOv2 ViT-g: ~2.4% of tokens with norm > 150 (~10x the others), from ~layer 15 of 40; "
                        "none with 4 registers (Fig. 3, 4a, 7)",
          criterion="outlier_fraction_0reg >= 0.01 and outlier_fraction_4reg <= outlier_fraction_0reg / 5 "
                    "(outlier: norm > 3x median)",
          run=_run_outliers,
          check=lambda m: m["outlier_fraction_0reg"] >= MIN_OUTLIER_FRACTION
          and m["outlier_fraction_4reg"] <= m["outlier_fraction_0reg"] / 5),
    Claim(id="registers.outliers_on_redundant_patches", paper=PAPER,
          statement="High-norm tokens appear on patches that are very similar to their 4 neighbours after the "
                    "patch embedding (redundant patches).",
          paper_reports="neighbour cosine of high-norm patches concentrated near 1, normal patches much lower "
                        "(Fig. 5a)",
          criterion="outlier_tokens_0reg >= 20 and neighbor_cos_outlier > neighbor_cos_normal",
          run=_run_redundant,
          check=lambda m: m["outlier_tokens_0reg"] >= 20 and _finite(m["neighbor_cos_outlier"])
          and m["neighbor_cos_outlier"] > m["neighbor_cos_normal"]),
    Claim(id="registers.outliers_hold_global_information", paper=PAPER,
          statement="High-norm tokens hold less local information (their position and pixels are predicted worse "
                    "by linear probes) and more global information (one such token classifies the image better "
                    "than a normal patch).",
          paper_reports="position top-1 41.7% normal vs 22.8% outlier; pixel L2 18.38 vs 25.23 (Table 1); "
                        "class probe on an outlier token far above a normal one, close to [CLS] (Fig. 5b)",
          criterion="position_acc_outlier < position_acc_normal and pixel_mse_outlier > pixel_mse_normal and "
                    "class_acc_outlier > class_acc_normal (all measured on >= 20 tokens)",
          run=_run_information,
          check=lambda m: _finite(m["position_acc_outlier"], m["pixel_mse_outlier"], m["class_acc_outlier"],
                                  m["position_acc_normal"], m["pixel_mse_normal"], m["class_acc_normal"])
          and m["position_acc_outlier"] < m["position_acc_normal"] and m["pixel_mse_outlier"] > m["pixel_mse_normal"]
          and m["class_acc_outlier"] > m["class_acc_normal"]),
    Claim(id="registers.no_accuracy_cost", paper=PAPER,
          statement="Adding registers does not cost accuracy.",
          paper_reports="ImageNet linear probe with/without 4 registers: DeiT-III 84.7/84.7, OpenCLIP 78.0/78.1, "
                        "DINOv2 84.3/84.8 (Table 2)",
          criterion=f"test_acc_4reg >= test_acc_0reg - {ACCURACY_MARGIN}",
          run=_run_accuracy,
          check=lambda m: m["test_acc_4reg"] >= m["test_acc_0reg"] - ACCURACY_MARGIN),
    Claim(id="registers.cleaner_attention_maps", paper=PAPER,
          statement="With registers, the [CLS] attention maps of the last layer are cleaner: less attention lands "
                    "on uninformative background patches.",
          paper_reports="attention maps without artifacts (Fig. 1, 9); LOST object discovery +20 corloc points for "
                        "DINOv2 (Table 3)",
          criterion="cls_attention_background_4reg <= 0.9 x cls_attention_background_0reg",
          run=_run_attention,
          check=lambda m: _finite(m["cls_attention_background_0reg"], m["cls_attention_background_4reg"])
          and m["cls_attention_background_4reg"] <= 0.9 * m["cls_attention_background_0reg"]),
]

TRAIN_METHODS = {"vit_registers": TrainSpec(
    "vit_registers", "small ViT with registers (registers.num_registers) on real 28x28 Fashion-MNIST",
    RegistersConfig, RegistersClassification)}

CLI_VERBS = {"analyze-vit": CliVerb(
    "analyze-vit", "artifact analysis of a (DINOv2) ViT checkpoint: norms, outliers, probes, attention (HTML)",
    _analyze_arguments, _analyze_run)}
