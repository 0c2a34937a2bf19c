"""The claims of "Vision Transformers Need Registers" (Darcet et al., ICLR 2024, arXiv 2309.16588), measured on
small ViTs (patch 4 on real 28x28 Fashion-MNIST; MNIST digits if it is not installed) trained once with 0 and once
with 4 registers, or, for the three outlier claims, on two DINOv2 checkpoints the user gives
(`paperzoo reproduce registers --weights NAME=PATH --weights NAME=PATH [--images DIR]`, one without and one with
registers, told apart by their register tokens); the `paperzoo train vit_registers` method; the
`paperzoo analyze-vit` verb.

Design: 28x28 images cut into 7x7 patches of 4x4 pixels give a 49-token grid with much exactly-black background
(the redundant, low-information patches where the paper finds artifacts), and two ViTs train in under a minute on
a CPU. The paper finds artifacts only in large models trained long (ViT-L and up, after ~1/3 of training): the
artifact claims state that scale, and the presence of enough outlier tokens to measure, as preconditions, so a
small model that grows no outliers makes them `inconclusive`, not refuted; at quick and standard, whose ViTs are far
below that scale, they are `skipped` at once, naming what would decide them, instead of training for them. The
accuracy claim trains both ViTs at a constant rate after the warm-up and judges them at their plateau (the shared
rule; standard trains to it). Every measurement of trained models runs over the preset's seeds (two models trained
per seed). On checkpoints, the analysis runs at the paper's 224 px on the
user's images (ImageNet-style folder) or the 20 bundled photos: the outlier fraction and the neighbour similarity
are judged on intervals over images, the probes over seeds that draw the halves of the images they train and test on.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from paperzoo import plotting
from paperzoo.catalog import CliVerb, TrainSpec
from paperzoo.claims import Claim, Measurement, RunContext, SkipClaim
from paperzoo.criteria import (Effect, Precondition, Test, at_least, beats, beats_over_splits, decide, late_trend,
                               log_at_most, no_worse, plateau)
from paperzoo.engine.trainer import TrainConfig, Trainer
from paperzoo.errors import UserError
from paperzoo.registers import figures
from paperzoo.registers.analyze import add_arguments as _analyze_arguments
from paperzoo.registers.analyze import run as _analyze_run
from paperzoo.registers.dinov2 import load_dinov2
from paperzoo.registers.images import image_set, normalize
from paperzoo.registers.model import VisionTransformer
from paperzoo.registers.study import MIN_TOKENS, Study, study
from paperzoo.registers.train import RegistersClassification, RegistersConfig, load_images

PAPER = "Darcet et al., ICLR 2024, arXiv 2309.16588"
REGISTERS = (0, 4)
MIN_OUTLIER_FRACTION = 0.01  # the paper: ~2% of tokens are high-norm in DINOv2 ViT-g
PAPER_NORM_THRESHOLD = 150.0  # the paper's absolute cut for DINOv2 (Fig. 3): reported beside the relative one
PROBE_WORKS = 0.2  # [CLS] class-probe accuracy below which the class probes measure nothing
ACCURACY_MARGIN = Effect(0.01, "a practical bound: 1 point of accuracy; the paper's Table 2 differences lie within "
                         "+-0.5 points")
VANISH = Effect(0.0, "the paper sees none left with 4 registers (Fig. 7); the allowance of a fifth is in the threshold")
NEIGHBOUR_GAP = Effect(0.05, "a practical bound: 0.05 of cosine; the paper's two histograms lie far further apart "
                             "(Fig. 5a)")
INFORMATION_GAPS = {
    "position": Effect(0.095, "half the paper's gap: position top-1 41.7% normal vs 22.8% outlier (Table 1)"),
    "pixel": Effect(0.0, "the paper's pixel L2 (18.38 vs 25.23, Table 1) is in units that do not carry over to this "
                         "model's normalised pixels: only a reversed sign refutes"),
    "class": Effect(0.05, "a practical bound: 5 points; the paper shows the outlier probe far above (Fig. 5b)")}
PAPER_SCALE_PARAMETERS = 300e6  # ViT-L: the smallest model in which the paper sees outlier tokens (Fig. 4)
CHECKPOINT_SIZE = 224  # the paper analyses DINOv2 at 224 px: 16x16 patches of 14 px (smoke: 56 px, 4x4)
MIN_IMAGES = 16  # >= 4,096 patch tokens at 224 px: a 2% fraction is ~80 tokens, over enough images for an interval


def _config(ctx: RunContext, num_registers: int, seed: int) -> RegistersConfig:
    # quick: what the 20-minute quick run affords, 2 models x 3 seeds; standard: the plateau of the no-register ViT
    # at a constant rate (pilot, 1 seed: test accuracy 0.79 -> 0.82 from step 1,500 to 2,000, flat after)
    steps = ctx.pick(smoke=40, quick=450, full=30000, standard=3000)
    # a constant rate after the warm-up: the plateau rule reads the test-accuracy trend of the second half, which a
    # decaying rate would confound with convergence
    train = TrainConfig(steps=steps, batch_size=ctx.pick(32, 64, 256), optimizer="adamw", lr=ctx.pick(2e-3, 2e-3, 1e-3),
                        weight_decay=0.05, schedule="constant", warmup_steps=max(1, steps // 20), grad_clip=1.0,
                        log_every=max(1, steps // 30), eval_every=max(1, steps // 8), seed=seed, progress=False,
                        amp=ctx.pick("off", "off", "bf16"))
    return RegistersConfig(num_registers=num_registers, dataset=ctx.pick("mnist_5k", "auto", "auto"),
                           n_train=ctx.pick(1000, 20000, 0),
                           n_test=ctx.pick(500, 5000, 10000), embed_dim=ctx.pick(32, 64, 384),
                           depth=ctx.pick(2, 4, 12), num_heads=ctx.pick(2, 2, 6), max_shift=ctx.pick(0, 0, 2),
                           train=train)


def _train_both(ctx: RunContext, seed: int) -> dict:
    if ctx.preset == "full" and not torch.cuda.is_available():
        raise SkipClaim("needs a GPU (ViT-S-size models, 30k steps on the 60k Fashion-MNIST images: still below the "
                        "ViT-L scale at which the paper sees outlier tokens, Fig. 4; for those, give official DINOv2 "
                        "ViT-L/14 checkpoints with and without registers with --weights)")
    base = _config(ctx, 0, seed)
    data = load_images(base.dataset, base.n_train)
    runs = {}
    for r in REGISTERS:
        method = RegistersClassification(replace(base, num_registers=r), data)
        result = Trainer(method, method.cfg.train).fit()
        runs[r] = (result.model.cpu().eval(), method, result)
    return runs


def _analyse(ctx: RunContext, seed: int) -> dict:
    runs = _models(ctx, seed)
    n = ctx.pick(200, 500, 4000)
    method = runs[0][1]
    raw, labels = method.data.test_x[:n], method.data.test_y[:n]
    # the probes (most of the cost) only where a claim reads them: on the model without registers
    studies = {f"{r} registers": study(model, m.normalize(raw), raw, labels, probes=r == 0,
                                       max_probe_tokens=ctx.pick(400, 1500, 3000), seed=seed)
               for r, (model, m, _) in runs.items()}
    return {"runs": runs, "studies": studies, "raw": raw, "dataset": method.data.name,
            "parameters": sum(p.numel() for p in runs[0][0].parameters()), "images": n,
            "title": f"{method.data.name}, {n} test images, first seed"}


def _load_checkpoints(weights: dict[str, str]) -> dict[int, tuple[str, VisionTransformer]]:
    """{0: (name, model without registers), 4: (name, model with registers)} from the user's two checkpoints, told
    apart by the register tokens in their state dicts; a `UserError` for anything else."""
    if len(weights) != 2:
        raise UserError(f"registers takes two checkpoints, one without and one with registers (e.g. --weights "
                        f"vitl14=dinov2_vitl14_pretrain.pth --weights vitl14_reg=dinov2_vitl14_reg4_pretrain.pth), "
                        f"got {len(weights)}: {', '.join(weights)}")
    models = {name: load_dinov2(path) for name, path in weights.items()}
    by_registers = {bool(m.num_registers): (name, m) for name, m in models.items()}
    if len(by_registers) != 2:
        counts = ", ".join(f"{name}: {m.num_registers}" for name, m in models.items())
        raise UserError(f"registers needs one checkpoint without registers and one with (register tokens: {counts})")
    (plain, m0), (reg, m4) = by_registers[False], by_registers[True]
    if (m0.embed_dim, len(m0.blocks)) != (m4.embed_dim, len(m4.blocks)):
        raise UserError(f"{plain} (width {m0.embed_dim}, {len(m0.blocks)} blocks) and {reg} (width {m4.embed_dim}, "
                        f"{len(m4.blocks)} blocks) are not the same model size: registers are compared on one size")
    return {0: by_registers[False], 4: by_registers[True]}


def check_inputs(weights: dict[str, str], images: str | None) -> None:
    """`paperzoo reproduce registers --weights ... [--images DIR]`: the checkpoints load and pair up, the folder
    holds images; checked before anything runs (a `UserError` otherwise)."""
    if images is not None and not weights:
        raise UserError("--images is for the checkpoints given with --weights (the trained models use their own "
                        "test images)")
    _load_checkpoints(weights)
    if images is not None:
        image_set(images, CHECKPOINT_SIZE, 1)


def _checkpoints(ctx: RunContext) -> dict:
    """The user's two checkpoints and the images they are analysed on (shared by the claims)."""
    models = _load_checkpoints(ctx.weights)
    size = ctx.pick(56, CHECKPOINT_SIZE, CHECKPOINT_SIZE)
    raw, labels, names = image_set(ctx.images, size, ctx.pick(32, 64, 1000))
    source = f"{len(names)} images from {ctx.images}" if ctx.images else f"{len(names)} bundled photos"
    return {"models": models, "raw": raw, "labels": labels, "names": names, "size": size,
            "title": f"{source}, {size} px"}


