"""SqueezeTime's claims (`paperzoo reproduce squeezetime`) and its training method (`paperzoo train squeezetime`).

1. size_and_cost       the K400 model's parameters and FLOPs, and the frames/width variants
2. faster_than_mobile_nets  clips/s of SqueezeTime vs TSM-R18 and X3D-XS at their published widths and inputs
                       (the paper's Table 1), interleaved repeats; vs TSM and R(2+1)D at its MACs, reported
3. keeps_time          on moving digits, SqueezeTime close to R3D at a fraction of its cost, over seeds, each
                       model at its plateau; TSN (no temporal modelling) beside them at its order-blind ceiling
4. ctl_ablation        plain conv vs TFC vs TFC + IOI on moving digits, paired over >= 5 seeds
Claims 3 and 4 share the trained SqueezeTime of each seed (`ctx.shared`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo import bench, config, plotting
from paperzoo.catalog import TrainSpec
from paperzoo.claims import Claim, Measurement, RunContext, SkipClaim
from paperzoo.criteria import (Decision, Effect, Precondition, at_least, beats, decide, every_seed, late_trend,
                               no_worse, plateau, ratio_at_least)
from paperzoo.engine.trainer import StepOutput, TrainConfig, Trainer
from paperzoo.errors import ConfigError
from paperzoo.stats import log_ratio_interval
from paperzoo.squeezetime.published import COMPARED_NETS, PAPER_HARDWARE, PUBLISHED, build_published
from paperzoo.squeezetime.task import DIGIT_SIZE, DIRECTIONS, moving_digits
from paperzoo.squeezetime.zoo import MODEL_NAMES, build_video_model, model_cost, width_for_cost

PAPER = "Zhai et al. 2024, arXiv 2405.08344"
KINETICS_MEAN = (0.485, 0.456, 0.406)  # the official config's mean/std (123.675, ...) / 255
KINETICS_STD = (0.229, 0.224, 0.225)
DIGITS_MEAN, DIGITS_STD = 0.1, 0.25  # moving-digits pixel statistics (approximate; only a fixed input scaling)


@dataclass
class VideoConfig:
    model: str = "squeezetime"  # one of zoo.MODEL_NAMES
    scale: Literal["paper", "tiny"] = "tiny"
    width_mult: float = 0.25
    num_frames: int = 8
    image_size: int = 32
    data: Literal["moving_digits", "folder"] = "moving_digits"
    # moving digits
    n_train: int = 2000
    n_test: int = 500
    distractor: float = 0.6
    noise: float = 0.2
    # a Kinetics-style folder (root/class/*.mp4); the paper samples 16 frames 4 apart
    root: str = ""
    val_root: str = ""
    interval: int = 4
    short_side: int = 256
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=200, batch_size=32, optimizer="adamw", lr=2e-3, weight_decay=1e-4, schedule="cosine",
        warmup_steps=20, log_every=10))

    def check(self, prefix: str) -> None:
        config.require(self.model in MODEL_NAMES, prefix + "model", self.model, f"one of {', '.join(MODEL_NAMES)}")
        config.at_least(self, prefix, 1, "num_frames", "n_train", "n_test", "interval")
        config.positive(self, prefix, "width_mult")
        config.require(self.image_size >= 32 or not self.model.startswith("squeezetime"), prefix + "image_size",
                       self.image_size, f">= 32 for model={self.model} (five stride-2 steps)")
        canvas = DIGIT_SIZE + 2 * (self.num_frames - 1)  # a digit moving up to 2 px per frame stays in view
        config.require(self.image_size >= canvas or self.data != "moving_digits", prefix + "image_size",
                       self.image_size, f">= {canvas} for {self.num_frames} frames of moving digits (or lower "
                       "num_frames)")


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, batch: int = 250) -> float:
    correct = sum((model(x[i:i + batch].to(device)).argmax(1).cpu() == y[i:i + batch]).sum().item()
                  for i in range(0, len(x), batch))
    return correct / len(x)


class VideoClassification:
    """Method protocol: cross-entropy clip classification, on moving digits or on a video folder."""

    def __init__(self, cfg: VideoConfig, digits=None):
        self.cfg = cfg
        if cfg.data == "folder":
            from paperzoo.data.video import VideoFolder

            if not cfg.root:
                raise ConfigError("data=folder needs root=<folder with class subfolders of videos>")
            common = dict(num_frames=cfg.num_frames, interval=cfg.interval, short_side=cfg.short_side,
                          crop=cfg.image_size, on_error="skip", seed=cfg.train.seed)
            self.train_set = VideoFolder(cfg.root, train=True, **common)
            self.val_set = VideoFolder(cfg.val_root, train=False, **common) if cfg.val_root else None
            self.classes, self.channels = len(self.train_set.classes), 3
            self.mean = torch.tensor(KINETICS_MEAN).view(1, 3, 1, 1, 1)
            self.std = torch.tensor(KINETICS_STD).view(1, 3, 1, 1, 1)
        elif cfg.data == "moving_digits":
            self.digits = digits or moving_digits(cfg.n_train, cfg.n_test, cfg.num_frames, cfg.image_size,
                                                  cfg.distractor, cfg.noise, seed=0)
            self.classes, self.channels = len(DIRECTIONS), 1
            self.mean, self.std = torch.tensor(DIGITS_MEAN), torch.tensor(DIGITS_STD)
        else:
            raise ConfigError(f"data must be 'moving_digits' or 'folder', got {cfg.data!r}")

    def build_model(self) -> nn.Module:
        cfg = self.cfg
        net = build_video_model(cfg.model, self.classes, cfg.num_frames, cfg.image_size, cfg.width_mult, cfg.scale,
                                self.channels)
        return Normalized(net, self.mean, self.std)

    def train_dataset(self):
        return self.train_set if self.cfg.data == "folder" else self.digits.train()

    def training_step(self, model: nn.Module, batch) -> StepOutput:
        x, y = batch
        logits = model(x)
        return StepOutput(F.cross_entropy(logits, y), {"acc": (logits.argmax(1) == y).float().mean()})

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        if self.cfg.data == "moving_digits":
            return {"test_acc": accuracy(model, self.digits.test_x, self.digits.test_y, device)}
        if self.val_set is None:
            return {}
        clips, labels = zip(*(self.val_set[i] for i in range(len(self.val_set))))
        return {"val_acc": accuracy(model, torch.stack(clips), torch.tensor(labels), device, batch=8)}


class Normalized(nn.Module):
    """(x - mean) / std in front of a video model, so checkpoints take raw [0, 1] clips."""

    def __init__(self, net: nn.Module, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.net = net
        self.register_buffer("mean", mean.clone(), persistent=False)
        self.register_buffer("std", std.clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


TRAIN_METHODS = {"squeezetime": TrainSpec(
    "squeezetime", "a video model (squeezetime, its ablations, r3d, r2plus1d, tsn, tsm) on moving digits or on a "
    "Kinetics-style folder (data=folder root=...)", VideoConfig, VideoClassification)}


# ---- claim 1: size and cost ----

OFFICIAL_BACKBONE_PARAMS = 28_887_088  # the official generate_model(50, n_input_channels=48, pos_dim=[56, 28, 14, 7]),
# counted from its layer definitions (tests/squeezetime/test_squeezetime_size.py); the paper's text says 28.7M, which
# the released code does not give (docs/squeezetime.md, "Size and cost")
K400_MACS = 5.5e9
FRAME_VARIANTS, WIDTH_VARIANTS = (4, 8, 16, 32), (0.5, 0.75, 1.0, 1.25)


def _st_cost(frames: int = 16, width: float = 1.0) -> dict[str, float]:
    return model_cost(lambda: build_video_model("squeezetime", 400, frames, 224, width), (1, 3, frames, 224, 224))


def _run_size(ctx: RunContext) -> Measurement:
    cost = _st_cost()
    head_macs = 2048 * 400  # the I2DHead's linear layer, outside the official backbone count
    head_params = head_macs + 400
    frames = {t: _st_cost(frames=t) for t in FRAME_VARIANTS}
    widths = {w: _st_cost(width=w) for w in WIDTH_VARIANTS}
    stem_params_per_frame = 3 * 5 * 5 * 64  # only the stem sees the frame count
    fig, axes = plotting.figure(8, 3, ncols=2)
    ax_t, ax_w = axes[0]
    ax_t.plot(FRAME_VARIANTS, [frames[t]["macs"] / 1e9 for t in FRAME_VARIANTS], marker="o", label="GMACs")
    ax_t.plot(FRAME_VARIANTS, [frames[t]["params"] / 1e6 for t in FRAME_VARIANTS], marker="s", label="M params")
    ax_t.set(xlabel="input frames (224x224)", title="frames variants (width 1.0)", xscale="log", xticks=FRAME_VARIANTS,
             xticklabels=[str(t) for t in FRAME_VARIANTS])
    ax_t.legend()
    ax_w.plot(WIDTH_VARIANTS, [widths[w]["macs"] / 1e9 for w in WIDTH_VARIANTS], marker="o", label="GMACs")
    ax_w.plot(WIDTH_VARIANTS, [widths[w]["params"] / 1e6 for w in WIDTH_VARIANTS], marker="s", label="M params")
    ax_w.set(xlabel="width multiplier (16 frames)", title="width variants")
    ax_w.legend()
    path = plotting.save(fig, ctx.figure_path("variants_cost.png"))
    values = {
        "backbone_params": int(cost["params"] - head_params),
        "backbone_params_M": round((cost["params"] - head_params) / 1e6, 3),
        "backbone_gmacs": round((cost["macs"] - head_macs) / 1e9, 3),
        "with_head_params_M": round(cost["params"] / 1e6, 3),
        "with_head_gmacs": round(cost["macs"] / 1e9, 3),
        "frames_gmacs": {str(t): round(frames[t]["macs"] / 1e9, 3) for t in FRAME_VARIANTS},
        "frames_params_M": {str(t): round(frames[t]["params"] / 1e6, 4) for t in FRAME_VARIANTS},
        "width_gmacs": {str(w): round(widths[w]["macs"] / 1e9, 3) for w in WIDTH_VARIANTS},
        "width_params_M": {str(w): round(widths[w]["params"] / 1e6, 3) for w in WIDTH_VARIANTS},
        "frames_params_only_in_stem": all(
            frames[t]["params"] - frames[16]["params"] == stem_params_per_frame * (t - 16) for t in FRAME_VARIANTS),
    }
    values["gmacs_rel_error"] = round(abs(values["backbone_gmacs"] * 1e9 / K400_MACS - 1), 4)
    notes = ("Counted like the official script (fvcore on the backbone, one multiply-add = one FLOP): the "
             "torch.utils.flop_counter total / 2, without the 2048x400 head.")
    return Measurement(values, [path], notes)


def _increasing(values: dict) -> bool:
    ordered = list(values.values())
    return all(a < b for a, b in zip(ordered, ordered[1:]))


def _check_size(m: dict) -> bool:
    return (m["backbone_params"] == OFFICIAL_BACKBONE_PARAMS and m["gmacs_rel_error"] <= 0.01
            and m["frames_params_only_in_stem"] and _increasing(m["frames_gmacs"]) and _increasing(m["width_gmacs"])
            and _increasing(m["width_params_M"]))


# ---- claim 2: speed ----

MOBILE_BASELINES = ("tsm", "r2plus1d")  # the equal-MACs comparison (reported, not judged): a 2D net with temporal
# shifts and a factorised 3D net, each at the widest width that costs no more MACs than SqueezeTime


def _inference(model: nn.Module, clips: torch.Tensor):
    def run() -> None:
        with torch.inference_mode():
            model(clips)

    return run


def _clips_per_second(models: dict[str, nn.Module], shapes: dict[str, tuple[int, ...]], batches: tuple[int, ...],
                      repeats: int, device: torch.device) -> dict[int, dict[str, list[float]]]:
    """{batch: {name: clips/s of each repeat}}: every model on its own clip shape (batch first), interleaved within
    each repeat (bench.interleaved), so a change of the machine's load hits every model alike."""
    rates = {}
    for b in batches:
        clips = {n: torch.rand(b, *shapes[n][1:], device=device) for n in models}  # (B, C, T, H, W)
        seconds = bench.interleaved({n: bench.seconds_of(_inference(m, clips[n]), device) for n, m in models.items()},
                                    repeats)
        rates[b] = {n: [b / s for s in t] for n, t in seconds.items()}
    return rates


