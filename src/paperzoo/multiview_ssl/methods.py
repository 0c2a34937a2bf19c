"""`paperzoo train multiview_ssl`: self-supervised learning from two augmented views of real images, on the engine.

The multi-view setting of Tsai, Wu, Salakhutdinov, Morency, "Self-supervised Learning from a Multi-view
Perspective" (ICLR 2021, arXiv:2006.05576) in its SimCLR instance (Sec. 2; Chen et al. 2020, arXiv 2002.05709):
the input X and the self-supervised signal S are two random augmentations (crop, rotation, shear) of one image of
MNIST (5,000 real digits) or Fashion-MNIST. A small conv encoder F gives Z_X = F(X), Z_S = F(S), trained with
L = L_CL + lambda_FP L_FP + lambda_IP L_IP (Eq. 4): L_CL the InfoNCE of Eq. 1 with negatives from the whole global
batch (`info_nce_global`, so a torchrun run optimises the loss of the union batch), L_FP reconstructs S from Z_X
(Eq. 2, Bernoulli pixels) and L_IP predicts Z_X from Z_S (Eq. 3, on unit-norm features). The paper's temperature
0.1 is the one of its official Omniglot code.

Evaluation, on the frozen encoder: the test split is classified from the train split's features by 1-NN and by
the weighted kNN of Wu et al. 2018 (arXiv 1805.01978) on cosine similarity; labels are never used in training.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo.catalog import TrainSpec
from paperzoo.data import ImageSplit, fashion_mnist, mnist_5k
from paperzoo.data.transforms import two_views
from paperzoo.engine.probes import knn_accuracy, probe_accuracy
from paperzoo.engine.trainer import StepOutput, TrainConfig
from paperzoo.errors import ConfigError
from paperzoo.multiview_ssl.distributed import info_nce_global
from paperzoo.multiview_ssl.losses import composite_ssl_loss, forward_predictive_loss, inverse_predictive_loss


@dataclass
class ViewConfig:
    """The two views' random augmentation (`paperzoo.data.transforms.two_views`)."""

    crop_scale: tuple[float, float] = (0.6, 1.0)
    """Crop area, fraction of the image."""
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    """Crop width / height."""
    max_degrees: float = 15.0
    """Largest rotation, in degrees, either way."""
    max_shear: float = 0.1
    """Largest shear factor, either way."""


@dataclass
class MultiviewSSLConfig:
    """`paperzoo train multiview_ssl`: the encoder, the composite objective (Eq. 4) and its weights, the two views and
    the training."""

    dataset: Literal["mnist", "fashion-mnist"] = "mnist"
    """The images: mnist (the 5,000 real digits that ship offline) or fashion-mnist (`apt-get install
    dataset-fashion-mnist`)."""
    channels: int = 32
    """Channels of the first convolution of the encoder (the second has twice as many)."""
    feature_dim: int = 128
    """Dimension of the representation Z."""
    temperature: float = 0.1
    """Temperature of the InfoNCE loss."""
    lambda_fp: float = 0.0
    """Forward-predictive weight (Eq. 4); 0 = no decoder."""
    lambda_ip: float = 0.0
    """Inverse-predictive weight (Eq. 4); 0 = no predictor."""
    knn_k: int = 20
    """Neighbours of the weighted kNN evaluation (1-NN is always reported too)."""
    views: ViewConfig = field(default_factory=ViewConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=1000, batch_size=256, lr=1e-3,
                                                                     schedule="cosine", log_every=10))


class ConvEncoder(nn.Module):
    """(B, 1, H, W) images -> (B, feature_dim) representations Z; no BatchNorm, so nothing couples the examples of
    a batch (or differs between a rank's batch and the global one) outside the contrastive loss."""

    def __init__(self, channels: int = 32, feature_dim: int = 128):
        super().__init__()
        c = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, c, H/2, W/2)
            nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 2c, H/4, W/4)
            nn.Conv2d(2 * c, 4 * c, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),  # (B, 4c, 1, 1)
        )
        self.head = nn.Linear(4 * c, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))  # (B, feature_dim)


class MultiviewSSLModel(nn.Module):
    """The encoder F shared by both views, plus the decoder (L_FP) and predictor (L_IP) when their weight is > 0.

    One forward computes everything that has parameters, as DDP requires; returns Z_X, Z_S and the predictive
    losses (this rank's means)."""

    def __init__(self, cfg: MultiviewSSLConfig, image_shape: torch.Size):
        super().__init__()
        d = cfg.feature_dim
        self.encoder = ConvEncoder(cfg.channels, d)
        self.decoder = nn.Sequential(nn.Linear(d, 256), nn.ReLU(), nn.Linear(256, image_shape.numel())) \
            if cfg.lambda_fp > 0 else None
        self.predictor = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d)) if cfg.lambda_ip > 0 else None

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> dict[str, torch.Tensor]:
        z_x, z_s = self.encoder(torch.cat([x, s])).chunk(2)  # (B, D) each: one encoder pass for both views
        out = {"z_x": z_x, "z_s": z_s}
        if self.decoder is not None:
            out["l_fp"] = forward_predictive_loss(self.decoder, z_x, s, kind="bce")
        if self.predictor is not None:
            # on unit-norm features, as the official code: L_CL is scale-free, so on raw Z the encoder could
            # shrink every embedding to make L_IP vanish without discarding anything
            out["l_ip"] = inverse_predictive_loss(self.predictor, F.normalize(z_x, dim=1), F.normalize(z_s, dim=1))
        return out


