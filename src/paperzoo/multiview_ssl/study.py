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

With `nuisance=True` each view gets a square marker in one of the four corners; S's marker is put in X's corner with
probability `marker_shared`, else drawn independently. The marker says nothing of the character class; its part
that X does not share with S (H(m_X | m_S) > 0 unless `marker_shared` is 1) is task-irrelevant in the paper's sense,
information L_IP should remove (Sec. 3, Eq. 3), while its shared part is information I(X; S) that the contrastive
term is rewarded for keeping. How much of the marker stays in Z_X is measured by a linear probe that predicts its
corner from the frozen representation; the same probe on the raw pixels and on a supervised encoder
(`train_glyph_supervised`: same encoder and batches, trained with the labels) are references.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from paperzoo.data.glyphs import CharacterSet
from paperzoo.engine.dry_run import dry_run_skips
from paperzoo.engine.probes import knn_accuracy, probe_accuracy
from paperzoo.multiview_ssl.losses import composite_ssl_loss, forward_predictive_loss, info_nce, inverse_predictive_loss

MARKER = 5  # side of the nuisance marker, in pixels


@dataclass(frozen=True)
class GlyphSSLConfig:
    """The Omniglot-style study of `train_glyph_ssl`: the weights of the composite objective (Eq. 4), the training, the
    encoder and the nuisance marker."""

    lambda_fp: float = 0.0
    """Forward-predictive weight (Eq. 4); 0 = no decoder."""
    lambda_ip: float = 0.0
    """Inverse-predictive weight (Eq. 4)."""
    steps: int = 1000
    """Training steps."""
    batch_size: int = 256
    """Pairs per step, each from a different training class."""
    lr: float = 1e-3
    """Adam learning rate."""
    temperature: float = 0.1
    """Official Omniglot value."""
    feature_dim: int = 128
    """Dimension of the representation."""
    hidden: int = 512
    """Width of the encoder's two hidden layers."""
    nuisance: bool = False
    """Draw a corner marker on each view (task-irrelevant information)."""
    marker_shared: float = 0.0
    """With `nuisance`: the probability that S's marker is put in X's corner; otherwise S's corner is drawn
    independently (0: the markers of the two views are independent)."""
    probe_classes: int = 100
    """Held-out classes of the class linear probe (all would be slow); 0: no class probe."""
    seed: int = 0
    """Seed of the initialisation, the batches and the markers."""


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


