"""A small stacked-attention VQA model in the spirit of SAAA ("Show, Ask, Attend, and Answer", Kazemi & Elqursh
2017, arXiv 1704.03162), one of the baselines of Agarwal et al. (CVPR 2020, Sec. 5).

CNN image grid (B, C, h, w) + LSTM question vector (B, D); attention logits from a 1x1-conv MLP on the grid
concatenated with the tiled question, `glimpses` softmax maps over the h*w cells (Eq. 3-4 of SAAA); the attended
features of every glimpse and the question go through an MLP classifier over the answer vocabulary.

SAAA uses a pretrained ResNet; trained from scratch here, the CNN normalises its input and has batch
normalisation after each convolution (Ioffe & Szegedy 2015), without which a few hundred steps leave it blind: the
model answers from the question alone (see docs/causal_vqa.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PIXEL_MEAN, PIXEL_STD = 0.5, 0.25  # images are in [0, 1]


def conv_pool_bn(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 convolution, 2x2 max-pool, batch norm, ReLU: (B, c_in, H, W) -> (B, c_out, H/2, W/2). Pooling before
    the normalisation halves its cost on the largest maps."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.MaxPool2d(2), nn.BatchNorm2d(c_out), nn.ReLU())


class SAAA(nn.Module):
    """The VQA model: `forward(images, questions) -> logits (B, answers)`.

    `images`: (B, 3, H, W) floats in [0, 1] (H, W divisible by 4), or one image (1, 3, H, W) shared by every
    question; `questions`: (B, L) token ids, 0 = padding (`paperzoo.causal_vqa.data.encode_question`).
    `vocab_size` word ids, `answers` classes (`len(ANSWERS)`), `dim` channels of the image grid and of the LSTM,
    `glimpses` attention maps.
    """

    def __init__(self, vocab_size: int, answers: int, dim: int = 64, glimpses: int = 2, word_dim: int = 32,
                 object_classes: int = 0, count_features: bool = False):
        super().__init__()
        self.cnn = nn.Sequential(
            conv_pool_bn(3, 16),  # (B, 16, H/2, W/2)
            conv_pool_bn(16, dim),  # (B, dim, H/4, W/4)
            nn.Conv2d(dim, dim, 1), nn.ReLU(),
        )
        self.embed = nn.Embedding(vocab_size + 1, word_dim, padding_idx=0)
        self.lstm = nn.LSTM(word_dim, dim, batch_first=True)
        self.attend = nn.Sequential(nn.Conv2d(2 * dim, dim, 1), nn.ReLU(), nn.Conv2d(dim, glimpses, 1))
        counts = glimpses if count_features else 0
        self.classify = nn.Sequential(nn.Linear(glimpses * dim + dim + counts, 2 * dim), nn.ReLU(),
                                      nn.Linear(2 * dim, answers))
        self.objects = nn.Conv2d(dim, object_classes, 1) if object_classes else None
        self.glimpses, self.count_features = glimpses, count_features

    def encode_question(self, questions: Tensor) -> Tensor:
        """The LSTM's last hidden state of each question: token ids (B, L), 0 = padding -> (B, dim)."""
        lengths = (questions > 0).sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(questions), lengths, batch_first=True,
                                                   enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return h[-1]  # (B, dim)

    def attention(self, images: Tensor, questions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(grid features (B, dim, h*w), question (B, dim), attention logits (B, glimpses, h*w)). One image
        (1, 3, H, W) is shared by every question: the question-only baseline passes one blank image."""
        if images.dim() != 4 or questions.dim() != 2 or len(images) not in (1, len(questions)):
            raise ValueError(f"expected images (B, 3, H, W) or (1, 3, H, W) and questions (B, L), got "
                             f"{tuple(images.shape)} and {tuple(questions.shape)}")
        grid = self.cnn((images - PIXEL_MEAN) / PIXEL_STD)  # (B or 1, dim, h, w)
        grid = grid.expand(len(questions), *grid.shape[1:])  # (B, dim, h, w)
        q = self.encode_question(questions)  # (B, dim)
        tiled = q[:, :, None, None].expand(-1, -1, *grid.shape[2:])  # (B, dim, h, w)
        logits = self.attend(torch.cat([grid, tiled], 1)).flatten(2)  # (B, glimpses, h*w)
        return grid.flatten(2), q, logits

    def forward(self, images: Tensor, questions: Tensor) -> Tensor:
        features, q, logits = self.attention(images, questions)
        attended, mass = readout(features, logits)
        return self.classify(torch.cat([attended, q, *([mass] if self.count_features else [])], 1))  # (B, answers)

    def object_logits(self, images: Tensor) -> Tensor:
        """Per-cell object classes of the image grid: (B, 3, H, W) -> (B, object_classes, H/4, W/4)."""
        return self.objects(self.cnn((images - PIXEL_MEAN) / PIXEL_STD))


def readout(features: Tensor, logits: Tensor) -> tuple[Tensor, Tensor]:
    """What the glimpses read from the grid: features (B, D, N) and attention logits (B, G, N) -> the softmax
    average of the features per glimpse (B, G * D), SAAA's Eq. 4, and the attention mass per glimpse (B, G), the
    sum of the sigmoid of the logits. An average is the same for one attended object and for two alike ones (why
    softmax attention counts poorly, Zhang et al., ICLR 2018); the mass grows with their number."""
    attended = torch.einsum("bgn,bdn->bgd", logits.softmax(-1), features).flatten(1)  # (B, G * D)
    return attended, logits.sigmoid().sum(-1)  # (B, G * D), (B, G)


def symmetric_kl(logits_a: Tensor, logits_b: Tensor) -> Tensor:
    """KL(p_a || p_b) + KL(p_b || p_a) per row: the consistency penalty between original and IV-edited inputs."""
    log_a, log_b = F.log_softmax(logits_a, -1), F.log_softmax(logits_b, -1)
    return ((log_a.exp() - log_b.exp()) * (log_a - log_b)).sum(-1)
