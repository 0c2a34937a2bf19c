"""ProtoNet, MAML and the transfer baseline as `paperzoo train` methods on the engine (the `Method` protocol).

Each trains on episodes (or, for transfer, images) of the meta-train alphabets and evaluates on >= 600 episodes of
the held-out meta-test alphabets with 95% confidence intervals, at every shot count in `data.test_shots`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from paperzoo.data.episodes import EpisodeDataset, EpisodeSampler, as_float, check_disjoint
from paperzoo.data.glyphs import CharacterSet, GlyphConfig, glyph_set
from paperzoo.data.omniglot import omniglot
from paperzoo.engine.trainer import StepOutput, TrainConfig
from paperzoo.errors import ConfigError
from paperzoo.metalearning.evaluate import (episode_accuracies, feature_accuracies, linear_head_logits, mean_ci95,
                                            nearest_neighbour_logits)
from paperzoo.metalearning.maml import MAML
from paperzoo.metalearning.networks import Conv4, ConvClassifier
from paperzoo.metalearning.protonet import ProtoNet, protonet_logits
from paperzoo.metalearning.transfer import RemapLabels, embed


@dataclass
class FewShotData:
    source: Literal["glyphs", "omniglot"] = "glyphs"
    omniglot_root: str = ""  # a folder with images_background/ and images_evaluation/
    max_alphabets: int = 0  # glyphs: 0 = every script
    max_per_alphabet: int = 20
    renderings: int = 20
    test_way: int = 5
    test_shots: tuple[int, ...] = (1, 5)
    test_queries: int = 15
    test_episodes: int = 600
    seed: int = 0


def load_characters(cfg: FewShotData) -> CharacterSet:
    if cfg.source == "omniglot":
        if not cfg.omniglot_root:
            raise ConfigError("data.source=omniglot needs data.omniglot_root=<folder with images_background/>")
        chars = omniglot(cfg.omniglot_root, seed=cfg.seed)
    else:
        chars = glyph_set(GlyphConfig(max_per_alphabet=cfg.max_per_alphabet, renderings=cfg.renderings,
                                      max_alphabets=cfg.max_alphabets, seed=cfg.seed))
    check_disjoint(chars.splits)
    return chars


def test_samplers(chars: CharacterSet, cfg: FewShotData) -> dict[int, EpisodeSampler]:
    """One meta-test episode sampler per shot count (a seed apart from training's)."""
    return {k: EpisodeSampler(chars.labels, chars.split("test"), cfg.test_way, k, cfg.test_queries,
                              seed=cfg.seed + 10_000 + k) for k in cfg.test_shots}


def test_mask(chars: CharacterSet) -> torch.Tensor:
    return torch.isin(chars.labels, torch.as_tensor(chars.split("test")))


def summarise(accs: dict[int, torch.Tensor], prefix: str = "") -> dict[str, float]:
    out = {}
    for k, acc in accs.items():
        mean, ci = mean_ci95(acc)
        out[f"{prefix}acc_{k}shot"], out[f"{prefix}ci95_{k}shot"] = mean, ci
    return out


def _train_episodes(chars: CharacterSet, n_way: int, k_shot: int, n_query: int, train: TrainConfig,
                    seed: int) -> EpisodeDataset:
    sampler = EpisodeSampler(chars.labels, chars.split("train"), n_way, k_shot, n_query, seed=seed)
    return EpisodeDataset(chars.images, sampler, train.steps * train.batch_size * train.accumulation)


def _episode_step(logits: torch.Tensor, query_y: torch.Tensor) -> StepOutput:
    loss = F.cross_entropy(logits.flatten(0, 1), query_y.flatten())  # mean over tasks and queries
    return StepOutput(loss, {"acc": (logits.argmax(-1) == query_y).float().mean()})


# --- Prototypical Networks ---------------------------------------------------------------------------------------

@dataclass
class ProtoNetConfig:
    data: FewShotData = field(default_factory=FewShotData)
    channels: int = 64
    n_way: int = 60  # Snell et al. train with more ways than they test (60-way for Omniglot)
    k_shot: int = 5
    n_query: int = 5
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=20000, batch_size=1, lr=1e-3,
                                                                     schedule="step", decay_every=2000,
                                                                     lr_decay=0.5, log_every=50))


class ProtoNetMethod:
    def __init__(self, cfg: ProtoNetConfig, chars: CharacterSet | None = None):
        self.cfg = cfg
        self.chars = chars if chars is not None else load_characters(cfg.data)

    def build_model(self) -> nn.Module:
        return ProtoNet(Conv4(1, self.cfg.channels))

    def train_dataset(self):
        c = self.cfg
        return _train_episodes(self.chars, c.n_way, c.k_shot, c.n_query, c.train, c.data.seed)

    def training_step(self, model: nn.Module, batch) -> StepOutput:
        support_x, support_y, query_x, query_y = batch
        return _episode_step(model(support_x, support_y, query_x), query_y)

    def accuracies(self, model: ProtoNet, device: torch.device) -> dict[int, torch.Tensor]:
        """Per-episode accuracy for each shot count; the test images are embedded once (BN in eval mode)."""
        features = embed(model.encoder, self.chars.images, device, only=test_mask(self.chars))
        return {k: feature_accuracies(protonet_logits, features, sampler, self.cfg.data.test_episodes)
                for k, sampler in test_samplers(self.chars, self.cfg.data).items()}

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        return summarise(self.accuracies(model, device))