def _speed_figure(ctx: RunContext, rates: dict[int, dict[str, list[float]]], labels: dict[str, str], title: str,
                  name: str) -> Path:
    fig, axes = plotting.figure(9, 3.4, ncols=len(rates))
    for ax, (b, by_model) in zip(axes[0], rates.items()):
        ax.boxplot(list(by_model.values()), tick_labels=[labels[n] for n in by_model])
        ax.set(ylabel="clips / s", title=f"batch {b}, {len(next(iter(by_model.values())))} interleaved repeats")
    fig.suptitle(title)
    return plotting.save(fig, ctx.figure_path(name))


def _equal_macs(ctx: RunContext, device: torch.device, device_name: str) -> tuple[dict, dict, Path]:
    """SqueezeTime against TSM and R(2+1)D shrunk to (at most) its MACs: values, timings and the figure."""
    size = ctx.pick(smoke=32, quick=112, full=224)
    batch = ctx.pick(smoke=2, quick=4, full=8)
    repeats = ctx.pick(smoke=3, quick=6, full=30, standard=10)  # reported, not judged: fewer repeats at quick
    frames = 16
    scale = "tiny" if ctx.preset == "smoke" else "paper"
    shape = (1, 3, frames, size, size)
    st_macs = model_cost(lambda: build_video_model("squeezetime", 400, frames, size, scale=scale), shape)["macs"]
    widths = {"squeezetime": 1.0, **{n: width_for_cost(n, st_macs, frames, size, scale) for n in MOBILE_BASELINES}}
    build = {n: (lambda n=n: build_video_model(n, 400, frames, size, widths[n], scale)) for n in widths}
    torch.manual_seed(ctx.seed)
    models = {n: make().to(device).eval() for n, make in build.items()}
    rates = _clips_per_second(models, dict.fromkeys(models, shape), (1, batch), repeats, device)
    costs = {n: model_cost(make, shape) for n, make in build.items()}
    values = {"equal_macs_input": f"{frames}x{size}x{size}", "equal_macs_batch": batch, "equal_macs_repeats": repeats,
              **{f"equal_macs_{n}_width": widths[n] for n in widths},
              **{f"equal_macs_{n}_gmacs": round(costs[n]["macs"] / 1e9, 3) for n in costs},
              **{f"equal_macs_{n}_params_M": round(costs[n]["params"] / 1e6, 3) for n in costs}}
    timings = {**{f"equal_macs_{n}_clips_per_s_b{b}": [round(r, 3) for r in rates[b][n]] for b in rates
                  for n in models},
               "equal_macs_ratios": {f"squeezetime / {n}, batch {b}": str(log_ratio_interval(rates[b]["squeezetime"],
                                                                                                rates[b][n]))
                                     for n in MOBILE_BASELINES for b in rates}}
    labels = {n: f"{n}\n{costs[n]['macs'] / 1e9:.2f} GMACs" for n in models}
    figure = _speed_figure(ctx, rates, labels, f"at (at most) SqueezeTime's MACs, {values['equal_macs_input']}, "
                                               f"{device_name}", "speed_equal_macs.png")
    return values, timings, figure


