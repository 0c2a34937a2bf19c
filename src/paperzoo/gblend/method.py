"""Multi-modal training strategies as engine methods: unimodal, naive joint, dropout, mid fusion, offline and
online Gradient-Blending, and OGM-GE.

Wang, Tran, Feiszli, CVPR 2020, arXiv 1905.12681, section 3.3. One `MultiModalMethod` trains a
`MultiModalNet` with the blended loss sum_k w_k L_k (`blended_loss`); what differs between strategies is only the
network options and where the weights come from:

  unimodal   one modality, w = {m: 1}
  naive      late fusion, w = {fused: 1} (also: + dropout, mid fusion, + OGM-GE gradient modulation)
  offline    w estimated once by `offline_weights` from short runs: each unimodal model and the naive joint model
             trained for n epochs; w_k from the (checkpoint 0 -> n) window of head k's own run
  online     starts from uniform weights; every n epochs ("super-epoch") re-estimates w_k from the heads of the
             model being trained, over the last window (N -> N+n)

Every epoch the method evaluates each head on a fixed slice of the training set (L^T, in eval mode), on the
held-out split V taken from the training data (L^V), and on the test split; `history` keeps these checkpoints,
and checkpoint 0 is taken before the first step. The trainer calls `evaluate` once per epoch (its `eval_every`).
A late-fusion model's checkpoints also hold each modality's share of the fused logits, "fused@m" = W_m phi_m + b/K
(losses and accuracies as if it were a head), which shows through which modality the fused head overfits.

Every strategy trains with SGD and momentum 0.9 at a constant learning rate, as the paper's networks and the OGM-GE
release (Peng et al., arXiv 2203.15332, main.py) do. The methods are designed for it: under SGD a loss weight w_k
sets the step of the parameters its loss drives, and OGM-GE's factor k_u the step of encoder u. Adam divides each
parameter's gradient by its running RMS, so a constant weight on the loss that alone drives some parameters (a
unimodal head under w_k L_k, a whole unimodal branch) cancels, and only the balance between terms that share
parameters remains.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from paperzoo.config import at_least, positive, require
from paperzoo.engine.trainer import StepOutput, TrainConfig, Trainer
from paperzoo.errors import ConfigError
from paperzoo.gblend.data import AVDigits, AVDigitsConfig, Split, av_digits
from paperzoo.gblend.loss import blended_loss
from paperzoo.gblend.model import FUSED, MultiModalNet
from paperzoo.gblend.ogm import GradientModulator
from paperzoo.gblend.ogr import blend_weights, ogr_window

INPUT_SIZES = {"image": 28 * 28, "audio": 40 * 51}
# SGD's learning rate, chosen on the held-out split at a pilot seed for the unimodal and naive models (the claims'
# 800 training pairs, 80 epochs; docs/gblend.md): the one of {0.01, 0.03, 0.1, 0.3} at which every model trains and
# the image-only model reaches its held-out plateau
LR = 0.03
Blend = Literal["fused", "unimodal", "offline", "online"]


@dataclass
class MultiModalConfig:
    """`paperzoo train gblend_*`: the multi-modal network, which heads train with which weights (naive fusion,
    unimodal, offline or online Gradient-Blending, OGM-GE), the data and the training."""

    modalities: tuple[str, ...] = ("image", "audio")
    """Modalities used, of image and audio (one: a unimodal model)."""
    fusion: Literal["late", "mid"] = "late"
    """late: concatenate the encoders' features before the fused head; mid: after their first layer."""
    dropout: float = 0.0
    """Dropout on the fused features (the paper's dropout baseline)."""
    blend: Blend = "fused"
    """Which heads train with which weights: fused (naive fusion), unimodal, offline or online Gradient-Blending."""
    weights: tuple[float, ...] = ()
    """Offline blending weights (w_image, w_audio, w_fused); empty = estimate them with short runs."""
    super_epoch: int = 3
    """n: the window of the weight estimates (offline: epochs 0 -> n; online: re-estimated every n epochs)."""
    min_overfit: float = 1e-3
    """Floor of |delta O| in the blending weights (ogr.py)."""
    ogm_alpha: float = 0.0
    """> 0: OGM-GE gradient modulation with this alpha on the naive joint loss."""
    ogm_epochs: int = 0
    """OGM-GE modulates during the first ogm_epochs epochs (0 = all)."""
    hidden: int = 128
    """Width of each encoder's first layer."""
    dim: int = 64
    """Width of the features each encoder gives its head (and of the mid-fusion trunk)."""
    train_eval_size: int = 800
    """Training examples on which the training loss L^T is measured at each evaluation."""
    data: AVDigitsConfig = field(default_factory=AVDigitsConfig)
    # heads with weight 0 get no gradient, which DDP must be told about (find_unused_parameters)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=500, batch_size=128, optimizer="sgd",
                                                                     lr=LR, momentum=0.9, log_every=25,
                                                                     eval_every=25, find_unused_parameters=True))

    def check(self, prefix: str) -> None:
        at_least(self, prefix, 1, "hidden", "dim", "super_epoch", "train_eval_size")
        at_least(self, prefix, 0, "ogm_alpha", "ogm_epochs")
        positive(self, prefix, "min_overfit")
        require(0 <= self.dropout < 1, prefix + "dropout", self.dropout, "in [0, 1)")