# --- MAML --------------------------------------------------------------------------------------------------------

@dataclass
class MamlConfig:
    data: FewShotData = field(default_factory=FewShotData)
    channels: int = 64
    n_way: int = 5
    k_shot: int = 1
    n_query: int = 15
    inner_lr: float = 0.4  # Finn et al., Omniglot
    inner_steps: int = 1
    test_inner_steps: int = 3
    first_order: bool = False
    learn_inner_lr: bool = False  # Meta-SGD
    bn: Literal["support", "transductive"] = "support"
    task_chunk: int = 0  # tasks batched per vmap call, 0 = all (GPU); 1 is fastest on a CPU
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=60000, batch_size=32, lr=1e-3,
                                                                     log_every=50))


class MamlMethod:
    def __init__(self, cfg: MamlConfig, chars: CharacterSet | None = None):
        self.cfg = cfg
        self.chars = chars if chars is not None else load_characters(cfg.data)

    def build_model(self) -> nn.Module:
        c = self.cfg
        if c.task_chunk < 0:
            raise ConfigError(f"task_chunk must be >= 0 (0 = all tasks in one vmap, 1 = one at a time), "
                              f"got {c.task_chunk}")
        return MAML(ConvClassifier(c.n_way, channels=c.channels, episodic=True), inner_lr=c.inner_lr,
                    inner_steps=c.inner_steps, first_order=c.first_order, learn_inner_lr=c.learn_inner_lr, bn=c.bn,
                    task_chunk=c.task_chunk)

    def train_dataset(self):
        c = self.cfg
        return _train_episodes(self.chars, c.n_way, c.k_shot, c.n_query, c.train, c.data.seed)

    def training_step(self, model: nn.Module, batch) -> StepOutput:
        support_x, support_y, query_x, query_y = batch
        return _episode_step(model(support_x, support_y, query_x), query_y)

    def accuracies(self, model: MAML, device: torch.device, bn: str | None = None) -> dict[int, torch.Tensor]:
        if self.cfg.data.test_way != self.cfg.n_way:
            raise ConfigError(f"MAML's head has n_way={self.cfg.n_way} outputs; set data.test_way to match")

        def predict(sx, sy, qx):
            return model(sx.to(device), sy.to(device), qx.to(device), steps=self.cfg.test_inner_steps, bn=bn).cpu()

        return {k: episode_accuracies(predict, self.chars.images, sampler, self.cfg.data.test_episodes, batch=20)
                for k, sampler in test_samplers(self.chars, self.cfg.data).items()}

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        return summarise(self.accuracies(model, device))


# --- transfer baseline -------------------------------------------------------------------------------------------

@dataclass
class TransferConfig:
    data: FewShotData = field(default_factory=FewShotData)
    channels: int = 64
    head_steps: int = 100  # Adam steps of the new linear head on each episode's support set
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=20000, batch_size=128, lr=1e-3,
                                                                     log_every=50))


class TransferMethod:
    def __init__(self, cfg: TransferConfig, chars: CharacterSet | None = None):
        self.cfg = cfg
        self.chars = chars if chars is not None else load_characters(cfg.data)
        train_classes = self.chars.split("train")
        self.remap = RemapLabels(train_classes)
        member = torch.isin(self.chars.labels, torch.as_tensor(train_classes))
        self.train_x = self.chars.images[member]
        self.train_y = self.remap(self.chars.labels[member])

    def build_model(self) -> nn.Module:
        return ConvClassifier(len(self.chars.split("train")), channels=self.cfg.channels)

    def train_dataset(self):
        return TensorDataset(self.train_x, self.train_y)

    def training_step(self, model: nn.Module, batch) -> StepOutput:
        x, y = batch
        logits = model(as_float(x))
        return StepOutput(F.cross_entropy(logits, y), {"acc": (logits.argmax(1) == y).float().mean()})

    def accuracies(self, model: ConvClassifier, device: torch.device) -> dict[str, dict[int, torch.Tensor]]:
        features = embed(model.encoder, self.chars.images, device, only=test_mask(self.chars))
        samplers = test_samplers(self.chars, self.cfg.data)
        head = lambda sf, sy, qf, n: linear_head_logits(sf, sy, qf, n, steps=self.cfg.head_steps)  # noqa: E731
        return {
            "centroid": {k: feature_accuracies(protonet_logits, features, s, self.cfg.data.test_episodes)
                         for k, s in samplers.items()},
            "finetune": {k: feature_accuracies(head, features, s, self.cfg.data.test_episodes)
                         for k, s in samplers.items()},
        }

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        accs = self.accuracies(model, device)
        return {**summarise(accs["centroid"], "centroid_"), **summarise(accs["finetune"], "finetune_")}


def pixel_nn_accuracies(chars: CharacterSet, cfg: FewShotData) -> dict[int, torch.Tensor]:
    """The pixel-space nearest-neighbour baseline (Vinyals et al. 2016, Table 1: 'Pixels')."""
    pixels = as_float(chars.images).flatten(1)  # (N, H * W)
    return {k: feature_accuracies(nearest_neighbour_logits, pixels, s, cfg.test_episodes)
            for k, s in test_samplers(chars, cfg).items()}