def _run_speed(ctx: RunContext) -> Measurement:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if ctx.preset == "full" and device.type != "cuda":
        raise SkipClaim("needs a GPU (the full preset times the paper's inputs at batch 32)")
    device_name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    # the paper's comparison: each net at its published width and input (published.PUBLISHED); smoke shrinks the
    # inputs to 32x32 so that the test suite stays fast
    size = {n: ctx.pick(smoke=32, quick=net.size, full=net.size) for n, net in PUBLISHED.items()}
    batch = ctx.pick(smoke=2, quick=2, full=32, standard=4)
    repeats = ctx.pick(smoke=3, quick=6, full=30, standard=10)
    torch.manual_seed(ctx.seed)
    models = {n: build_published(n, size[n]).to(device).eval() for n in PUBLISHED}
    shapes = {n: net.shape(1, size[n]) for n, net in PUBLISHED.items()}
    rates = _clips_per_second(models, shapes, (1, batch), repeats, device)
    costs = {n: model_cost(lambda n=n: build_published(n, size[n]), shapes[n]) for n in PUBLISHED}
    values = {"batch": batch, "repeats": repeats,
              **{f"{n}_input": "x".join(map(str, shapes[n][2:])) for n in PUBLISHED},
              **{f"{n}_gmacs": round(costs[n]["macs"] / 1e9, 3) for n in PUBLISHED},
              **{f"{n}_params_M": round(costs[n]["params"] / 1e6, 3) for n in PUBLISHED}}
    timings = {"device": device_name,
               **{f"{n}_clips_per_s_b{b}": [round(r, 3) for r in rates[b][n]] for b in rates for n in models}}
    labels = {n: f"{PUBLISHED[n].label}\n{values[n + '_input']}\n{costs[n]['macs'] / 1e9:.2f} GMACs" for n in models}
    figures = [_speed_figure(ctx, rates, labels, f"published widths and inputs (arXiv 2405.08344, Table 1), "
                                                 f"{device_name}", "speed.png")]
    equal_values, equal_timings, equal_figure = _equal_macs(ctx, device, device_name)
    notes = (f"The paper timed on {PAPER_HARDWARE}; this run is {device_name}, which is not that hardware: the "
             "ratios say which net this machine runs faster, not what the paper's machines measured. Speeds depend "
             "on the machine and its load; the ratios come from interleaved repeats, so a load change hits every "
             "model alike. Reported, not judged: SqueezeTime against TSM and R(2+1)D shrunk to its MACs at "
             f"{equal_values['equal_macs_input']} (timings 'equal_macs_ratios').")
    return Measurement({**values, **equal_values}, [*figures, equal_figure], notes,
                       timings={**timings, **equal_timings})