def _checkpoint_study(ctx: RunContext, r: int, seed: int) -> Study:
    """The analysis of checkpoint `r` (0 / 4 registers) with the images in the order drawn by `seed` (the probes
    train on the first half, test on the second)."""
    def run() -> Study:
        c = ctx.shared("registers.checkpoints", lambda: _checkpoints(ctx))
        order = torch.randperm(len(c["raw"]), generator=torch.Generator().manual_seed(seed))
        raw = c["raw"][order]
        labels = None if c["labels"] is None else c["labels"][order]
        return study(c["models"][r][1], normalize(raw), raw, labels, probes=r == 0,
                     max_probe_tokens=ctx.pick(400, 3000, 3000), seed=seed, batch=16)
    return ctx.shared(f"registers.checkpoint_study/{r}/{seed}", run)


def _clean(values: dict) -> dict:
    """NaN (too few outlier tokens to measure) -> None, floats rounded for the report."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else round(v, 4) if isinstance(v, float) else v)
            for k, v in values.items()}


def _none_if_nan(v):
    return None if isinstance(v, float) and math.isnan(v) else v


def _get(ctx: RunContext, seed: int) -> tuple[dict, dict, dict]:
    a = ctx.shared(f"registers.analysis/{seed}", lambda: _analyse(ctx, seed))
    return a, a["studies"]["0 registers"].values, a["studies"]["4 registers"].values


def _study_values(ctx: RunContext, r: int, seed: int, trained: bool) -> dict:
    """What the analysis measured on the model with `r` registers (0 or 4) of `seed`: the pair trained for that
    seed, or (unless `trained`) the user's checkpoint, with that seed's halves of the images."""
    if ctx.weights and not trained:
        return _checkpoint_study(ctx, r, seed).values
    return _get(ctx, seed)[1 + (r > 0)]


def _per_seed(ctx: RunContext, keys: dict[str, tuple[int, str]], trained: bool = False) -> dict[str, list]:
    """{name: (registers, study key)} measured on every seed; NaN (too few tokens) -> None."""
    def measure(seed: int) -> dict:
        return {name: _none_if_nan(_study_values(ctx, r, seed, trained).get(key, math.nan))
                for name, (r, key) in keys.items()}
    return ctx.over_seeds(measure, "ViT pairs")


def _measurable(*names: str) -> Precondition:
    return Precondition(
        f"enough outlier tokens to measure: the no-register model has >= {MIN_TOKENS} high-norm tokens in each "
        "half of the probe images on every seed (else these quantities are undefined; on checkpoints, the "
        "neighbour similarity needs >= 2 x that many in all)",
        lambda m: all(v is not None for name in names for v in m[name]), ("outlier_tokens_0reg",))


PAPER_SCALE = Precondition(
    "the model is at the scale where the paper sees outlier tokens: >= 300M parameters (ViT-L and up, Fig. 4), "
    "trained long (official DINOv2 checkpoints: `--weights`)",
    lambda m: m["parameters"] >= PAPER_SCALE_PARAMETERS, ("parameters",))

ENOUGH_IMAGES = Precondition(
    f"enough images to measure a 2% fraction: >= {MIN_IMAGES} images (>= 4,096 patch tokens at 224 px)",
    lambda m: m["images"] >= MIN_IMAGES, ("images",))


def _trained_parameters(ctx: RunContext) -> int:
    """Parameters of the ViT (without registers) that this preset trains; built, not trained."""
    c = _config(ctx, 0, 0)
    vit = VisionTransformer(img_size=28, patch_size=c.patch_size, in_chans=1, embed_dim=c.embed_dim, depth=c.depth,
                            num_heads=c.num_heads, mlp_ratio=c.mlp_ratio, num_classes=10)
    return sum(p.numel() for p in vit.parameters())


def _skip_below_paper_scale(ctx: RunContext, checkpoints_decide: bool = True) -> None:
    """quick and standard train ViTs far below the scale at which the paper sees high-norm tokens, so the artifact
    claims cannot be decided there; they say so at once instead of spending the budget on training for them
    (smoke still runs them, as a check of the code path; full trains on a GPU). With --weights, the claims that
    run on checkpoints go on."""
    if ctx.preset not in ("quick", "standard") or (ctx.weights and checkpoints_decide):
        return
    remedy = ("give official DINOv2 checkpoints with and without registers, e.g. --weights "
              "vitl14=dinov2_vitl14_pretrain.pth --weights vitl14_reg=dinov2_vitl14_reg4_pretrain.pth"
              if checkpoints_decide else "this claim is measured on trained models only (its background patches are "
              "the black ones of the 28x28 training images): --preset full trains larger ViTs on a GPU, and its precondition says "
              "whether they grew outlier tokens")
    raise SkipClaim(f"not decidable at --preset {ctx.preset}: it needs a model at the paper's scale, where outlier "
                    f"tokens appear (>= {PAPER_SCALE_PARAMETERS / 1e6:.0f}M parameters, ViT-L and up, Fig. 4); the "
                    f"ViTs this preset trains have {_trained_parameters(ctx):,}; {remedy}")


def _first_seed_studies(ctx: RunContext) -> tuple[dict, str, dict]:
    """({"0 registers": study, "4 registers": study}, figure title, values that describe the models and images)
    of the first seed: the trained pair, or the user's checkpoints."""
    seed = ctx.seeds[0]
    if not ctx.weights:
        a, _, _ = _get(ctx, seed)
        return a["studies"], a["title"], {"dataset": a["dataset"], "parameters": a["parameters"],
                                          "images": a["images"]}
    c = ctx.shared("registers.checkpoints", lambda: _checkpoints(ctx))
    (plain, m0), (reg, m4) = c["models"][0], c["models"][4]
    studies = {f"{plain} (0 registers)": _checkpoint_study(ctx, 0, seed),
               f"{reg} ({m4.num_registers} registers)": _checkpoint_study(ctx, 4, seed)}
    return studies, c["title"], {
        "checkpoint_0reg": plain, "checkpoint_reg": reg, "registers": m4.num_registers, "width": m0.embed_dim,
        "depth": len(m0.blocks), "parameters": sum(p.numel() for p in m0.parameters()),
        "parameters_reg": sum(p.numel() for p in m4.parameters()), "images": len(c["names"]),
        "img_size": c["size"], "patch_tokens": int(studies[f"{plain} (0 registers)"].norms.numel())}


