"""Two-view self-supervised learning on a character set: the Omniglot setting of Tsai, Wu, Salakhutdinov, Morency,
"Self-supervised Learning from a Multi-view Perspective" (ICLR 2021, arXiv 2006.05576, Sec. 4.1).

The input X and the self-supervised signal S are two different renderings of the same character class; the
encoder is trained with L_CL + lambda_FP L_FP + lambda_IP L_IP (Eq. 4) and judged, frozen, on classes of held-out
alphabets, as the official code does: each held-out class's renderings are split into a memory half and a test half,
and test images are classified by 1-NN on cosine similarity against the memory (plus a linear probe on a seeded
subset of held-out classes).

Facts taken from the official code (yaohungt/Self_Supervised_Learning_Multiview, Omniglot/main.py): temperature 0.1,
1-NN evaluation, InfoNCE on L2-normalised features, and the inverse-predictive term as the mean squared error between
the two views' normalised features with no predictor network, summed over both directions (so their lambda_IP is
half of ours). Forward-predictive: a decoder reconstructs S from Z_X, Bernoulli pixels (BCE).

With `nuisance=True` each view gets a square marker in one of the four corners, drawn independently for X and for S:
information that is in one view only, i.e. task-irrelevant in the paper's sense. How much of it stays in Z_X is
measured by a linear probe that predicts the marker's corner from the frozen representation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo.data.glyphs import CharacterSet
from paperzoo.engine.probes import knn_accuracy, probe_accuracy
from paperzoo.multiview_ssl.losses import composite_ssl_loss, forward_predictive_loss, info_nce, inverse_predictive_loss

MARKER = 5  # side of the nuisance marker, in pixels


@dataclass(frozen=True)
class GlyphSSLConfig:
    lambda_fp: float = 0.0
    lambda_ip: float = 0.0
    steps: int = 1000
    batch_size: int = 256  # pairs per step, each from a different training class
    lr: float = 1e-3
    temperature: float = 0.1  # official Omniglot value
    feature_dim: int = 128
    hidden: int = 512
    nuisance: bool = False
    probe_classes: int = 100  # held-out classes in the linear probe (logistic regression over all would be slow)
    seed: int = 0


class GlyphEncoder(nn.Module):
    """(B, 1, H, W) images in [0, 1] -> (B, feature_dim) features (a 2-hidden-layer MLP, fast on a CPU)."""

    def __init__(self, size: int = 28, feature_dim: int = 128, hidden: int = 512):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(size * size, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, feature_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def add_corner_marker(images: torch.Tensor, corners: torch.Tensor, size: int = MARKER) -> torch.Tensor:
    """A copy of images (B, 1, H, W) with a size x size square of ink in corner 0 (top left), 1 (top right),
    2 (bottom left) or 3 (bottom right) of each image; corners (B,)."""
    if corners.shape != images.shape[:1] or not ((corners >= 0) & (corners < 4)).all():
        raise ValueError(f"corners must be ({images.shape[0]},) integers in 0..3, got {tuple(corners.shape)}")
    out = images.clone()
    h, w = images.shape[-2:]
    for corner in range(4):
        rows = slice(0, size) if corner < 2 else slice(h - size, h)
        cols = slice(0, size) if corner % 2 == 0 else slice(w - size, w)
        out[corners == corner, :, rows, cols] = 1.0
    return out


def held_out_split(chars: CharacterSet) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the memory half and the test half of every held-out class's renderings."""
    held_out = torch.as_tensor(chars.splits["val"] + chars.splits["test"])
    memory, test = [], []
    for c in held_out.tolist():
        idx = (chars.labels == c).nonzero()[:, 0]
        memory.append(idx[: len(idx) // 2])
        test.append(idx[len(idx) // 2:])
    return torch.cat(memory), torch.cat(test)


@torch.no_grad()
def evaluate(encoder: nn.Module, chars: CharacterSet, cfg: GlyphSSLConfig) -> dict:
    """1-NN and linear-probe accuracy on held-out alphabets (and marker decodability with `nuisance`)."""
    memory, test = held_out_split(chars)
    n_memory = len(memory)
    rows = torch.cat([memory, test])
    images = chars.images[rows].float() / 255.0  # (M + T, 1, H, W): the held-out renderings only
    labels = chars.labels[rows]
    g = torch.Generator().manual_seed(cfg.seed + 1)
    corners = torch.randint(0, 4, (len(rows),), generator=g)
    if cfg.nuisance:
        images = add_corner_marker(images, corners)
    was_training = encoder.training
    encoder.eval()
    z = encoder(images)  # (M + T, D)
    encoder.train(was_training)
    mem, tst = slice(0, n_memory), slice(n_memory, None)
    out = {"knn1": knn_accuracy(z[mem], labels[mem], z[tst], labels[tst], k=1),
           "held_out_classes": len(chars.splits["val"]) + len(chars.splits["test"])}
    classes = labels[mem].unique()
    probe_cls = classes[torch.randperm(len(classes), generator=g)[: cfg.probe_classes]]
    tr, te = torch.isin(labels[mem], probe_cls), torch.isin(labels[tst], probe_cls)
    out["linear"] = probe_accuracy(z[mem][tr], labels[mem][tr], z[tst][te], labels[tst][te])
    if cfg.nuisance:
        out["nuisance_linear"] = probe_accuracy(z[mem], corners[mem], z[tst], corners[tst])
    return out


def initial_encoder(cfg: GlyphSSLConfig, size: int = 28) -> GlyphEncoder:
    """The encoder as training starts (seeded by cfg.seed): the random-encoder baseline of the same run."""
    torch.manual_seed(cfg.seed)
    return GlyphEncoder(size, cfg.feature_dim, cfg.hidden)


def _pair_batch(chars: CharacterSet, train_classes: list[torch.Tensor], batch: int,
                g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two different renderings of `batch` different training classes: indices (B,), (B,)."""
    picked = torch.randperm(len(train_classes), generator=g)[:batch].tolist()
    pairs = [train_classes[c][torch.randperm(len(train_classes[c]), generator=g)[:2]] for c in picked]
    pairs = torch.stack(pairs)  # (B, 2)
    return pairs[:, 0], pairs[:, 1]


def train_glyph_ssl(chars: CharacterSet, cfg: GlyphSSLConfig) -> dict:
    """Train an encoder with the composite objective; returns its held-out scores and the contrastive loss curve."""
    images = chars.images.float() / 255.0
    size = images.shape[-1]
    encoder = initial_encoder(cfg, size)
    decoder = nn.Sequential(nn.Linear(cfg.feature_dim, 512), nn.ReLU(), nn.Linear(512, size * size))
    params = [*encoder.parameters(), *(decoder.parameters() if cfg.lambda_fp else [])]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    train_classes = [(chars.labels == c).nonzero()[:, 0] for c in chars.splits["train"]]
    if len(train_classes) < 2:
        raise ValueError("two-view training needs at least 2 training classes")
    batch = min(cfg.batch_size, len(train_classes))
    g = torch.Generator().manual_seed(cfg.seed)
    curve = []
    for step in range(cfg.steps):
        ix, isx = _pair_batch(chars, train_classes, batch, g)
        x, s = images[ix], images[isx]  # (B, 1, H, W) each
        if cfg.nuisance:
            x = add_corner_marker(x, torch.randint(0, 4, (batch,), generator=g))
            s = add_corner_marker(s, torch.randint(0, 4, (batch,), generator=g))
        z_x, z_s = encoder(x), encoder(s)
        l_cl = info_nce(z_x, z_s, cfg.temperature)
        l_fp = forward_predictive_loss(decoder, z_x, s) if cfg.lambda_fp else None
        l_ip = (inverse_predictive_loss(nn.Identity(), F.normalize(z_x, dim=1), F.normalize(z_s, dim=1))
                if cfg.lambda_ip else None)
        loss = composite_ssl_loss(l_cl, l_fp, l_ip, lambda_fp=cfg.lambda_fp, lambda_ip=cfg.lambda_ip)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the SSL loss became {loss.item()} at step {step}; lower the learning rate")
        opt.zero_grad()
        loss.backward()
        opt.step()
        curve.append(l_cl.item())
    scores = evaluate(encoder, chars, cfg)
    scores["cl_loss_curve"] = curve
    return scores