def _check_speed(m: dict) -> Decision:
    batch = m["batch"]
    decision = decide(*(ratio_at_least(f"clips/s, squeezetime / {n}, batch {b}", m[f"squeezetime_clips_per_s_b{b}"],
                                       m[f"{n}_clips_per_s_b{b}"], 1.0, effect=SPEED_GAIN)
                        for n in COMPARED_NETS for b in (1, batch)))
    hardware = (f"Timed on {m.get('device', 'this machine')}, not the paper's hardware ({PAPER_HARDWARE}): the "
                "verdict is about this machine.")
    return Decision(decision.outcome, f"{decision.reason}. {hardware}", decision.tests)


# ---- claims 3 and 4: training on moving digits ----

ABLATION = {"conv": "squeezetime_conv", "tfc": "squeezetime_tfc", "tfc_ioi": "squeezetime"}  # CTL step -> model
COMPARED = ("squeezetime", "tsn", "r3d")  # keeps_time
CEILING = {"squeezetime": 1.0, "tsn": 0.5, "r3d": 1.0}  # the best accuracy each can reach on the task: TSN's
# per-frame average is order-blind, and a clip and its reversal carry opposite labels (squeezetime.task)
EVALUATIONS = 10  # test-accuracy evaluations per run (the curve the plateau is judged on)