def marker_corners(n: int, shared: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The markers' corners of n view pairs, (n,) each: X's uniform over the four corners; S's copies X's with
    probability `shared`, else it is drawn uniformly and independently (so the two agree with probability
    shared + (1 - shared) / 4)."""
    if not 0.0 <= shared <= 1.0:
        raise ValueError(f"shared must be a probability in [0, 1], got {shared}")
    corners_x = torch.randint(0, 4, (n,), generator=g)
    independent = torch.randint(0, 4, (n,), generator=g)
    copied = torch.rand(n, generator=g) < shared
    return corners_x, torch.where(copied, corners_x, independent)


def held_out_split(chars: CharacterSet) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the memory half and the test half of every held-out class's renderings."""
    held_out = torch.as_tensor(chars.splits["val"] + chars.splits["test"])
    memory, test = [], []
    for c in held_out.tolist():
        idx = (chars.labels == c).nonzero()[:, 0]
        memory.append(idx[: len(idx) // 2])
        test.append(idx[len(idx) // 2:])
    return torch.cat(memory), torch.cat(test)


@dataclass(frozen=True)
class HeldOut:
    """The held-out renderings as the encoder sees them: memory rows first, then test rows."""

    images: torch.Tensor  # (M + T, 1, H, W) in [0, 1], with a corner marker each when cfg.nuisance
    labels: torch.Tensor  # (M + T,) character classes
    corners: torch.Tensor  # (M + T,) the marker's corner (drawn whether or not it is inked)
    n_memory: int


def held_out_views(chars: CharacterSet, cfg: GlyphSSLConfig) -> HeldOut:
    """The held-out renderings, with markers in corners seeded by cfg.seed when cfg.nuisance."""
    memory, test = held_out_split(chars)
    rows = torch.cat([memory, test])
    images = chars.images[rows].float() / 255.0  # (M + T, 1, H, W)
    corners = torch.randint(0, 4, (len(rows),), generator=torch.Generator().manual_seed(cfg.seed + 1))
    if cfg.nuisance:
        images = add_corner_marker(images, corners)
    return HeldOut(images, chars.labels[rows], corners, len(memory))


def _blas_threads():
    """The probes' BLAS (scikit-learn's logistic regression) limited to torch's thread count: by default it takes
    every core, which on a shared machine makes each probe several times slower."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=torch.get_num_threads())


def marker_accuracy(features: torch.Tensor, held: HeldOut) -> float:
    """Linear-probe accuracy of the marker's corner from features (M + T, D): trained on the memory rows, tested on
    the test rows."""
    mem, tst = slice(0, held.n_memory), slice(held.n_memory, None)
    with _blas_threads():
        return probe_accuracy(features[mem], held.corners[mem], features[tst], held.corners[tst])


def pixel_marker_accuracy(chars: CharacterSet, cfg: GlyphSSLConfig) -> float:
    """How well a linear probe reads the marker's corner from the raw pixels of the marked held-out renderings."""
    if not cfg.nuisance:
        raise ValueError("marker decodability needs cfg.nuisance=True (no marker is drawn otherwise)")
    held = held_out_views(chars, cfg)
    return marker_accuracy(held.images.flatten(1), held)  # (M + T, H * W)


def _class_probe_accuracy(z: torch.Tensor, held: HeldOut, cfg: GlyphSSLConfig) -> float:
    """Linear-probe accuracy of the character class on a seeded choice of cfg.probe_classes held-out classes."""
    mem, tst = slice(0, held.n_memory), slice(held.n_memory, None)
    classes = held.labels[mem].unique()
    g = torch.Generator().manual_seed(cfg.seed + 1)
    probe_cls = classes[torch.randperm(len(classes), generator=g)[: cfg.probe_classes]]
    tr, te = torch.isin(held.labels[mem], probe_cls), torch.isin(held.labels[tst], probe_cls)
    with _blas_threads():
        return probe_accuracy(z[mem][tr], held.labels[mem][tr], z[tst][te], held.labels[tst][te])


@torch.no_grad()
def _features(encoder: nn.Module, held: HeldOut) -> torch.Tensor:
    """The frozen encoder's features of the held-out renderings (M + T, D), in eval mode."""
    was_training = encoder.training
    encoder.eval()
    z = encoder(held.images)  # (M + T, D)
    encoder.train(was_training)
    return z


def _knn1(z: torch.Tensor, held: HeldOut) -> float:
    """1-NN accuracy of the test rows' character classes against the memory rows, from features (M + T, D)."""
    mem, tst = slice(0, held.n_memory), slice(held.n_memory, None)
    return knn_accuracy(z[mem], held.labels[mem], z[tst], held.labels[tst], k=1)


def evaluate(encoder: nn.Module, chars: CharacterSet, cfg: GlyphSSLConfig) -> dict:
    """1-NN accuracy on held-out alphabets, a class linear probe (unless cfg.probe_classes is 0) and, with
    `nuisance`, the marker's decodability."""
    held = held_out_views(chars, cfg)
    z = _features(encoder, held)
    out = {"knn1": _knn1(z, held), "held_out_classes": len(chars.splits["val"]) + len(chars.splits["test"])}
    if cfg.probe_classes:
        out["linear"] = _class_probe_accuracy(z, held, cfg)
    if cfg.nuisance:
        out["nuisance_linear"] = marker_accuracy(z, held)
    return out


def initial_encoder(cfg: GlyphSSLConfig, size: int = 28) -> GlyphEncoder:
    """The encoder as training starts (seeded by cfg.seed): the random-encoder baseline of the same run."""
    torch.manual_seed(cfg.seed)
    return GlyphEncoder(size, cfg.feature_dim, cfg.hidden)


@dataclass(frozen=True)
class ClassTable:
    """The renderings of each training class, padded: rows (C, R_max) of image indices, counts (C,)."""

    rows: torch.Tensor
    counts: torch.Tensor


def class_table(chars: CharacterSet) -> ClassTable:
    members = [(chars.labels == c).nonzero()[:, 0] for c in chars.splits["train"]]
    if len(members) < 2 or min(len(m) for m in members) < 2:
        raise ValueError("two-view training needs at least 2 training classes of at least 2 renderings each")
    rows = torch.zeros(len(members), max(len(m) for m in members), dtype=torch.long)
    for i, m in enumerate(members):
        rows[i, : len(m)] = m
    return ClassTable(rows, torch.tensor([len(m) for m in members]))


def _pair_batch(table: ClassTable, batch: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`batch` different training classes (B,) (positions in the table) and two different renderings of each:
    image indices (B,), (B,)."""
    classes = torch.randperm(len(table.counts), generator=g)[:batch]
    n = table.counts[classes]
    first = (torch.rand(batch, generator=g) * n).long()  # (B,) in [0, n)
    second = (first + 1 + (torch.rand(batch, generator=g) * (n - 1)).long()) % n  # (B,) any other rendering
    return classes, table.rows[classes, first], table.rows[classes, second]


def _views(images: torch.Tensor, ix: torch.Tensor, isx: torch.Tensor, cfg: GlyphSSLConfig,
           g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The two views (B, 1, H, W) each, with independently drawn corner markers when cfg.nuisance."""
    x, s = images[ix], images[isx]
    if cfg.nuisance:
        corners_x, corners_s = marker_corners(len(ix), cfg.marker_shared, g)
        x, s = add_corner_marker(x, corners_x), add_corner_marker(s, corners_s)
    return x, s


def train_glyph_ssl(chars: CharacterSet, cfg: GlyphSSLConfig) -> dict:
    """Train an encoder with the composite objective; returns its held-out scores, the contrastive loss curve and
    the held-out 1-NN during the second half of training (`knn1_steps`, `knn1_curve`: is it at its plateau?)."""
    size = chars.images.shape[-1]
    encoder = initial_encoder(cfg, size)
    decoder = nn.Sequential(nn.Linear(cfg.feature_dim, 512), nn.ReLU(), nn.Linear(512, size * size))

    def objective(classes: torch.Tensor, x: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, float]:
        z_x, z_s = encoder(x), encoder(s)
        l_cl = info_nce(z_x, z_s, cfg.temperature)
        l_fp = forward_predictive_loss(decoder, z_x, s) if cfg.lambda_fp else None
        l_ip = (inverse_predictive_loss(nn.Identity(), F.normalize(z_x, dim=1), F.normalize(z_s, dim=1))
                if cfg.lambda_ip else None)
        return composite_ssl_loss(l_cl, l_fp, l_ip, lambda_fp=cfg.lambda_fp, lambda_ip=cfg.lambda_ip), l_cl.item()

    return _fit(chars, cfg, encoder, list(decoder.parameters()) if cfg.lambda_fp else [], objective, "cl_loss_curve")


def train_glyph_supervised(chars: CharacterSet, cfg: GlyphSSLConfig) -> dict:
    """The supervised reference: the same encoder, batches, views and optimiser, trained with the labels (a linear
    head over the training classes, cross-entropy on both views); returns what `train_glyph_ssl` does, with the
    cross-entropy curve as `loss_curve`."""
    encoder = initial_encoder(cfg, chars.images.shape[-1])
    head = nn.Linear(cfg.feature_dim, len(chars.splits["train"]))

    def objective(classes: torch.Tensor, x: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, float]:
        loss = F.cross_entropy(head(encoder(torch.cat([x, s]))), classes.repeat(2))  # logits (2B, C)
        return loss, loss.item()

    return _fit(chars, cfg, encoder, list(head.parameters()), objective, "loss_curve")


def evaluation_steps(steps: int) -> list[int]:
    """The steps after which a run records its held-out 1-NN: every 10% of the second half of training, so that the
    shared plateau rule (`paperzoo.criteria.late_trend`) fits its trend to six evaluations."""
    return sorted({math.ceil(steps * tenth / 10) for tenth in range(5, 11)})


Objective = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, float]]


def _fit(chars: CharacterSet, cfg: GlyphSSLConfig, encoder: nn.Module, extra: list[nn.Parameter],
         objective: Objective, curve_key: str) -> dict:
    """cfg.steps Adam steps of objective(classes (B,), x, s) -> (loss, value to log) on batches of view pairs; the
    frozen encoder's held-out scores, the logged curve and the held-out 1-NN at every step of `evaluation_steps`."""
    images = chars.images.float() / 255.0
    table = class_table(chars)
    held = held_out_views(chars, cfg)
    opt = torch.optim.Adam([*encoder.parameters(), *extra], lr=cfg.lr)
    batch = min(cfg.batch_size, len(table.counts))
    g = torch.Generator().manual_seed(cfg.seed)
    checkpoints = evaluation_steps(cfg.steps)
    curve, knn1_curve = [], []
    for step in range(1, cfg.steps + 1):
        if not dry_run_skips(step, checkpoints):
            classes, ix, isx = _pair_batch(table, batch, g)
            loss, logged = objective(classes, *_views(images, ix, isx, cfg, g))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the training loss became {loss.item()} at step {step}; lower the learning "
                                         "rate")
            opt.zero_grad()
            loss.backward()
            opt.step()
            curve.append(logged)
        if step in checkpoints[:-1]:
            knn1_curve.append(_knn1(_features(encoder, held), held))
    scores = evaluate(encoder, chars, cfg)
    return {**scores, curve_key: curve, "knn1_steps": checkpoints, "knn1_curve": [*knn1_curve, scores["knn1"]]}