@dataclass
class Checkpoint:
    epoch: int
    train_loss: dict[str, float]  # L^T per head (and per "fused@m" share of a late-fusion model's fused logits)
    val_loss: dict[str, float]  # L^V per head (and per "fused@m")
    val_acc: dict[str, float]
    test_acc: dict[str, float]
    weights: dict[str, float]  # the blending weights in force after this checkpoint


class MultiModalMethod:
    """Engine `Method` for one strategy; `history` holds the per-epoch checkpoints."""

    def __init__(self, cfg: MultiModalConfig, data: AVDigits | None = None):
        _validate(cfg)
        self.cfg = cfg
        self.data = data if data is not None else av_digits(cfg.data)
        self.steps_per_epoch = len(self.data.train) // cfg.train.batch_size
        if self.steps_per_epoch < 1:
            raise ConfigError(f"train.batch_size={cfg.train.batch_size} exceeds the {len(self.data.train)} "
                              "training examples")
        self.heads = _heads(cfg)
        self.weights = _initial_weights(cfg, self.heads)
        self.history: list[Checkpoint] = []
        self.modulator: GradientModulator | None = None

    def build_model(self) -> nn.Module:
        model = MultiModalNet({m: INPUT_SIZES[m] for m in self.cfg.modalities}, self.cfg.hidden, self.cfg.dim,
                              fusion=self.cfg.fusion, dropout=self.cfg.dropout)
        if self.cfg.ogm_alpha > 0:
            self.modulator = GradientModulator(model.encoders, self.cfg.ogm_alpha)
        return model

    def train_dataset(self) -> TensorDataset:
        return self.data.train.dataset()

    def training_step(self, model: nn.Module, batch) -> StepOutput:
        image, audio_, label = batch
        if not self.history:  # checkpoint 0, before the first update
            self._checkpoint(model, label.device)
        inputs = {m: x for m, x in (("image", image), ("audio", audio_)) if m in self.cfg.modalities}
        logits = model(parts=self.modulator is not None, **inputs)
        metrics = {f"loss_{k}": F.cross_entropy(v, label).detach() for k, v in logits.items() if k in self.heads}
        if self.modulator is not None:
            self.modulator.observe({m: logits[f"{FUSED}@{m}"].detach() for m in self.cfg.modalities}, label)
        return StepOutput(blended_loss(logits, label, self.weights), metrics)

    def before_optimizer_step(self, model: nn.Module) -> dict[str, float]:
        """OGM-GE once per step, on the gradients averaged over micro-batches and ranks (the trainer's hook)."""
        if self.modulator is None:
            return {}
        epoch = len(self.history)
        self.modulator.enabled = self.cfg.ogm_epochs == 0 or epoch <= self.cfg.ogm_epochs
        return {f"ogm_k_{m}": k for m, k in self.modulator.modulate().items()}

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        point = self._checkpoint(model, device)
        head = _prediction_head(self.cfg)
        return {"val_acc": point.val_acc[head], "test_acc": point.test_acc[head], "val_loss": point.val_loss[head],
                **{f"w_{k}": w for k, w in self.weights.items()}}

    def _checkpoint(self, model: nn.Module, device: torch.device) -> Checkpoint:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            train_loss, _ = self._measure(model, _head_slice(self.data.train, self.cfg.train_eval_size), device)
            val_loss, val_acc = self._measure(model, self.data.val, device)
            _, test_acc = self._measure(model, self.data.test, device)
        model.train(was_training)
        epoch = len(self.history)
        n = self.cfg.super_epoch
        if self.cfg.blend == "online" and epoch >= n and epoch % n == 0:
            start = self.history[epoch - n]
            windows = {k: ogr_window(start.train_loss[k], start.val_loss[k], train_loss[k], val_loss[k])
                       for k in self.heads}
            self.weights = blend_weights(windows, self.cfg.min_overfit)
        point = Checkpoint(epoch, train_loss, val_loss, val_acc, test_acc, dict(self.weights))
        self.history.append(point)
        return point

    def _measure(self, model: nn.Module, split: Split, device: torch.device) -> tuple[dict, dict]:
        inputs = {m: getattr(split, m).to(device) for m in self.cfg.modalities}
        label = split.label.to(device)
        logits = model(parts=self.cfg.fusion == "late" and len(self.cfg.modalities) > 1, **inputs)
        loss = {k: F.cross_entropy(v, label).item() for k, v in logits.items()}
        acc = {k: (v.argmax(1) == label).float().mean().item() for k, v in logits.items()}
        return loss, acc


