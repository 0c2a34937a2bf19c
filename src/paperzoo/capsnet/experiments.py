"""The claims of "Dynamic Routing Between Capsules" (Sabour, Frosst & Hinton, NeurIPS 2017, arXiv 1710.09829)
on the 5,000 real MNIST digits, over seeds, and `paperzoo train capsnet` / `capsnet_baseline`.

Per seed, five models are trained once and shared by the claims: CapsNet with 3 routing iterations (Procedure 1),
with 1, and the CNN baseline on shifted single digits (Sec. 5), and a CapsNet/CNN pair on overlapping digits
(Sec. 6), each pair on an equal budget (steps, batch, optimiser, schedule). Every model is evaluated ten times during
training; the last 30% of those evaluations show whether it reached a plateau, a precondition of the claims that
compare trained models. `quick` trains narrow models for 110 steps on single digits, short of the plateau, so those
claims are honestly `inconclusive` there; `standard` trains them 1,000 steps, to the plateau; MultiMNIST and the
routing gap cannot be decided on a CPU and are skipped at both, saying why; `full` is the paper's networks and
schedule (GPU).
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch

from paperzoo import plotting
from paperzoo.capsnet.baseline import BaselineConfig
from paperzoo.capsnet.capsules import Decoder
from paperzoo.capsnet.dimensions import (
    ATTRIBUTES,
    attribute_changes,
    axis_directions,
    consistency,
    random_directions,
    selectivity,
)
from paperzoo.capsnet.model import CapsNetConfig, parameter_count
from paperzoo.capsnet.training import (
    BaselineMethod,
    BaselineTrainConfig,
    CapsNetMethod,
    CapsNetTrainConfig,
    paper_schedule,
)
from paperzoo.catalog import TrainSpec
from paperzoo.claims import Claim, Measurement, RunContext, SkipClaim
from paperzoo.criteria import (Effect, Precondition, accuracy_at_least, all_of, at_least, at_most, beats, decide,
                               every_seed, late_trend, plateau)
from paperzoo.engine.distributed import derive_seed
from paperzoo.engine.trainer import TrainConfig, Trainer

PAPER = "Sabour, Frosst & Hinton, NeurIPS 2017, arXiv 1710.09829"
CHANCE_PAIR_ACC = 1 / 45  # two distinct classes out of 10, guessed
MATCH_POINTS = 1.0  # affine_robustness: the two clean accuracies compared differ by <= 1 point
STEP = 0.25  # Fig. 4: perturbations up to +-0.25
SELECTIVITY_ROOM = 0.95  # interpretable_dimensions: a control above this leaves no room to be beaten by the effect
ROUTING_GAP = Effect(0.04, "the paper's gap: 0.29% vs 0.25% test error, 1 vs 3 iterations (Table 1)")
MULTIMNIST_GAP = Effect(0.029, "the paper's gap: 8.1% vs 5.2% MultiMNIST error, CNN vs CapsNet (Sec. 6)")
AFFINE_GAP = Effect(0.065, "half the paper's gap: affNIST 79% vs 66% (Sec. 5.2); our affine test is not affNIST")
DIMENSION_GAP = Effect(0.05, "a practical bound: 5 points of the largest attribute's share (which ranges over "
                              "1/6-1) above each control")

TRAIN_METHODS = {
    "capsnet": TrainSpec("capsnet", "CapsNet (dynamic routing) on the 5,000 real MNIST digits; task=multimnist "
                                    "model.image_size=36 for overlapping digits", CapsNetTrainConfig, CapsNetMethod),
    "capsnet_baseline": TrainSpec("capsnet_baseline", "the CNN baseline of the CapsNet paper, same data and tasks",
                                  BaselineTrainConfig, BaselineMethod),
}


def _train_config(ctx: RunContext, seed: int) -> TrainConfig:
    if ctx.preset == "full":
        if not torch.cuda.is_available():
            raise SkipClaim("needs a GPU (the paper's 8.2M-parameter CapsNet; use --preset standard on a CPU)")
        return replace(paper_schedule(steps=20000), seed=seed, progress=False, log_every=100, eval_every=2000)
    # standard: in a one-seed pilot, the quick-width CapsNet's and CNN's test accuracy flattened out from step 600 to
    # 1,500; 1,000 steps put the plateau rule's second half on the flat part
    steps = ctx.pick(smoke=10, quick=110, full=0, standard=1000)  # MultiMNIST runs at smoke and full only
    # the paper's nearly constant rate (x0.96 per 2,000 steps), not one annealed to 0: under an annealed rate the
    # accuracy stops rising at the end whether or not the model converged, and the plateau test would mean nothing
    return replace(paper_schedule(steps=steps, batch_size=ctx.pick(smoke=32, quick=64, full=0)), lr=2e-3,
                   log_every=10, eval_every=max(1, steps // 10), seed=seed, progress=False)


def _capsnet_config(ctx: RunContext, image_size: int, iterations: int) -> CapsNetConfig:
    width = ctx.pick(smoke=dict(conv_channels=16, primary_types=2, decoder_hidden=(64, 128)),
                     quick=dict(conv_channels=32, primary_types=4), full={})
    return CapsNetConfig(image_size=image_size, iterations=iterations, **width)


def _baseline_config(ctx: RunContext, image_size: int) -> BaselineConfig:
    width = ctx.pick(smoke=dict(channels=(8, 16, 16)), quick=dict(channels=(32, 64, 64)), full={})
    return BaselineConfig(image_size=image_size, **width)


def _test_examples(ctx: RunContext) -> int:
    return ctx.pick(smoke=100, quick=400, full=1000, standard=1000)


def _fit(method, train: TrainConfig) -> dict:
    started = time.perf_counter()
    result = Trainer(method, train).fit()
    result.model.eval()
    return {"model": result.model, "method": method, "final": result.final, "history": result.history,
            "seconds": time.perf_counter() - started, "params": parameter_count(result.model)}


def _capsnet(ctx: RunContext, seed: int, iterations: int, task: str = "mnist") -> dict:
    def build():
        cfg = CapsNetTrainConfig(model=_capsnet_config(ctx, 36 if task == "multimnist" else 28, iterations),
                                 task=task, test_examples=_test_examples(ctx), affine_test=task == "mnist",
                                 train=_train_config(ctx, seed))
        return _fit(CapsNetMethod(cfg), cfg.train)

    return ctx.shared(f"capsnet-{task}-r{iterations}/{seed}", build)


def _baseline(ctx: RunContext, seed: int, task: str = "mnist") -> dict:
    def build():
        cfg = BaselineTrainConfig(model=_baseline_config(ctx, 36 if task == "multimnist" else 28), task=task,
                                  test_examples=_test_examples(ctx), affine_test=task == "mnist",
                                  train=_train_config(ctx, seed))
        return _fit(BaselineMethod(cfg), cfg.train)

    return ctx.shared(f"baseline-{task}/{seed}", build)


def _late_trend(run: dict, metric: str) -> float:
    return late_trend(*run["history"].series("eval", metric))


# -- claims 1 and 2: accuracy, and 3 routing iterations beat 1 ---------------------------------------------------

def _run_accuracy(ctx: RunContext) -> Measurement:
    def measure(seed: int) -> dict:
        r3 = _capsnet(ctx, seed, 3)
        return {"r3_test_acc": r3["final"]["test_acc"], "r3_late_trend_pts": _late_trend(r3, "test_acc")}

    per_seed = ctx.over_seeds(measure, "CapsNet, 3 routing iterations")
    r3 = _capsnet(ctx, ctx.seeds[0], 3)
    series = r3["history"].series("eval", "test_acc")
    path = plotting.curves(ctx.figure_path("test_accuracy.png"), {"3 iterations": series}, "step", "test accuracy",
                           "CapsNet on MNIST (4,000 real training digits), first seed")
    return Measurement({"test_examples": len(r3["method"].test_y), "steps": series[0][-1],
                        "capsnet_params": r3["params"]}, [path], per_seed=per_seed,
                       timings={"train_seconds_r3_first_seed": round(r3["seconds"], 1)})


def _skip_unresolvable_routing(ctx: RunContext) -> None:
    """The routing gap is a few hundredths of a point of error: at quick and standard the test set alone blurs one
    model's error by several times that, so the claim says so at once instead of training the 1-iteration models."""
    if ctx.preset not in ("quick", "standard"):
        return
    n = _test_examples(ctx)
    sd = 100 * (0.01 * 0.99 / n) ** 0.5  # binomial sd of one model's error (points) near the paper's ~1% level
    raise SkipClaim(f"not decidable at --preset {ctx.preset}: the paper's gap is {ROUTING_GAP.size:g} points of test "
                    f"error, while on this preset's {n:,} test digits the sampling sd of one model's error near 1% is "
                    f"{sd:.2f} points, {sd / ROUTING_GAP.size:.0f}x the gap; deciding it needs MNIST's 10,000 test "
                    "digits and many seeds of the paper's model (--preset full on a GPU measures 1,000 digits, "
                    "still short of it)")