def _per_image(mask: torch.Tensor) -> list[float]:
    """(B, N) bool -> the fraction of True per image."""
    return [round(float(f), 6) for f in mask.float().mean(1)]


def _run_outliers(ctx: RunContext) -> Measurement:
    _skip_below_paper_scale(ctx)
    studies, title, described = _first_seed_studies(ctx)
    s0, s4 = studies.values()
    b = len(s0.norms)
    paths = [figures.norm_histograms(ctx.figure_path("norm_histograms.png"), studies, title),
             figures.outlier_fraction_curve(ctx.figure_path("outlier_fraction_by_layer.png"), studies, title)]
    raw = _first_seed_raw(ctx)
    shown = min(6, b)
    paths.append(figures.image_maps(ctx.figure_path("outlier_maps.png"), raw[:shown],
                                    {f"norm ({name})": s.norms[:shown].reshape(shown, *s.grid)
                                     for name, s in studies.items()}, title))
    v0 = s0.values
    first = {"first_outlier_layer_0reg_first_seed": v0["first_outlier_layer"],
             "norm_median_0reg_first_seed": v0["norm_median"], "otsu_threshold_0reg_first_seed": v0["otsu_threshold"],
             "layers": len(s0.layer_fraction)}
    notes = "high-norm = patch-token norm (last block, before the final norm) > 3x the median norm; figures: "
    if ctx.weights:  # one pair of checkpoints: the fractions vary over images, not seeds
        values = {**described, **first, "outlier_tokens_0reg": v0["outlier_tokens"],
                  "max_over_median_0reg": v0["max_over_median"], "max_over_median_reg": s4.values["max_over_median"],
                  "outlier_fraction_0reg": _per_image(s0.outliers), "outlier_fraction_4reg": _per_image(s4.outliers),
                  "outlier_fraction_above_150_0reg": _per_image(s0.norms > PAPER_NORM_THRESHOLD),
                  "outlier_fraction_above_150_4reg": _per_image(s4.norms > PAPER_NORM_THRESHOLD)}
        return Measurement(_clean(values), paths, notes=notes + f"{title}; outlier fractions per image (intervals "
                                                                  "over images); outlier_fraction_above_150: the "
                                                                  "paper's absolute cut for DINOv2 (norm > 150), "
                                                                  "reported, not judged")
    per_seed = _per_seed(ctx, {"outlier_fraction_0reg": (0, "outlier_fraction"),
                               "outlier_fraction_4reg": (4, "outlier_fraction"),
                               "max_over_median_0reg": (0, "max_over_median"),
                               "max_over_median_4reg": (4, "max_over_median")})
    return Measurement(_clean({**described, **first}), paths, per_seed=per_seed, notes=notes + title)