def _digits_config(ctx: RunContext, seed: int) -> VideoConfig:
    if ctx.preset == "full" and not torch.cuda.is_available():
        raise SkipClaim("needs a GPU (the full preset trains paper-size models on 20,000 16-frame clips)")
    base = VideoConfig()
    # standard: 12x quick; at 3x (450 steps) the test-accuracy trends were still 1.4-1.5 points per 30% of training
    # with intervals reaching 2.5 after 8 seeds, and at 6x (900) R3D's was 0.98 [-0.08, 2.04] after 8 seeds (issue
    # 31), so the plateau could not be shown; the warm-up stays 90 steps, so the run extends the 900-step one
    steps = ctx.pick(smoke=12, quick=150, full=3000, standard=1800)
    # a constant rate after warm-up, not one annealed to 0: under an annealed rate the test accuracy stops rising at
    # the end whether or not the model converged, and the plateau precondition would mean nothing
    train = replace(base.train, seed=seed, progress=False, steps=steps, eval_every=max(1, steps // EVALUATIONS),
                    schedule="constant", batch_size=ctx.pick(smoke=16, quick=32, full=64),
                    warmup_steps=ctx.pick(smoke=2, quick=15, full=200, standard=90))
    return replace(base, train=train,
                   n_train=ctx.pick(smoke=128, quick=2000, full=20000), n_test=ctx.pick(smoke=64, quick=500, full=2000),
                   num_frames=ctx.pick(smoke=8, quick=8, full=16), image_size=ctx.pick(smoke=32, quick=32, full=64),
                   scale=ctx.pick(smoke="tiny", quick="tiny", full="paper"),
                   width_mult=ctx.pick(smoke=0.25, quick=0.25, full=1.0))


def _digits(ctx: RunContext):
    """The moving-digits clips every model of every seed trains and is tested on (the data is fixed; seeds vary
    the models' initialisation and batch order)."""
    return ctx.shared("digits", lambda: VideoClassification(_digits_config(ctx, ctx.seed)).digits)


def _trained(ctx: RunContext, name: str, seed: int) -> dict:
    """Model `name` trained on seed `seed` (once per reproduce run: the two claims share it)."""
    def build() -> dict:
        digits = _digits(ctx)
        method = VideoClassification(replace(_digits_config(ctx, seed), model=name), digits=digits)
        started = time.process_time()
        result = Trainer(method, method.cfg.train).fit()
        model = result.model.eval()
        device = next(model.parameters()).device
        test_x = digits.test_x
        with torch.no_grad():
            pred = model(test_x.to(device)).argmax(1).cpu()
            reversed_pred = model(test_x.flip(2).to(device)).argmax(1).cpu()  # (N, C, T, H, W): time reversed
        n = len(test_x)
        cfg = method.cfg
        cost = model_cost(method.build_model, (1, 1, cfg.num_frames, cfg.image_size, cfg.image_size))
        return {"test_acc": result.final["test_acc"],
                "train_acc": accuracy(model, digits.train_x[:n], digits.train_y[:n], device),
                "late_trend_pts": late_trend(*result.history.series("eval", "test_acc")),
                "curve": result.history.series("eval", "test_acc"),
                "reversal_agreement": (pred == reversed_pred).float().mean().item(),
                "macs": cost["macs"], "params": cost["params"], "cpu_seconds": time.process_time() - started}

    return ctx.shared(f"{name}/{seed}", build)


def _over_seeds(ctx: RunContext, names: dict[str, str], desc: str) -> dict[str, list[float]]:
    """Per seed, for each short name -> model: test and train accuracy and the late trend of test accuracy."""
    def measure(seed: int) -> dict[str, float]:
        row = {}
        for short, name in names.items():
            run = _trained(ctx, name, seed)
            row.update({f"{short}_acc": run["test_acc"], f"{short}_train_acc": run["train_acc"],
                        f"{short}_late_trend_pts": run["late_trend_pts"]})
        return row

    return ctx.over_seeds(measure, desc)


def _curves_figure(ctx: RunContext, names: dict[str, str], title: str) -> Path:
    """Test accuracy during training, every seed (one colour per model)."""
    fig, ax = plotting.figure()
    for i, (short, name) in enumerate(names.items()):
        for k, seed in enumerate(ctx.seeds):
            steps, values = _trained(ctx, name, seed)["curve"]
            ax.plot(steps, values, color=f"C{i}", alpha=0.7, marker="o", markersize=3,
                    label=short if k == 0 else None)
    ax.axhline(0.25, color="grey", linestyle=":", label="chance")
    ax.set(xlabel="step", ylabel="test accuracy", ylim=(0, 1), title=f"{title} ({len(ctx.seeds)} seeds)")
    ax.legend()
    return plotting.save(fig, ctx.figure_path("test_accuracy.png"))


def _clip_figure(ctx: RunContext, digits, path_name: str) -> Path:
    frames = digits.test_x.shape[2]
    fig, axes = plotting.figure(1.1 * frames, 2.4, ncols=frames, nrows=2)
    for row in range(2):
        for t in range(frames):
            ax = axes[row][t]
            ax.imshow(digits.test_x[row, 0, t], cmap="gray", vmin=0, vmax=1)
            ax.set(xticks=[], yticks=[], title=f"t={t}" if row == 0 else "")
            ax.grid(False)
        axes[row][0].set_ylabel(DIRECTIONS[digits.test_y[row]])
    return plotting.save(fig, ctx.figure_path(path_name))


def _setting(ctx: RunContext) -> dict:
    cfg = _digits_config(ctx, ctx.seed)
    return {"steps": cfg.train.steps, "clips": f"{cfg.n_train} train / {cfg.n_test} test, "
                                               f"{cfg.num_frames}x{cfg.image_size}x{cfg.image_size}"}


SPEED_GAIN = Effect(1.1, "a practical bound: 10% more clips per second; the paper's Table 1 ratios against "
                         "these nets are 1.5x and 1.8x (CPU latency, batch 1) and 2.1x and 2.0x (GPU throughput)")
R3D_MARGIN = Effect(0.05, "a practical bound: 5 points of accuracy")
CTL_GAIN = Effect(0.01, "a practical bound: 1 point of accuracy per CTL part (the paper's K400 ablation gains are "
                        "of that order)")


def _plateau(label: str, keys: tuple[str, ...]) -> Precondition:
    return plateau(label, keys, measure="the least-squares trend of test accuracy over the second half of training")


def _run_keeps_time(ctx: RunContext) -> Measurement:
    names = {n: n for n in COMPARED}
    per_seed = _over_seeds(ctx, names, "SqueezeTime, TSN, R3D")
    first = {n: _trained(ctx, n, ctx.seeds[0]) for n in COMPARED}
    per_seed["tsn_same_prediction_on_reversed_clip"] = [_trained(ctx, "tsn", s)["reversal_agreement"]
                                                        for s in ctx.seeds]
    values = {**_setting(ctx), "chance": 0.25, **{f"{n}_ceiling": CEILING[n] for n in COMPARED},
              **{f"{n}_mmacs": round(first[n]["macs"] / 1e6, 2) for n in COMPARED},
              "cost_ratio_vs_r3d": round(first["squeezetime"]["macs"] / first["r3d"]["macs"], 3)}
    figures = [_curves_figure(ctx, names, "moving digits: test accuracy during training"),
               _clip_figure(ctx, _digits(ctx), "example_clips.png")]
    return Measurement(values, figures, "Ceilings: TSN averages per-frame scores, so a clip and its time reversal "
                                        "(opposite label) get the same prediction: it cannot beat 50% on this task; "
                                        "SqueezeTime and R3D see the frame order (ceiling 100%). train_acc is each "
                                        "model's accuracy on 500 of its training clips.",
                       per_seed=per_seed,
                       timings={"train_cpu_seconds_first_seed": {n: round(r["cpu_seconds"], 1)
                                                                 for n, r in first.items()}})


def _check_keeps_time(m: dict):
    """Judged against R3D, which sees the frame order as SqueezeTime does: a comparison that can fail. TSN is
    reported, not judged: its order-blind ceiling (50%) is below what the task lets a temporal model reach, so
    "beats TSN" holds by the task's design once SqueezeTime learns anything about time."""
    return decide(no_worse("test accuracy, squeezetime - r3d", m["squeezetime_acc"], m["r3d_acc"], effect=R3D_MARGIN),
                  every_seed("MACs, squeezetime / r3d", [m["cost_ratio_vs_r3d"]], "<=", 0.5))


def _run_ablation(ctx: RunContext) -> Measurement:
    per_seed = _over_seeds(ctx, ABLATION, "CTL ablation")
    first = {k: _trained(ctx, n, ctx.seeds[0]) for k, n in ABLATION.items()}
    values = {**_setting(ctx), **{f"{k}_mmacs": round(r["macs"] / 1e6, 2) for k, r in first.items()}}
    fig, ax = plotting.figure()
    for i, k in enumerate(ABLATION):
        accs = per_seed[f"{k}_acc"]
        ax.hlines(sum(accs) / len(accs), i - 0.3, i + 0.3, color=f"C{i}", lw=3, label="mean" if i == 0 else None)
        ax.scatter([i] * len(accs), accs, color="black", s=10, zorder=3)
        for j in range(len(accs)) if i else ():  # paired: a seed's line joins its runs
            ax.plot([i - 1, i], [per_seed[f"{list(ABLATION)[i - 1]}_acc"][j], accs[j]], color="grey", alpha=0.4)
    every = [a for k in ABLATION for a in per_seed[f"{k}_acc"]]
    ax.set(xticks=range(len(ABLATION)), xticklabels=["plain conv", "TFC", "TFC + IOI"], ylabel="test accuracy",
           ylim=(max(0.0, min(every) - 0.05), min(1.0, max(every) + 0.05)),  # the differences are a few points
           title=f"CTL ablation on moving digits ({len(ctx.seeds)} seeds, lines pair a seed)")
    ax.legend()
    figures = [plotting.save(fig, ctx.figure_path("ablation.png")),
               _curves_figure(ctx, ABLATION, "CTL ablation: test accuracy during training")]
    return Measurement(values, figures, per_seed=per_seed)


def _check_ablation(m: dict):
    return decide(beats("test accuracy, TFC - plain conv", m["tfc_acc"], m["conv_acc"], effect=CTL_GAIN),
                  beats("test accuracy, TFC + IOI - TFC", m["tfc_ioi_acc"], m["tfc_acc"], effect=CTL_GAIN))


CLAIMS = [
    Claim(
        id="squeezetime.size_and_cost",
        paper=PAPER,
        statement="SqueezeTime for Kinetics-400 (16x224x224 input) is the official code's net, with 5.5 GFLOPs; its "
                  "frames (4-32) and width (0.5-1.25) variants are configurations of the same net.",
        paper_reports="28.7M params (the paper; the released backbone has 28,887,088), 5.5 GFLOPs (fvcore, backbone); "
                      "variants in the ablation tables",
        criterion="backbone params == 28,887,088, the official backbone's count from its layer definitions (the "
                  "paper's 28.7M is not what the released code gives: docs), and backbone GMACs within 1% of 5.5G; "
                  "frame count changes only the stem "
                  "(params differ by exactly 4,800 per frame) and GMACs grow with frames; params and GMACs grow "
                  "with width",
        run=_run_size,
        check=_check_size,
        kind="check",
    ),
    Claim(
        id="squeezetime.faster_than_mobile_nets",
        paper=PAPER,
        statement="SqueezeTime processes more clips per second than the mobile video nets of the paper's speed table "
                  "at their published widths and inputs (TSM-R18, 8x224x224; X3D-XS, 4x182x182; SqueezeTime "
                  "16x224x224), at batch 1 (latency) and in batches (throughput).",
        paper_reports="Table 1, on an Intel Xeon Gold 6278C CPU (latency, batch 1) and an NVIDIA Tesla V100 GPU "
                      "(throughput, largest batch): SqueezeTime 123 ms and 903 clips/s, TSM-R18 186 ms and 429, "
                      "X3D-XS 219 ms and 441; +80% GPU throughput vs the strongest comparable model",
        criterion="each net built from its published definition (no weights) on the input of the authors' released "
                  "config; clips/s ratio "
                  "SqueezeTime / net over interleaved repeats (geometric mean, 95% t-interval of the log-ratios) >= 1 "
                  "for TSM-R18 and X3D-XS, at batch 1 and at the preset's batch; a test fails when its interval lies "
                  "below 1.1 (smallest effect: 10% more clips/s, a practical bound); Holm over the four. Timed on "
                  "the run's device (a CPU thread at quick and standard), which is not the paper's hardware. "
                  "Reported, not judged: TSM and R(2+1)D shrunk to SqueezeTime's MACs at 16x112x112",
        run=_run_speed,
        check=_check_speed,
        kind="empirical",
    ),
    Claim(
        id="squeezetime.keeps_time",
        paper=PAPER,
        statement="Squeezing time into channels keeps temporal information: on a task whose label is the direction "
                  "of motion, SqueezeTime comes close to a 3D CNN at a fraction of its cost (TSN, with no temporal "
                  "modelling, is shown beside them at its order-blind ceiling).",
        paper_reports="K400 top-1 71.6 (SqueezeTime) vs lower for TSN-style 2D nets; a 3D net costs far more FLOPs",
        criterion="over seeds, paired (95% t-intervals): squeezetime - r3d test accuracy >= -0.05 (non-inferior "
                  "by 5 points, a practical bound; not met when wholly below 0), and squeezetime MACs <= 0.5 x R3D "
                  "MACs (same steps, data and optimizer for all); Holm over the two. TSN is reported, not judged: "
                  "its order-blind ceiling is 50% by the task's design",
        run=_run_keeps_time,
        check=_check_keeps_time,
        kind="empirical",
        preconditions=(_plateau("SqueezeTime and R3D", ("squeezetime_late_trend_pts", "r3d_late_trend_pts")),
                       Precondition("the task needs time and can be learnt: R3D is above the order-blind ceiling "
                                    "(50%) by >= 10 points over seeds",
                                    lambda m: at_least("R3D test accuracy", m["r3d_acc"], 0.6))),
    ),
    Claim(
        id="squeezetime.ctl_ablation",
        paper=PAPER,
        statement="In the CTL block, the Temporal Focus Convolution improves on a plain conv, and adding the "
                  "Inter-temporal Object Interaction module improves further.",
        paper_reports="each CTL part adds top-1 on K400 (ablation of TFC and IOI)",
        criterion="sequential looks at 3 and 5 seeds at quick (Pocock), paired intervals of the per-seed "
                  "differences: TFC - plain conv > 0 and TFC + IOI - TFC > 0 (test accuracy, same steps, data and "
                  "optimizer; smallest effect 1 point each, a practical bound); Holm over the two",
        run=_run_ablation,
        check=_check_ablation,
        kind="empirical",
        preconditions=(_plateau("all three CTL variants", tuple(f"{k}_late_trend_pts" for k in ABLATION)),),
        looks={"quick": (3, 5), "full": (5, 8)},
    ),
]