def _run_routing(ctx: RunContext) -> Measurement:
    _skip_unresolvable_routing(ctx)

    def measure(seed: int) -> dict:
        r3, r1 = _capsnet(ctx, seed, 3), _capsnet(ctx, seed, 1)
        return {"r3_error_pct": 100 * (1 - r3["final"]["test_acc"]), "r1_error_pct": 100 * (1 - r1["final"]["test_acc"]),
                "r3_late_trend_pts": _late_trend(r3, "test_acc"), "r1_late_trend_pts": _late_trend(r1, "test_acc")}

    per_seed = ctx.over_seeds(measure, "CapsNet, 3 and 1 routing iterations")
    first = ctx.seeds[0]
    series = {name: run["history"].series("eval", "test_acc") for name, run in
              (("3 iterations", _capsnet(ctx, first, 3)), ("1 iteration", _capsnet(ctx, first, 1)))}
    path = plotting.curves(ctx.figure_path("test_accuracy_by_iterations.png"), series, "step", "test accuracy",
                           "CapsNet on MNIST, 3 and 1 routing iterations, first seed")
    return Measurement({"test_examples": _test_examples(ctx)}, [path], per_seed=per_seed)


# -- claim 2: overlapping digits -----------------------------------------------------------------------------------

def _separation(model, method, n: int) -> tuple[float, torch.Tensor]:
    """Fraction of test pairs whose two reconstructions (decoder masked by each true class) are each closer to
    their own digit than to the other one; also the reconstructions of the first 8 pairs (8, 2, 1, 36, 36)."""
    x, pairs, digits = method.test_x[:n], method.test_y[:n], method.test_digits[:n]
    with torch.no_grad():
        v = model.capsules(x)  # (n, J, D)
        recon = torch.stack([model.decoder(v, pairs[:, k]) for k in range(2)], 1)  # (n, 2, 1, 36, 36)
    error = ((recon[:, :, None] - digits[:, None]) ** 2).flatten(3).mean(3)  # (n, 2 recon, 2 digit)
    own = error.diagonal(dim1=1, dim2=2)  # (n, 2)
    other = error.flip(2).diagonal(dim1=1, dim2=2)  # (n, 2)
    return (own < other).all(1).float().mean().item(), recon[:8]