def _first_seed_raw(ctx: RunContext) -> torch.Tensor:
    """The analysed images in [0, 1], in the first seed's order (the figures' rows)."""
    if not ctx.weights:
        return _get(ctx, ctx.seeds[0])[0]["raw"]
    c = ctx.shared("registers.checkpoints", lambda: _checkpoints(ctx))
    return c["raw"][torch.randperm(len(c["raw"]), generator=torch.Generator().manual_seed(ctx.seeds[0]))]


def _check_outliers(m: dict):
    vanish = [f0 / 5 - f4 for f0, f4 in zip(m["outlier_fraction_0reg"], m["outlier_fraction_4reg"])]
    return decide(at_least("outlier fraction, 0 registers", m["outlier_fraction_0reg"], MIN_OUTLIER_FRACTION),
                  at_least("outlier fraction 0 reg / 5 - 4 reg", vanish, 0.0, effect=VANISH))


def _run_redundant(ctx: RunContext) -> Measurement:
    _skip_below_paper_scale(ctx)
    studies, title, described = _first_seed_studies(ctx)
    s0 = next(iter(studies.values()))
    path = figures.neighbor_cosine_hist(ctx.figure_path("neighbor_cosine.png"), s0, title)
    if ctx.weights:  # per image with high-norm tokens: mean cosine of its outlier and of its normal patches
        enough = s0.values["outlier_tokens"] >= 2 * MIN_TOKENS
        rows = [i for i in range(len(s0.norms)) if s0.outliers[i].any()] if enough else []
        cos, out = s0.neighbor_cos, s0.outliers
        values = {**described, "outlier_tokens_0reg": s0.values["outlier_tokens"], "images_with_outlier": len(rows),
                  "neighbor_cos_outlier": [round(float(cos[i][out[i]].mean()), 6) for i in rows] or [None],
                  "neighbor_cos_normal": [round(float(cos[i][~out[i]].mean()), 6) for i in rows] or [None]}
        return Measurement(values, [path], notes=f"{title}; per image with high-norm tokens (intervals over images)")
    per_seed = _per_seed(ctx, {"outlier_tokens_0reg": (0, "outlier_tokens"),
                               "neighbor_cos_outlier": (0, "neighbor_cos_outlier"),
                               "neighbor_cos_normal": (0, "neighbor_cos_normal")})
    return Measurement(described, [path], per_seed=per_seed, notes=title)


