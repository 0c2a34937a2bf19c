"""SqueezeTime's claims (`paperzoo reproduce squeezetime`) and its training method (`paperzoo train squeezetime`).

1. size_and_cost       the K400 model's parameters and FLOPs, and the frames/width variants
2. faster_than_3d_cnn  clips/s of SqueezeTime vs R3D-18 at the same input, side by side
3. keeps_time          on moving digits, SqueezeTime >> TSN (no temporal modelling), close to R3D, at a fraction
                       of its cost
4. ctl_ablation        plain conv vs TFC vs TFC + IOI on moving digits
Claims 3 and 4 share one set of trained models (`ctx.shared`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo import plotting
from paperzoo.catalog import TrainSpec
from paperzoo.claims import Claim, Measurement, RunContext, SkipClaim
from paperzoo.config import at_least, positive, require
from paperzoo.engine.trainer import StepOutput, TrainConfig, Trainer
from paperzoo.errors import ConfigError
from paperzoo.squeezetime.task import DIGIT_SIZE, DIRECTIONS, moving_digits
from paperzoo.squeezetime.zoo import MODEL_NAMES, build_video_model, clips_per_second, model_cost

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
        require(self.model in MODEL_NAMES, prefix + "model", self.model, f"one of {', '.join(MODEL_NAMES)}")
        at_least(self, prefix, 1, "num_frames", "n_train", "n_test", "interval")
        positive(self, prefix, "width_mult")
        require(self.image_size >= 32 or not self.model.startswith("squeezetime"), prefix + "image_size",
                self.image_size, f">= 32 for model={self.model} (five stride-2 steps)")
        canvas = DIGIT_SIZE + 2 * (self.num_frames - 1)  # a digit moving up to 2 px per frame stays in view
        require(self.image_size >= canvas or self.data != "moving_digits", prefix + "image_size", self.image_size,
                f">= {canvas} for {self.num_frames} frames of moving digits (or lower num_frames)")


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

def _run_speed(ctx: RunContext) -> Measurement:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if ctx.preset == "full" and device.type != "cuda":
        raise SkipClaim("needs a GPU (the full preset times 16x224x224 clips at batch 8)")
    size = ctx.pick(smoke=32, quick=112, full=224)
    batch = ctx.pick(smoke=4, quick=4, full=8)
    repeats = ctx.pick(smoke=2, quick=3, full=20)
    frames = 16
    scale = "tiny" if ctx.preset == "smoke" else "paper"
    torch.manual_seed(ctx.seed)
    models = {name: build_video_model(name, 400, frames, size, scale=scale).to(device) for name in ("squeezetime", "r3d")}
    clips = torch.rand(batch, 3, frames, size, size, device=device)
    rates: dict[str, dict[int, float]] = {name: {} for name in models}
    for b in (1, batch):  # side by side: the two models alternate on the same input
        for name, model in models.items():
            rates[name][b] = clips_per_second(model, clips[:b], repeats)
    values = {"input": f"{frames}x{size}x{size}"}
    timings = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "squeezetime_clips_per_s_b1": round(rates["squeezetime"][1], 2),
        "r3d_clips_per_s_b1": round(rates["r3d"][1], 2),
        f"squeezetime_clips_per_s_b{batch}": round(rates["squeezetime"][batch], 2),
        f"r3d_clips_per_s_b{batch}": round(rates["r3d"][batch], 2),
        "latency_speedup_b1": round(rates["squeezetime"][1] / rates["r3d"][1], 2),
        "throughput_speedup": round(rates["squeezetime"][batch] / rates["r3d"][batch], 2),
    }
    fig, ax = plotting.figure()
    xs = torch.arange(2)
    for k, name in enumerate(models):
        ax.bar(xs + 0.4 * k, [rates[name][1], rates[name][batch]], width=0.4, label=name)
    ax.set(xticks=xs + 0.2, xticklabels=["batch 1", f"batch {batch}"], ylabel="clips / s", yscale="log",
           title=f"inference speed, {values['input']}, {timings['device']}")
    ax.legend()
    return Measurement(values, [plotting.save(fig, ctx.figure_path("speed.png"))], timings=timings)


# ---- claims 3 and 4: training on moving digits ----

TRAINED = ("squeezetime", "squeezetime_tfc", "squeezetime_conv", "tsn", "r3d")


def _digits_config(ctx: RunContext) -> VideoConfig:
    if ctx.preset == "full" and not torch.cuda.is_available():
        raise SkipClaim("needs a GPU (the full preset trains paper-size models on 20,000 16-frame clips)")
    base = VideoConfig()
    train = replace(base.train, seed=ctx.seed, progress=False,
                    steps=ctx.pick(smoke=12, quick=200, full=3000),
                    batch_size=ctx.pick(smoke=16, quick=32, full=64),
                    warmup_steps=ctx.pick(smoke=2, quick=20, full=200))
    return replace(base, train=train,
                   n_train=ctx.pick(smoke=128, quick=2000, full=20000), n_test=ctx.pick(smoke=64, quick=500, full=2000),
                   num_frames=ctx.pick(smoke=8, quick=8, full=16), image_size=ctx.pick(smoke=32, quick=32, full=64),
                   scale=ctx.pick(smoke="tiny", quick="tiny", full="paper"),
                   width_mult=ctx.pick(smoke=0.25, quick=0.25, full=1.0))


def _train_all(ctx: RunContext) -> dict:
    cfg = _digits_config(ctx)
    base = VideoClassification(cfg)
    runs = {}
    for name in TRAINED:
        method = VideoClassification(replace(cfg, model=name), digits=base.digits)
        started = time.process_time()
        result = Trainer(method, method.cfg.train).fit()
        model = result.model.eval()
        device = next(model.parameters()).device
        with torch.no_grad():
            reversed_pred = model(base.digits.test_x.flip(2).to(device)).argmax(1).cpu()
            pred = model(base.digits.test_x.to(device)).argmax(1).cpu()
        cost = model_cost(method.build_model, (1, 1, cfg.num_frames, cfg.image_size, cfg.image_size))
        runs[name] = {"test_acc": result.final["test_acc"], "curve": result.history.series("train", "loss"),
                      "reversal_agreement": (pred == reversed_pred).float().mean().item(),
                      "macs": cost["macs"], "params": cost["params"],
                      "cpu_seconds": time.process_time() - started}
    return {"cfg": cfg, "runs": runs, "digits": base.digits}


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


def _run_keeps_time(ctx: RunContext) -> Measurement:
    shared = ctx.shared("digits_runs", lambda: _train_all(ctx))
    runs = shared["runs"]
    curves = plotting.curves(ctx.figure_path("train_loss.png"),
                             {n: runs[n]["curve"] for n in ("squeezetime", "tsn", "r3d")},
                             "step", "train loss", "moving digits: training loss", logy=True)
    values = {
        "squeezetime_acc": round(runs["squeezetime"]["test_acc"], 4),
        "tsn_acc": round(runs["tsn"]["test_acc"], 4),
        "r3d_acc": round(runs["r3d"]["test_acc"], 4),
        "chance": 0.25,
        "order_blind_ceiling": 0.5,
        "tsn_same_prediction_on_reversed_clip": round(runs["tsn"]["reversal_agreement"], 4),
        "squeezetime_same_prediction_on_reversed_clip": round(runs["squeezetime"]["reversal_agreement"], 4),
        "squeezetime_mmacs": round(runs["squeezetime"]["macs"] / 1e6, 2),
        "tsn_mmacs": round(runs["tsn"]["macs"] / 1e6, 2),
        "r3d_mmacs": round(runs["r3d"]["macs"] / 1e6, 2),
        "cost_ratio_vs_r3d": round(runs["squeezetime"]["macs"] / runs["r3d"]["macs"], 3),
        "steps": shared["cfg"].train.steps,
        "clips": f"{shared['cfg'].n_train} train / {shared['cfg'].n_test} test, "
                 f"{shared['cfg'].num_frames}x{shared['cfg'].image_size}x{shared['cfg'].image_size}",
    }
    figures = [curves, _clip_figure(ctx, shared["digits"], "example_clips.png")]
    return Measurement(values, figures, "TSN averages per-frame scores, so a clip and its time reversal (opposite "
                                        "label) get the same prediction: it cannot beat 50% on this task.",
                       timings={"train_cpu_seconds": {n: round(r["cpu_seconds"], 1) for n, r in runs.items()}})


def _check_keeps_time(m: dict) -> bool:
    return (m["squeezetime_acc"] >= m["tsn_acc"] + 0.25 and m["squeezetime_acc"] >= m["r3d_acc"] - 0.05
            and m["cost_ratio_vs_r3d"] <= 0.5)


def _run_ablation(ctx: RunContext) -> Measurement:
    runs = ctx.shared("digits_runs", lambda: _train_all(ctx))["runs"]
    names = {"conv": "squeezetime_conv", "tfc": "squeezetime_tfc", "tfc_ioi": "squeezetime"}
    values = {f"{k}_acc": round(runs[n]["test_acc"], 4) for k, n in names.items()}
    values.update({f"{k}_mmacs": round(runs[n]["macs"] / 1e6, 2) for k, n in names.items()})
    fig, ax = plotting.figure()
    ax.bar(list(names), [values[f"{k}_acc"] for k in names])
    ax.set(ylabel="test accuracy", title="CTL ablation on moving digits", ylim=(0, 1))
    return Measurement(values, [plotting.save(fig, ctx.figure_path("ablation.png"))],
                       "One seed; differences of a few points are within seed noise at this scale.")


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
    ),
    Claim(
        id="squeezetime.faster_than_3d_cnn",
        paper=PAPER,
        statement="SqueezeTime processes more clips per second than a 3D CNN (R3D-18) at the same input, at "
                  "batch 1 (latency) and in batches (throughput).",
        paper_reports="+80% GPU throughput vs the strongest comparable model; lower CPU and phone latency",
        criterion="latency_speedup_b1 > 1 and throughput_speedup > 1 (SqueezeTime clips/s over R3D-18 clips/s)",
        run=_run_speed,
        check=lambda m: m["latency_speedup_b1"] > 1 and m["throughput_speedup"] > 1,
    ),
    Claim(
        id="squeezetime.keeps_time",
        paper=PAPER,
        statement="Squeezing time into channels keeps temporal information: on a task whose label is the direction "
                  "of motion, SqueezeTime beats TSN (no temporal modelling) by a wide margin and comes close to a "
                  "3D CNN at a fraction of its cost.",
        paper_reports="K400 top-1 71.6 (SqueezeTime) vs lower for TSN-style 2D nets; a 3D net costs far more FLOPs",
        criterion="squeezetime_acc >= tsn_acc + 0.25 and squeezetime_acc >= r3d_acc - 0.05 and "
                  "squeezetime MACs <= 0.5 x R3D MACs (same steps, data and optimizer for all)",
        run=_run_keeps_time,
        check=_check_keeps_time,
    ),
    Claim(
        id="squeezetime.ctl_ablation",
        paper=PAPER,
        statement="In the CTL block, the Temporal Focus Convolution improves on a plain conv, and adding the "
                  "Inter-temporal Object Interaction module improves further.",
        paper_reports="each CTL part adds top-1 on K400 (ablation of TFC and IOI)",
        criterion="conv_acc < tfc_acc < tfc_ioi_acc",
        run=_run_ablation,
        check=lambda m: m["conv_acc"] < m["tfc_acc"] < m["tfc_ioi_acc"],
    ),
]