def _plot_overlaps(path, method, recon) -> object:
    """Rows: input overlay, reconstruction from each true class's capsule, both (red = first, green = second)."""
    n = recon.shape[0]
    first, second = recon[:, 0, 0], recon[:, 1, 0]  # (n, 36, 36)
    gray = lambda x: x[..., None].expand(*x.shape, 3)  # (n, 36, 36, 3)
    rows = [gray(method.test_x[:n, 0]), gray(first), gray(second),
            torch.stack([first, second, torch.zeros_like(first)], -1)]
    tiles = torch.stack(rows).permute(0, 2, 1, 3, 4).reshape(4 * 36, n * 36, 3)  # (4*36, n*36, 3)
    fig, ax = plotting.figure(8, 4.4)
    ax.imshow(tiles.clamp(0, 1).numpy())
    ax.set_xticks([36 * (i + 0.5) for i in range(n)],
                  [f"{method.test_y[i, 0].item()} + {method.test_y[i, 1].item()}" for i in range(n)])
    ax.set_yticks([36 * (r + 0.5) for r in range(4)], ["input", "capsule 1", "capsule 2", "both"])
    ax.grid(False)
    ax.set_title("MultiMNIST: each digit reconstructed from its own capsule")
    return plotting.save(fig, path)


def _run_multimnist(ctx: RunContext) -> Measurement:
    if ctx.preset in ("quick", "standard"):
        raise SkipClaim(f"not decidable at --preset {ctx.preset}: the models do not reach the paper's regime on a "
                        "CPU budget (in a one-seed pilot, the quick-width CapsNet's pair accuracy was still rising "
                        "steeply after 800 steps, 10x quick's, far below the paper's ~95%), and training both models "
                        "to the plateau over the sequential seeds would take hours; --preset full on a GPU trains the "
                        "paper's networks (smoke runs it to check the code path)")
    def measure(seed: int) -> dict:
        caps, cnn = _capsnet(ctx, seed, 3, "multimnist"), _baseline(ctx, seed, "multimnist")
        separated, _ = _separation(caps["model"], caps["method"], len(caps["method"].test_y))
        return {"capsnet_pair_acc": caps["final"]["test_pair_acc"], "cnn_pair_acc": cnn["final"]["test_pair_acc"],
                "separated_fraction": separated,
                "capsnet_late_trend_pts": _late_trend(caps, "test_pair_acc"),
                "cnn_late_trend_pts": _late_trend(cnn, "test_pair_acc")}

    per_seed = ctx.over_seeds(measure, "MultiMNIST CapsNet and CNN")
    caps, cnn = _capsnet(ctx, ctx.seeds[0], 3, "multimnist"), _baseline(ctx, ctx.seeds[0], "multimnist")
    _, recon = _separation(caps["model"], caps["method"], 8)
    figures = [_plot_overlaps(ctx.figure_path("multimnist_reconstructions.png"), caps["method"], recon),
               plotting.curves(ctx.figure_path("pair_accuracy.png"),
                               {"CapsNet": caps["history"].series("eval", "test_pair_acc"),
                                "CNN baseline": cnn["history"].series("eval", "test_pair_acc")},
                               "step", "both digits right (test pairs)", "MultiMNIST, first seed")]
    return Measurement({"chance_pair_acc": round(CHANCE_PAIR_ACC, 4), "test_pairs": len(caps["method"].test_y),
                        "capsnet_params": caps["params"],
                        "capsnet_params_without_decoder": caps["params"] - parameter_count(caps["model"].decoder),
                        "cnn_params": cnn["params"]}, figures, per_seed=per_seed,
                       notes="pair accuracy: both digits are the two longest capsules (CNN: two largest logits); "
                             "both models trained with the same steps, batch, optimiser and schedule")