INFORMATION_KEYS = ("outlier_tokens", "images_with_outlier", "position_acc_normal", "position_acc_outlier",
                    "pixel_mse_normal", "pixel_mse_outlier", "class_acc_cls", "class_acc_normal", "class_acc_outlier",
                    "class_acc_topnorm")


def _run_information(ctx: RunContext) -> Measurement:
    _skip_below_paper_scale(ctx)
    per_seed = _per_seed(ctx, {(k if k != "outlier_tokens" else "outlier_tokens_0reg"): (0, k)
                               for k in INFORMATION_KEYS})
    studies, title, described = _first_seed_studies(ctx)
    labelled = described["images"] if not ctx.weights or ctx.shared(
        "registers.checkpoints", lambda: _checkpoints(ctx))["labels"] is not None else 0
    path = figures.probe_bars(ctx.figure_path("probes.png"), next(iter(studies.values())).values, title)
    splits = "resampled halves of the same images" if ctx.weights else "independent seeds"
    return Measurement({**described, "labelled_images": labelled, "probe_splits": splits}, [path], per_seed=per_seed,
                       notes="probes trained and tested per token type on equal numbers of tokens (0-register model; "
                             "each seed draws which half of the images trains them); class_acc_topnorm: the "
                             f"highest-norm patch of every image, outlier or not; figure: {title}")


