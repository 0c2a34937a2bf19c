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

from paperzoo.config import at_least, positive, require
from paperzoo.data.episodes import EpisodeDataset, EpisodeSampler, as_float, check_disjoint
from paperzoo.data.glyphs import CharacterSet, GlyphConfig, glyph_set
from paperzoo.data.omniglot import omniglot
from paperzoo.engine.trainer import StepOutput, TrainConfig
from paperzoo.errors import ConfigError, DataError
from paperzoo.metalearning.evaluate import (cosine_head_logits, episode_accuracies, feature_accuracies, mean_ci95,
                                            nearest_neighbour_logits)
from paperzoo.metalearning.maml import MAML
from paperzoo.metalearning.networks import Conv4, ConvClassifier
from paperzoo.metalearning.protonet import ProtoNet, protonet_logits
from paperzoo.metalearning.transfer import RemapLabels, embed


@dataclass
class FewShotData:
    """The few-shot data: the character set, its size, and the meta-test episodes every method is evaluated on."""

    source: Literal["glyphs", "omniglot"] = "glyphs"
    """glyphs (rendered offline from the installed fonts) or omniglot (a real Omniglot folder, data.omniglot_root)."""
    omniglot_root: str = ""
    """A folder with images_background/ and images_evaluation/."""
    max_alphabets: int = 0
    """Glyphs: 0 = every script."""
    max_per_alphabet: int = 20
    """glyphs: at most this many characters (classes) per script."""
    renderings: int = 20
    """glyphs: images per character."""
    test_way: int = 5
    """Classes per meta-test episode."""
    test_shots: tuple[int, ...] = (1, 5)
    """Shot counts (support images per class) the meta-test evaluates, each on its own episodes."""
    test_queries: int = 15
    """Query images per class of a meta-test episode."""
    test_episodes: int = 600
    """Meta-test episodes per shot count (the papers use >= 600; the 95% interval needs >= 2)."""
    seed: int = 0
    """Seed of the alphabet split (and the glyph renderings) and of the episodes."""

    def check(self, prefix: str) -> None:
        at_least(self, prefix, 1, "max_per_alphabet", "renderings", "test_way", "test_queries")
        at_least(self, prefix, 0, "max_alphabets")
        require(bool(self.test_shots) and min(self.test_shots) >= 1, prefix + "test_shots", self.test_shots,
                "one or more shot counts >= 1 (e.g. 1,5)")
        require(self.test_episodes >= 2, prefix + "test_episodes", self.test_episodes,
                ">= 2 (the 95% confidence interval of the accuracy needs two episodes; the papers use >= 600)")


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
    try:
        return {k: EpisodeSampler(chars.labels, chars.split("test"), cfg.test_way, k, cfg.test_queries,
                                  seed=cfg.seed + 10_000 + k) for k in cfg.test_shots}
    except DataError as e:
        raise ConfigError(f"data.test_way={cfg.test_way}, data.test_shots={','.join(map(str, cfg.test_shots))} and "
                          f"data.test_queries={cfg.test_queries} do not fit the meta-test classes: {e}") from None


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
    try:
        sampler = EpisodeSampler(chars.labels, chars.split("train"), n_way, k_shot, n_query, seed=seed)
    except DataError as e:
        raise ConfigError(f"n_way={n_way}, k_shot={k_shot} and n_query={n_query} do not fit the meta-train "
                          f"classes: {e}") from None
    return EpisodeDataset(chars.images, sampler, train.steps * train.batch_size * train.accumulation)


def _episode_step(logits: torch.Tensor, query_y: torch.Tensor) -> StepOutput:
    loss = F.cross_entropy(logits.flatten(0, 1), query_y.flatten())  # mean over tasks and queries
    return StepOutput(loss, {"acc": (logits.argmax(-1) == query_y).float().mean()})


# --- Prototypical Networks ---------------------------------------------------------------------------------------

@dataclass
class ProtoNetConfig:
    """`paperzoo train protonet`: Prototypical Networks (Snell et al. 2017) on N-way K-shot training episodes; one step
    is one episode per batch element (train.batch_size episodes)."""

    data: FewShotData = field(default_factory=FewShotData)
    channels: int = 64
    """Channels of the Conv-4 encoder."""
    n_way: int = 60
    """Snell et al. train with more ways than they test (60-way for Omniglot)."""
    k_shot: int = 5
    """Support images per class of a training episode."""
    n_query: int = 5
    """Query images per class of a training episode."""
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=20000, batch_size=1, lr=1e-3,
                                                                     schedule="step", decay_every=2000,
                                                                     lr_decay=0.5, log_every=50))

    def check(self, prefix: str) -> None:
        at_least(self, prefix, 1, "channels", "n_way", "k_shot", "n_query")