def _check_multimnist(m: dict):
    return decide(beats("pair accuracy, CapsNet - CNN", m["capsnet_pair_acc"], m["cnn_pair_acc"],
                        effect=MULTIMNIST_GAP),
                  at_least("separated fraction", m["separated_fraction"], 0.8))


def _above_chance(m: dict) -> bool:
    floor = CHANCE_PAIR_ACC + 0.1
    return all_of(every_seed("capsnet_pair_acc", m["capsnet_pair_acc"], ">=", floor),
                  every_seed("cnn_pair_acc", m["cnn_pair_acc"], ">=", floor)).outcome is True


# -- claim 3: affine robustness at matched clean accuracy -------------------------------------------------------

def _matched(caps: dict, cnn: dict) -> dict:
    """Both models at the same clean accuracy, as in the paper (99.23% vs 99.22%): the target is the lower of the
    two models' best evaluated clean accuracies; each model is read at its evaluation closest to it (the earliest
    of equally close ones)."""
    curves = {}
    for name, run in (("capsnet", caps), ("cnn", cnn)):
        steps, clean = run["history"].series("eval", "test_acc")
        curves[name] = steps, clean, run["history"].series("eval", "test_affine_acc")[1]
    target = min(max(c[1]) for c in curves.values())
    out = {}
    for name, (steps, clean, affine) in curves.items():
        i = min(range(len(clean)), key=lambda k: abs(clean[k] - target))
        out.update({f"{name}_clean_acc": clean[i], f"{name}_affine_acc": affine[i], f"{name}_step": steps[i]})
    out["clean_gap_pts"] = 100 * abs(out["capsnet_clean_acc"] - out["cnn_clean_acc"])
    return out