def _check_information(m: dict):
    """Seeds of trained models are independent: paired t-intervals. On checkpoints the seeds only redraw which half
    of the same images trains the probes, so the intervals are the corrected resampled ones (halves: ratio 1)."""
    def better(label: str, a: list, b: list, effect: Effect) -> Test:
        if m["probe_splits"].startswith("resampled"):
            return beats_over_splits(label, a, b, 1.0, effect=effect)
        return beats(label, a, b, effect=effect)

    return decide(better("position accuracy, normal - outlier", m["position_acc_normal"], m["position_acc_outlier"],
                         INFORMATION_GAPS["position"]),
                  better("pixel MSE, outlier - normal", m["pixel_mse_outlier"], m["pixel_mse_normal"],
                         INFORMATION_GAPS["pixel"]),
                  better("class accuracy, outlier - normal", m["class_acc_outlier"], m["class_acc_normal"],
                         INFORMATION_GAPS["class"]))


def _models(ctx: RunContext, seed: int) -> dict:
    """{registers: (model, method, training result)} of the pair trained for `seed` (shared by the claims)."""
    return ctx.shared(f"registers.models/{seed}", lambda: _train_both(ctx, seed))


def _run_accuracy(ctx: RunContext) -> Measurement:
    def measure(seed: int) -> dict:
        runs = _models(ctx, seed)
        return {**{f"test_acc_{r}reg": result.final["test_acc"] for r, (_, _, result) in runs.items()},
                **{f"late_trend_{r}reg_pts": late_trend(*result.history.series("eval", "test_acc"))
                   for r, (_, _, result) in runs.items()}}

    per_seed = ctx.over_seeds(measure, "ViT pairs")
    runs = _models(ctx, ctx.seeds[0])
    method = runs[0][1]
    series = {f"{r} registers (final {result.final['test_acc']:.3f})": result.history.series("eval", "test_acc")
              for r, (_, _, result) in runs.items()}
    n_test = method.cfg.n_test
    values = {"test_images": n_test, "steps": method.cfg.train.steps, "schedule": method.cfg.train.schedule,
              "chance": 0.1}
    path = plotting.curves(ctx.figure_path("accuracy.png"), series, "step", "test accuracy",
                           f"{method.data.name}: accuracy with and without registers\n(first seed; {n_test} test "
                           "images)")
    return Measurement(values, [path], per_seed=per_seed)