def load_images(dataset: str) -> ImageSplit:
    return fashion_mnist() if dataset == "fashion-mnist" else mnist_5k()


@torch.no_grad()
def embed(encoder: nn.Module, images: torch.Tensor, device: torch.device, batch: int = 1000) -> torch.Tensor:
    """Frozen representations (N, D) on the CPU."""
    return torch.cat([encoder(images[i:i + batch].to(device)).float().cpu() for i in range(0, len(images), batch)])


class MultiviewSSL:
    """Method protocol: two views per image, L_CL (+ L_FP, L_IP); kNN and linear-probe evaluation of the frozen
    encoder, beside raw pixels."""

    def __init__(self, cfg: MultiviewSSLConfig):
        for name in ("channels", "feature_dim", "knn_k"):
            if getattr(cfg, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(cfg, name)}")
        if cfg.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {cfg.temperature}")
        if cfg.lambda_fp < 0 or cfg.lambda_ip < 0:
            raise ConfigError(f"lambda_fp and lambda_ip must be >= 0, got {cfg.lambda_fp} and {cfg.lambda_ip}")
        scale = cfg.views.crop_scale
        if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
            raise ConfigError(f"views.crop_scale must be two numbers 0 < low <= high <= 1, e.g. views.crop_scale="
                              f"0.6,1.0; got {cfg.views.crop_scale}")
        if len(cfg.views.crop_ratio) != 2 or not 0 < cfg.views.crop_ratio[0] <= cfg.views.crop_ratio[1]:
            raise ConfigError(f"views.crop_ratio must be two numbers 0 < low <= high, got {cfg.views.crop_ratio}")
        if cfg.train.batch_size < 2:
            raise ConfigError("train.batch_size must be >= 2: the contrastive loss needs negatives in the batch")
        self.cfg = cfg
        self.data = load_images(cfg.dataset)
        self._pixel_scores: dict[str, float] | None = None
        if cfg.knn_k > len(self.data.train_y):
            raise ConfigError(f"knn_k={cfg.knn_k} exceeds the {len(self.data.train_y)} training images")

    def build_model(self) -> nn.Module:
        return MultiviewSSLModel(self.cfg, self.data.train_x.shape[1:])

    def train_dataset(self):
        return self.data.train()  # labels ride along unused: training is self-supervised

    def training_step(self, model: nn.Module, batch) -> StepOutput:
        images, _ = batch
        x, s = two_views(images, **dataclasses.asdict(self.cfg.views))  # the engine seeds the RNG per rank
        out = model(x, s)
        l_cl = info_nce_global(out["z_x"], out["z_s"], self.cfg.temperature)
        loss = composite_ssl_loss(l_cl, out.get("l_fp"), out.get("l_ip"), self.cfg.lambda_fp, self.cfg.lambda_ip)
        metrics = {"l_cl": l_cl.detach(), **{k: out[k].detach() for k in ("l_fp", "l_ip") if k in out}}
        return StepOutput(loss, metrics)

    def _probes(self, train_z: torch.Tensor, test_z: torch.Tensor) -> dict[str, float]:
        """1-NN, weighted kNN and linear-probe test accuracy of frozen features (N, D)."""
        data = self.data
        return {"knn1_acc": knn_accuracy(train_z, data.train_y, test_z, data.test_y, k=1),
                "knn_acc": knn_accuracy(train_z, data.train_y, test_z, data.test_y, k=self.cfg.knn_k),
                "linear_acc": probe_accuracy(train_z, data.train_y, test_z, data.test_y)}

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        """The frozen encoder's probes, beside the same probes on raw pixels (the baseline an encoder must beat)."""
        data = self.data
        if self._pixel_scores is None:
            self._pixel_scores = {f"pixels_{k}": v for k, v in self._probes(data.train_x.flatten(1),
                                                                            data.test_x.flatten(1)).items()}
        encoded = self._probes(embed(model.encoder, data.train_x, device), embed(model.encoder, data.test_x, device))
        return {**encoded, **self._pixel_scores}


TRAIN_METHODS = {"multiview_ssl": TrainSpec(
    "multiview_ssl", "contrastive (+ forward/inverse predictive) SSL on two augmented views of MNIST or "
    "Fashion-MNIST, kNN on the frozen encoder (Tsai et al. 2021; works under torchrun)",
    MultiviewSSLConfig, MultiviewSSL)}