def _run_affine(ctx: RunContext) -> Measurement:
    per_seed = ctx.over_seeds(lambda seed: _matched(_capsnet(ctx, seed, 3), _baseline(ctx, seed)),
                              "affine test at matched clean accuracy")
    warped = _capsnet(ctx, ctx.seeds[0], 3)["method"].test_affine
    fig, ax = plotting.figure(8, 1.4)
    ax.imshow(warped[:8, 0].permute(1, 0, 2).reshape(28, 8 * 28).numpy(), cmap="gray", vmin=0, vmax=1)  # (28, 8*28)
    ax.axis("off")
    path = plotting.save(fig, ctx.figure_path("affine_test_examples.png"))
    return Measurement({"test_examples": len(warped)}, [path], per_seed=per_seed,
                       notes="test digits rotated by up to 20 degrees, sheared by up to 0.2 and scaled by 0.8-1.2; "
                             "training saw 2 px shifts only; each model read at its evaluation closest to the lower "
                             "of the two best clean accuracies")


# -- claim 4: interpretable dimensions ----------------------------------------------------------------------------

def _dimension_measures(ctx: RunContext, seed: int) -> dict:
    """Selectivity (see `paperzoo.capsnet.dimensions`) of the 16 dimensions through the trained decoder, and of two
    controls: the same dimensions through an untrained decoder of the same shape, and random directions in capsule
    space (drawn once per seed, the same for every digit) through the trained decoder; the dimensions' same-attribute
    consistency beside them (reported); on up to 200 correctly classified test digits."""
    caps = _capsnet(ctx, seed, 3)
    model, method = caps["model"], caps["method"]
    with torch.no_grad():
        v = model.capsules(method.test_x[:250])  # (B, J, D)
    right = (v.norm(dim=-1).argmax(1) == method.test_y[:250]).nonzero().flatten()[:200]
    v, labels = v[right], method.test_y[right]
    b, _, d = v.shape
    generator = torch.Generator().manual_seed(derive_seed(seed, 4))
    cfg = model.cfg
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, 5))
        untrained = Decoder(cfg.classes, cfg.digit_dim, cfg.decoder_hidden,
                            (cfg.in_channels, cfg.image_size, cfg.image_size)).eval()
    axes = axis_directions(b, d)
    trained = attribute_changes(model.decoder, v, labels, axes, STEP)  # (B, D, 6)
    per_dimension = selectivity(trained)  # (D,)
    return {"trained_axes": per_dimension.mean().item(),
            "untrained_decoder_axes": selectivity(attribute_changes(untrained, v, labels, axes, STEP)).mean().item(),
            "random_directions": selectivity(attribute_changes(model.decoder, v, labels,
                                                               random_directions(b, d, d, generator), STEP)
                                             ).mean().item(),
            "trained_axes_consistency": consistency(trained, labels).mean().item(),
            "images": float(b), "r3_late_trend_pts": _late_trend(caps, "test_acc"), "per_dimension": per_dimension}