def _run_attention(ctx: RunContext) -> Measurement:
    _skip_below_paper_scale(ctx, checkpoints_decide=False)
    per_seed = _per_seed(ctx, {"outlier_tokens_0reg": (0, "outlier_tokens"),
                               "outlier_fraction_0reg": (0, "outlier_fraction"),
                               "background_fraction": (0, "background_fraction"),
                               "cls_attention_background_0reg": (0, "cls_attention_background"),
                               "cls_attention_background_4reg": (4, "cls_attention_background"),
                               "cls_attention_max_0reg": (0, "cls_attention_max"),
                               "cls_attention_max_4reg": (4, "cls_attention_max")}, trained=True)
    a, _, _ = _get(ctx, ctx.seeds[0])
    s0, s4 = a["studies"]["0 registers"], a["studies"]["4 registers"]
    path = figures.image_maps(ctx.figure_path("cls_attention.png"), a["raw"][:6],
                              {"CLS attn, 0 reg": s0.cls_maps[:6].mean(1), "CLS attn, 4 reg": s4.cls_maps[:6].mean(1)},
                              a["title"])
    return Measurement({"images": a["images"]}, [path], per_seed=per_seed,
                       notes="last block, head-averaged [CLS] attention over patches (prefix tokens dropped, "
                             f"renormalised); background = patches with mean pixel < 0.02; figure: {a['title']}")