class ProtoNetMethod:
    """The engine `Method` of `paperzoo train protonet`: Conv-4 `ProtoNet`, cross-entropy of the queries against the
    support prototypes; evaluates meta-test accuracy per shot count with its 95% interval. `chars`: a `CharacterSet`
    already loaded (else read from cfg.data)."""

    def __init__(self, cfg: ProtoNetConfig, chars: CharacterSet | None = None):
        """The episode samplers are built here, so that settings the data cannot serve fail before training."""
        self.cfg = cfg
        self.chars = chars if chars is not None else load_characters(cfg.data)
        self.episodes = _train_episodes(self.chars, cfg.n_way, cfg.k_shot, cfg.n_query, cfg.train, cfg.data.seed)
        self.samplers = test_samplers(self.chars, cfg.data)

    def build_model(self) -> nn.Module:
        return ProtoNet(Conv4(1, self.cfg.channels))

    def train_dataset(self):
        return self.episodes

    def training_step(self, model: nn.Module, batch) -> StepOutput:
        support_x, support_y, query_x, query_y = batch
        return _episode_step(model(support_x, support_y, query_x), query_y)

    def accuracies(self, model: ProtoNet, device: torch.device) -> dict[int, torch.Tensor]:
        """Per-episode accuracy for each shot count; the test images are embedded once (BN in eval mode)."""
        features = embed(model.encoder, self.chars.images, device, only=test_mask(self.chars))
        return {k: feature_accuracies(protonet_logits, features, sampler, self.cfg.data.test_episodes)
                for k, sampler in self.samplers.items()}

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        return summarise(self.accuracies(model, device))


# --- MAML --------------------------------------------------------------------------------------------------------

@dataclass
class MamlConfig:
    """`paperzoo train maml`: MAML (Finn et al. 2017) with a Conv-4 classifier; train.batch_size is the meta-batch
    (tasks per step)."""

    data: FewShotData = field(default_factory=FewShotData)
    channels: int = 64
    """Channels of the Conv-4 learner."""
    n_way: int = 5
    """Classes per task, in training and testing (equal to data.test_way)."""
    k_shot: int = 1
    """Support images per class of a training task."""
    n_query: int = 15
    """Query images per class of a training task."""
    inner_lr: float = 0.4
    """Inner-loop learning rate alpha (Finn et al., Omniglot: 0.4)."""
    inner_steps: int = 1
    """Inner-loop gradient steps in training."""
    test_inner_steps: int = 3
    """Inner-loop gradient steps at meta-test time."""
    first_order: bool = False
    """First-order MAML: no gradient through the inner gradient (Sec. 5.2)."""
    learn_inner_lr: bool = False
    """Meta-SGD: learn one inner learning rate per parameter entry."""
    bn: Literal["support", "transductive"] = "support"
    """Batch-norm statistics of the queries: support (from the support set) or transductive (the query batch's own, as
    the original code)."""
    task_chunk: int = 0
    """Tasks batched per vmap call, 0 = all; 1 is faster on a CPU at the paper's sizes (maml.py)."""
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=60000, batch_size=32, lr=1e-3,
                                                                     log_every=50))

    def check(self, prefix: str) -> None:
        at_least(self, prefix, 1, "channels", "n_way", "k_shot", "n_query")
        at_least(self, prefix, 0, "inner_steps", "test_inner_steps")
        positive(self, prefix, "inner_lr")
        require(self.task_chunk >= 0, prefix + "task_chunk", self.task_chunk,
                ">= 0 (0 = all tasks in one vmap, 1 = one at a time)")
        require(self.n_way == self.data.test_way, prefix + "n_way", self.n_way,
                f"equal to {prefix}data.test_way={self.data.test_way} (MAML's head has n_way outputs in training "
                "and in testing: set both)")


class MamlMethod:
    """The engine `Method` of `paperzoo train maml`: a `MAML` Conv-4 learner, the adapted query loss as meta-objective;
    evaluates meta-test accuracy per shot count. `chars`: a `CharacterSet` already loaded (else read from cfg.data)."""

    def __init__(self, cfg: MamlConfig, chars: CharacterSet | None = None):
        """The episode samplers are built here, so that settings the data cannot serve fail before training."""
        self.cfg = cfg
        self.chars = chars if chars is not None else load_characters(cfg.data)
        self.episodes = _train_episodes(self.chars, cfg.n_way, cfg.k_shot, cfg.n_query, cfg.train, cfg.data.seed)
        self.samplers = test_samplers(self.chars, cfg.data)

    def build_model(self) -> nn.Module:
        c = self.cfg
        return MAML(ConvClassifier(c.n_way, channels=c.channels, episodic=True), inner_lr=c.inner_lr,
                    inner_steps=c.inner_steps, first_order=c.first_order, learn_inner_lr=c.learn_inner_lr, bn=c.bn,
                    task_chunk=c.task_chunk)

    def train_dataset(self):
        return self.episodes

    def training_step(self, model: nn.Module, batch) -> StepOutput:
        support_x, support_y, query_x, query_y = batch
        return _episode_step(model(support_x, support_y, query_x), query_y)

    def accuracies(self, model: MAML, device: torch.device, bn: str | None = None) -> dict[int, torch.Tensor]:
        def predict(sx, sy, qx):
            return model(sx.to(device), sy.to(device), qx.to(device), steps=self.cfg.test_inner_steps, bn=bn).cpu()

        return {k: episode_accuracies(predict, self.chars.images, sampler, self.cfg.data.test_episodes, batch=20)
                for k, sampler in self.samplers.items()}

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        return summarise(self.accuracies(model, device))