def _validate(cfg: MultiModalConfig) -> None:
    unknown = set(cfg.modalities) - set(INPUT_SIZES)
    if unknown or not cfg.modalities:
        raise ConfigError(f"modalities must be chosen from {sorted(INPUT_SIZES)}, got {cfg.modalities}")
    multi = len(cfg.modalities) > 1
    if cfg.blend == "unimodal" and multi:
        raise ConfigError("blend=unimodal needs exactly one modality")
    if cfg.blend != "unimodal" and not multi:
        raise ConfigError(f"blend={cfg.blend} needs two modalities; use blend=unimodal for one")
    if cfg.blend in ("offline", "online") and cfg.fusion != "late":
        raise ConfigError("Gradient-Blending needs the unimodal heads of late fusion (fusion=late)")
    if cfg.ogm_alpha > 0 and (cfg.fusion != "late" or cfg.blend != "fused"):
        raise ConfigError("OGM-GE modulates the naive late-fusion loss: use fusion=late and blend=fused")
    if cfg.blend == "offline" and not cfg.weights:
        raise ConfigError("blend=offline needs weights: estimate them with short_run_weights(...) "
                          "(`paperzoo train gblend_offline` does it for you)")
    if cfg.blend == "offline" and len(cfg.weights) != len(cfg.modalities) + 1:
        raise ConfigError(f"weights needs one value per head {(*cfg.modalities, FUSED)}, got {cfg.weights}")


def _heads(cfg: MultiModalConfig) -> tuple[str, ...]:
    if len(cfg.modalities) == 1:
        return cfg.modalities
    return (*cfg.modalities, FUSED) if cfg.fusion == "late" else (FUSED,)


def _prediction_head(cfg: MultiModalConfig) -> str:
    return cfg.modalities[0] if len(cfg.modalities) == 1 else FUSED


def _initial_weights(cfg: MultiModalConfig, heads: tuple[str, ...]) -> dict[str, float]:
    if cfg.blend == "unimodal":
        return {cfg.modalities[0]: 1.0}
    if cfg.blend == "fused":
        return {FUSED: 1.0}
    if cfg.blend == "online":
        return {k: 1.0 / len(heads) for k in heads}
    return dict(zip(heads, map(float, cfg.weights)))


def _head_slice(split: Split, n: int) -> Split:
    return Split(split.image[:n], split.audio[:n], split.label[:n])


def fit(cfg: MultiModalConfig, data: AVDigits | None = None) -> tuple[MultiModalMethod, dict[str, float]]:
    """Train one strategy with the engine; returns the method (with its `history`) and the final metrics."""
    method = MultiModalMethod(cfg, data)
    result = Trainer(method, cfg.train).fit()
    return method, result.final


def offline_weights(runs: dict[str, list[Checkpoint]], n: int, min_overfit: float = 1e-3) -> dict[str, float]:
    """Offline G-Blend weights from short runs: `runs` maps each head ("image", "audio", "fused") to the history
    of the run that trains that head alone (the unimodal models and the naive joint model); window 0 -> n."""
    windows = {}
    for head, history in runs.items():
        if len(history) <= n:
            raise ValueError(f"the run of head {head!r} has {len(history) - 1} epochs; the window needs {n}")
        a, b = history[0], history[n]
        windows[head] = ogr_window(a.train_loss[head], a.val_loss[head], b.train_loss[head], b.val_loss[head])
    return blend_weights(windows, min_overfit)


def short_run_weights(cfg: MultiModalConfig, data: AVDigits) -> dict[str, float]:
    """Offline G-Blend's estimate: train each unimodal model and the naive joint model for `super_epoch` epochs
    (same seed, data order and optimizer as `cfg`), then `offline_weights` over the window 0 -> n."""
    steps = cfg.super_epoch * (len(data.train) // cfg.train.batch_size)
    train = replace(cfg.train, steps=steps, eval_every=steps // cfg.super_epoch, checkpoint_every=0)
    runs = {}
    for head, options in [*((m, dict(modalities=(m,), blend="unimodal")) for m in cfg.modalities),
                          (FUSED, dict(blend="fused"))]:
        method, _ = fit(replace(cfg, train=train, weights=(), **options), data)
        runs[head] = method.history
    return offline_weights(runs, cfg.super_epoch, cfg.min_overfit)


def build_offline(cfg: MultiModalConfig) -> MultiModalMethod:
    """`paperzoo train gblend_offline`: estimate the weights with short runs when none are given."""
    data = av_digits(cfg.data)
    if not cfg.weights:
        w = short_run_weights(cfg, data)
        cfg = replace(cfg, weights=tuple(w[k] for k in (*cfg.modalities, FUSED)))
    return MultiModalMethod(cfg, data)