def _run_dimensions(ctx: RunContext) -> Measurement:
    rows = {}

    def measure(seed: int) -> dict:
        rows[seed] = _dimension_measures(ctx, seed)
        return {k: v for k, v in rows[seed].items() if k != "per_dimension"}

    per_seed = ctx.over_seeds(measure, "capsule dimensions")
    caps = _capsnet(ctx, ctx.seeds[0], 3)
    model, x, y = caps["model"], caps["method"].test_x[:1], caps["method"].test_y[:1]
    steps = torch.linspace(-STEP, STEP, 11)
    with torch.no_grad():
        v = model.capsules(x)  # (1, J, D)
        d = v.shape[2]
        moved = v.repeat(d * len(steps), 1, 1)  # (D*steps, J, D): one row per (dimension, step)
        moved[:, y[0]] += (torch.eye(d)[:, None, :] * steps[None, :, None]).reshape(-1, d)  # (D*steps, D)
        grid = model.decoder(moved, y.repeat(len(moved)))  # (D*steps, 1, H, W)
    h, w = grid.shape[2:]
    tiles = grid[:, 0].reshape(d, len(steps), h, w).permute(0, 2, 1, 3).reshape(d * h, len(steps) * w)  # (D*H, S*W)
    fig, ax = plotting.figure(5, 0.4 * d)
    ax.imshow(tiles.numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([w * (s + 0.5) for s in range(len(steps))], [f"{x:+.2f}" for x in steps.tolist()], fontsize=6)
    ax.set_yticks([h * (i + 0.5) for i in range(d)], [f"dim {i}" for i in range(d)], fontsize=6)
    ax.grid(False)
    ax.set_title("one digit's reconstruction, one capsule dimension perturbed per row")
    grid_path = plotting.save(fig, ctx.figure_path("dimension_perturbations.png"))
    fig, ax = plotting.figure(6, 3.2)
    ax.bar(range(d), rows[ctx.seeds[0]]["per_dimension"].tolist())
    for name, key in (("untrained decoder", "untrained_decoder_axes"), ("random directions", "random_directions")):
        ax.axhline(per_seed[key][0], linestyle="--", linewidth=0.8, label=name, color="grey" if "un" in name else "k")
    ax.set(xlabel="capsule dimension", ylabel="selectivity (largest attribute's share)",
           title="trained decoder per dimension, first seed")
    ax.legend(fontsize=7)
    bar_path = plotting.save(fig, ctx.figure_path("dimension_selectivity.png"))
    return Measurement({"step": STEP, "attributes": list(ATTRIBUTES)}, [grid_path, bar_path], per_seed=per_seed,
                       notes="selectivity: the largest attribute's share of the squared change of six image "
                             "attributes (from the reconstruction's moments, in units of their spread) when the "
                             "capsule moves from -0.25 to +0.25 along a direction, averaged over digits; 1 = one "
                             "attribute changes, 1/6 = all six equally; trained_axes_consistency (reported): mean "
                             "cosine between different digits' changes, which any fixed direction also scores near 1")


def _check_dimensions(m: dict):
    return decide(beats("selectivity, trained - untrained decoder", m["trained_axes"], m["untrained_decoder_axes"],
                        effect=DIMENSION_GAP),
                  beats("selectivity, dimensions - random directions", m["trained_axes"], m["random_directions"],
                        effect=DIMENSION_GAP))


CLAIMS = [
    Claim(
        id="capsnet.accuracy",
        paper=PAPER,
        statement="A CapsNet reaches high test accuracy on MNIST.",
        paper_reports="99.75% test accuracy (0.25% error) on full MNIST, 3 routing iterations with reconstruction "
                      "(Table 1)",
        criterion="3-iteration test accuracy >= 0.97 on its interval over seeds, which holds the test set's sampling "
                  "error (4,000 real training digits, not the paper's 60,000, hence the lower threshold)",
        run=_run_accuracy,
        check=lambda m: decide(accuracy_at_least("3-iteration test accuracy", m["r3_test_acc"], 0.97,
                                                 m["test_examples"])),
        kind="empirical",
        preconditions=(plateau("the CapsNet (3 iterations)", ("r3_late_trend_pts",)),),
    ),
    Claim(
        id="capsnet.routing_iterations",
        paper=PAPER,
        statement="3 routing iterations give a lower test error than 1.",
        paper_reports="with reconstruction, 0.25% test error with 3 iterations vs 0.29% with 1 (Table 1)",
        criterion="the paired difference of test error, 1 iteration - 3 iterations, > 0 on its interval over seeds "
                  "(smallest effect 0.04 points, the paper's gap); measured where the test set can resolve it, "
                  "skipped with the numbers at quick and standard",
        run=_run_routing,
        check=lambda m: decide(beats("test error, 1 iteration - 3 iterations (points)", m["r1_error_pct"],
                                     m["r3_error_pct"], effect=ROUTING_GAP)),
        kind="empirical",
        preconditions=(plateau("both CapsNets (3 and 1 iterations)", ("r3_late_trend_pts", "r1_late_trend_pts")),),
    ),
    Claim(
        id="capsnet.multimnist_beats_cnn",
        paper=PAPER,
        statement="On two overlapping digits, CapsNet recognises both digits better than a CNN baseline and "
                  "reconstructs each digit separately.",
        paper_reports="MultiMNIST error 5.2% (CapsNet) vs 8.1% (CNN baseline); reconstructions separate the "
                      "two digits (Fig. 5)",
        criterion="the paired difference of pair accuracy, CapsNet - CNN, > 0 on its interval over seeds (smallest "
                  "effect 0.029, the paper's gap), and the separated fraction >= 0.8 (t-interval), at an equal "
                  "training budget; Holm over the two",
        run=_run_multimnist,
        check=_check_multimnist,
        kind="empirical",
        preconditions=(
            Precondition(f"both models trained: pair accuracy >= {CHANCE_PAIR_ACC + 0.1:.3f} (10 points above the "
                         "1/45 chance of two distinct digits) on every seed", _above_chance,
                         ("capsnet_pair_acc", "cnn_pair_acc", "chance_pair_acc")),
            plateau("both models", ("capsnet_late_trend_pts", "cnn_late_trend_pts")),
        ),
    ),
    Claim(
        id="capsnet.affine_robustness",
        paper=PAPER,
        statement="Trained on shifted digits only, CapsNet keeps more accuracy than a CNN on affinely transformed "
                  "digits, at the same accuracy on untransformed digits.",
        paper_reports="affNIST: 79% (CapsNet) vs 66% (CNN) at similar MNIST accuracy (99.23% vs 99.22%)",
        criterion="the paired difference of affine test accuracy, CapsNet - CNN, > 0 on its interval over seeds, "
                  "each model read at its evaluation closest to the lower of the two best clean accuracies (smallest "
                  "effect 0.065: half the paper's affNIST gap)",
        run=_run_affine,
        check=lambda m: decide(beats("affine accuracy, CapsNet - CNN", m["capsnet_affine_acc"], m["cnn_affine_acc"],
                                     effect=AFFINE_GAP)),
        kind="empirical",
        preconditions=(
            Precondition(f"matched clean accuracy, as in the paper: the two models' clean test accuracies differ by "
                         f"<= {MATCH_POINTS:g} point on every seed",
                         lambda m: every_seed("clean_gap_pts", m["clean_gap_pts"], "<=", MATCH_POINTS)),
            Precondition("the matched clean accuracy is MNIST-level: >= 0.97 for both models on every seed",
                         lambda m: all_of(every_seed("capsnet_clean_acc", m["capsnet_clean_acc"], ">=", 0.97),
                                          every_seed("cnn_clean_acc", m["cnn_clean_acc"], ">=", 0.97)).outcome is True,
                         ("capsnet_clean_acc", "cnn_clean_acc")),
        ),
    ),
    Claim(
        id="capsnet.interpretable_dimensions",
        paper=PAPER,
        statement="Each dimension of the active digit capsule encodes one kind of attribute: perturbing it changes "
                  "mainly one attribute of the reconstruction (stroke thickness, width, skew, ...).",
        paper_reports="Fig. 4: dimensions encode stroke thickness, skew, width, ... under perturbations in "
                      "[-0.25, 0.25]; one dimension almost always represents the width",
        criterion="selectivity of the 16 dimensions through the trained decoder (the largest of six image "
                  "attributes' share of the change, from the reconstruction's moments) exceeds both controls on the "
                  "paired interval over seeds: the same dimensions through an untrained decoder, and random "
                  "directions in capsule space (drawn once per seed, the same for every digit) through the trained "
                  f"decoder (smallest effect {DIMENSION_GAP.size:g}: a practical bound); Holm over the two",
        run=_run_dimensions,
        check=_check_dimensions,
        kind="empirical",
        preconditions=(plateau("the CapsNet (3 iterations)", ("r3_late_trend_pts",)),
                       Precondition(f"the measure has room to tell: both controls' selectivity <= "
                                    f"{SELECTIVITY_ROOM:g} (a share cannot exceed 1, so a control above it leaves no "
                                    "room for the smallest effect)",
                                    lambda m: all_of(at_most("untrained decoder selectivity", m["untrained_decoder_axes"],
                                                             SELECTIVITY_ROOM),
                                                     at_most("random directions selectivity", m["random_directions"],
                                                             SELECTIVITY_ROOM)))),
    ),
]