CLAIMS = [
    Claim(id="registers.outliers_without_registers", paper=PAPER,
          statement="ViTs without registers develop high-norm outlier tokens (~2% of the patch tokens), which "
                    "vanish when registers are added.",
          paper_reports="DINOv2 ViT-g: ~2.4% of tokens with norm > 150 (~10x the others), from ~layer 15 of 40; "
                        "none with 4 registers (Fig. 3, 4a, 7)",
          criterion="over seeds (trained models) or over images (checkpoints, --weights), 95% t-intervals: "
                    "outlier_fraction_0reg >= 0.01 and outlier_fraction_0reg / 5 - outlier_fraction_4reg >= 0 "
                    "(outlier: norm > 3x median)",
          run=_run_outliers,
          check=_check_outliers,
          kind="empirical",
          preconditions=(PAPER_SCALE, ENOUGH_IMAGES)),
    Claim(id="registers.outliers_on_redundant_patches", paper=PAPER,
          statement="High-norm tokens appear on patches that are very similar to their 4 neighbours after the "
                    "patch embedding (redundant patches).",
          paper_reports="neighbour cosine of high-norm patches concentrated near 1, normal patches much lower "
                        "(Fig. 5a)",
          criterion="paired over seeds (trained models) or over the images with high-norm tokens (checkpoints), "
                    "95% t-interval: neighbor_cos_outlier - neighbor_cos_normal > 0 (smallest effect 0.05 of cosine: "
                    "a practical bound)",
          run=_run_redundant,
          check=lambda m: beats("neighbour cosine, outlier - normal", m["neighbor_cos_outlier"],
                                m["neighbor_cos_normal"], effect=NEIGHBOUR_GAP),
          kind="empirical",
          preconditions=(_measurable("neighbor_cos_outlier"),)),
    Claim(id="registers.outliers_hold_global_information", paper=PAPER,
          statement="High-norm tokens hold less local information (their position and pixels are predicted worse "
                    "by linear probes) and more global information (one such token classifies the image better "
                    "than a normal patch).",
          paper_reports="position top-1 41.7% normal vs 22.8% outlier; pixel L2 18.38 vs 25.23 (Table 1); "
                        "class probe on an outlier token far above a normal one, close to [CLS] (Fig. 5b)",
          criterion="paired over seeds (95% t-intervals; on checkpoints the seeds redraw the probes' halves of the "
                    "same images, so the intervals are Nadeau & Bengio's corrected resampled ones): "
                    "position_acc_normal - position_acc_outlier > 0, "
                    "pixel_mse_outlier - pixel_mse_normal > 0, class_acc_outlier - class_acc_normal > 0 (smallest "
                    "effects: 0.095 position accuracy, half the paper's gap; 0 pixel MSE, units do not carry over; "
                    "0.05 class accuracy, a practical bound; Holm over the three)",
          run=_run_information,
          check=_check_information,
          kind="empirical",
          preconditions=(
              Precondition(f"class labels for the one-token class probe: >= {2 * MIN_TOKENS} labelled images "
                           "(checkpoints: an ImageNet-style --images folder, one subfolder per class)",
                           lambda m: m["labelled_images"] >= 2 * MIN_TOKENS, ("labelled_images",)),
              Precondition(f"the class probe can learn the classes: the [CLS] token's probe reaches >= "
                           f"{PROBE_WORKS:.0%} test accuracy on every seed (with a few images of many classes, e.g. "
                           "64 ImageNet images, no probe meets its test classes in training and every class accuracy "
                           "is 0)",
                           lambda m: all(v is not None and v >= PROBE_WORKS for v in m["class_acc_cls"]),
                           ("class_acc_cls",)),
              _measurable("position_acc_outlier", "pixel_mse_outlier", "class_acc_outlier"))),
    Claim(id="registers.no_accuracy_cost", paper=PAPER,
          statement="Adding registers does not cost accuracy.",
          paper_reports="ImageNet linear probe with/without 4 registers: DeiT-III 84.7/84.7, OpenCLIP 78.0/78.1, "
                        "DINOv2 84.3/84.8 (Table 2)",
          criterion=f"non-inferiority, paired over seeds (95% t-interval): test_acc_4reg - test_acc_0reg >= "
                    f"-{ACCURACY_MARGIN.size} (margin 1 point, a practical bound); not met when the interval lies "
                    "wholly below 0 (registers shown to cost accuracy)",
          run=_run_accuracy,
          check=lambda m: no_worse("test accuracy, 4 - 0 registers", m["test_acc_4reg"], m["test_acc_0reg"],
                                   effect=ACCURACY_MARGIN),
          kind="empirical",
          preconditions=(Precondition(
              "both models trained: test accuracy >= 20 points above chance (10%) on every seed",
              lambda m: min(m["test_acc_0reg"] + m["test_acc_4reg"]) >= 0.3, ("test_acc_0reg", "test_acc_4reg")),
              plateau("both ViTs (0 and 4 registers), at a constant learning rate after the warm-up",
                      ("late_trend_0reg_pts", "late_trend_4reg_pts")))),
    Claim(id="registers.cleaner_attention_maps", paper=PAPER,
          statement="With registers, the [CLS] attention maps of the last layer are cleaner: less attention lands "
                    "on uninformative background patches.",
          paper_reports="attention maps without artifacts (Fig. 1, 9); LOST object discovery +20 corloc points for "
                        "DINOv2 (Table 3)",
          criterion="over seeds (95% t-interval of the log-ratios): geometric mean of cls_attention_background_4reg / "
                    "cls_attention_background_0reg <= 0.9",
          run=_run_attention,
          check=lambda m: log_at_most("CLS attention on background, 4 reg / 0 reg",
                                      [b4 / b0 for b4, b0 in zip(m["cls_attention_background_4reg"],
                                                                 m["cls_attention_background_0reg"])], 0.9),
          kind="empirical",
          preconditions=(
              Precondition("the regime of the paper's maps: the no-register model has high-norm outlier tokens "
                           f"(>= {MIN_OUTLIER_FRACTION:.0%} of its patch tokens on every seed), which registers "
                           "would remove; without them a difference is not about artifacts",
                           lambda m: min(m["outlier_fraction_0reg"]) >= MIN_OUTLIER_FRACTION,
                           ("outlier_fraction_0reg",)),
              Precondition("there is background to attend to: >= 10% of the patches are background on every seed",
                           lambda m: min(m["background_fraction"]) >= 0.1, ("background_fraction",)))),
]

TRAIN_METHODS = {"vit_registers": TrainSpec(
    "vit_registers", "small ViT with registers (registers.num_registers) on real 28x28 Fashion-MNIST",
    RegistersConfig, RegistersClassification)}

CLI_VERBS = {"analyze-vit": CliVerb(
    "analyze-vit", "artifact analysis of a (DINOv2) ViT checkpoint: norms, outliers, probes, attention (HTML)",
    _analyze_arguments, _analyze_run)}