# --- transfer baseline -------------------------------------------------------------------------------------------

@dataclass
class TransferConfig:
    """`paperzoo train fewshot_transfer`: pretrain a Conv-4 classifier on every meta-train class, then fit a new cosine
    head on each test episode's support set (Baseline++, Chen et al. 2019)."""

    data: FewShotData = field(default_factory=FewShotData)
    channels: int = 64
    """Channels of the Conv-4 encoder."""
    head_steps: int = 100
    """Adam steps of the new cosine head on each episode's support set (Chen et al.: 100)."""
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=20000, batch_size=128, lr=1e-3,
                                                                     log_every=50))

    def check(self, prefix: str) -> None:
        at_least(self, prefix, 1, "channels", "head_steps")


class TransferMethod:
    """The engine `Method` of `paperzoo train fewshot_transfer`: cross-entropy pretraining on the meta-train classes;
    evaluates by fitting a cosine head on each test episode's support set. `chars`: a `CharacterSet` already loaded
    (else read from cfg.data)."""

    def __init__(self, cfg: TransferConfig, chars: CharacterSet | None = None):
        self.cfg = cfg
        self.chars = chars if chars is not None else load_characters(cfg.data)
        self.samplers = test_samplers(self.chars, cfg.data)  # settings the data cannot serve fail before training
        train_classes = self.chars.split("train")
        self.remap = RemapLabels(train_classes)
        member = torch.isin(self.chars.labels, torch.as_tensor(train_classes))
        self.train_x = self.chars.images[member]
        self.train_y = self.remap(self.chars.labels[member])

    def build_model(self) -> nn.Module:
        return ConvClassifier(len(self.chars.split("train")), channels=self.cfg.channels, head="cosine")

    def train_dataset(self):
        return TensorDataset(self.train_x, self.train_y)

    def training_step(self, model: nn.Module, batch) -> StepOutput:
        x, y = batch
        logits = model(as_float(x))
        return StepOutput(F.cross_entropy(logits, y), {"acc": (logits.argmax(1) == y).float().mean()})

    def accuracies(self, model: ConvClassifier, device: torch.device) -> dict[str, dict[int, torch.Tensor]]:
        features = embed(model.encoder, self.chars.images, device, only=test_mask(self.chars))
        head = lambda sf, sy, qf, n: cosine_head_logits(sf, sy, qf, n, steps=self.cfg.head_steps)  # noqa: E731
        return {
            "centroid": {k: feature_accuracies(protonet_logits, features, s, self.cfg.data.test_episodes)
                         for k, s in self.samplers.items()},
            "finetune": {k: feature_accuracies(head, features, s, self.cfg.data.test_episodes)
                         for k, s in self.samplers.items()},
        }

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        accs = self.accuracies(model, device)
        return {**summarise(accs["centroid"], "centroid_"), **summarise(accs["finetune"], "finetune_")}


def val_centroid_accuracy(encoder: nn.Module, chars: CharacterSet, sampler: EpisodeSampler, episodes: int) -> float:
    """Mean nearest-centroid accuracy of `encoder`'s features on `episodes` episodes of `sampler` (drawn from the
    validation alphabets, neither trained on nor tested on): the held-out curve a training run's plateau is read from.
    BN in eval mode; the encoder's mode is restored."""
    only = torch.isin(chars.labels, torch.as_tensor(sampler.classes))
    features = embed(encoder, chars.images, only=only)  # (N, D), zero outside the sampler's classes
    return feature_accuracies(protonet_logits, features, sampler, episodes).double().mean().item()


def pixel_nn_accuracies(chars: CharacterSet, cfg: FewShotData) -> dict[int, torch.Tensor]:
    """The pixel-space nearest-neighbour baseline (Vinyals et al. 2016, Table 1: 'Pixels')."""
    pixels = as_float(chars.images).flatten(1)  # (N, H * W)
    return {k: feature_accuracies(nearest_neighbour_logits, pixels, s, cfg.test_episodes)
            for k, s in test_samplers(chars, cfg).items()}
