"""N-way K-shot episodes for few-shot learning (Vinyals et al. 2016, "Matching Networks for One Shot Learning",
arXiv 1606.04080, Sec. 4; the protocol of Snell et al. 2017 and Finn et al. 2017).

An episode draws N classes from one split's classes, K support and Q query examples of each, and relabels the
N classes 0..N-1 in the order drawn (a new labelling every episode, so a model cannot memorise class ids). Episode
i of a sampler is a function of (seed, i) alone: reproducible, and the same for any number of data workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from paperzoo.errors import DataError


@dataclass
class EpisodeIndex:
    support: torch.Tensor  # (N * K,) dataset indices, grouped by class: way 0's K shots first
    support_y: torch.Tensor  # (N * K,) episode labels 0..N-1
    query: torch.Tensor  # (N * Q,)
    query_y: torch.Tensor  # (N * Q,)
    classes: torch.Tensor  # (N,) the original class of episode label j


def check_disjoint(splits: dict[str, list[int]]) -> None:
    """Raise when two class splits (meta-train / meta-val / meta-test) share a class."""
    names = sorted(splits)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = set(splits[a]) & set(splits[b])
            if shared:
                raise DataError(f"class splits {a!r} and {b!r} share {len(shared)} classes, e.g. {sorted(shared)[:5]}")


class EpisodeSampler:
    """Episodes over the examples of `classes` (a split) of a dataset with integer `labels`."""

    def __init__(self, labels: torch.Tensor, classes, n_way: int, k_shot: int, n_query: int, seed: int = 0):
        labels = torch.as_tensor(labels)
        classes = torch.as_tensor(list(classes), dtype=torch.long)
        if n_way < 1 or k_shot < 1 or n_query < 0:
            raise DataError(f"need n_way >= 1, k_shot >= 1, n_query >= 0; got {n_way}, {k_shot}, {n_query}")
        if len(classes) < n_way:
            raise DataError(f"{n_way}-way episodes need >= {n_way} classes; this split has {len(classes)}")
        self.n_way, self.k_shot, self.n_query, self.seed = n_way, k_shot, n_query, seed
        self.classes = classes
        members = [(labels == c).nonzero()[:, 0] for c in classes.tolist()]
        counts = torch.tensor([len(m) for m in members])
        short = (counts < k_shot + n_query).nonzero()[:, 0]
        if len(short):
            c = short[0].item()
            raise DataError(f"class {classes[c].item()} has {counts[c].item()} examples, fewer than K + Q = "
                            f"{k_shot} + {n_query}; lower k_shot/n_query or drop such classes "
                            f"({len(short)} classes are short)")
        self.counts = counts
        self.members = torch.full((len(classes), int(counts.max())), -1, dtype=torch.long)  # (C, max count)
        for i, m in enumerate(members):
            self.members[i, : len(m)] = m

    def __call__(self, episode: int) -> EpisodeIndex:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + episode)
        ways = torch.randperm(len(self.classes), generator=g)[: self.n_way]  # (N,)
        keys = torch.rand(self.n_way, self.members.shape[1], generator=g)
        keys[self.members[ways] < 0] = 2.0  # padding sorts last
        picks = self.members[ways].gather(1, keys.argsort(1)[:, : self.k_shot + self.n_query])  # (N, K + Q)
        labels = torch.arange(self.n_way)[:, None]
        return EpisodeIndex(
            support=picks[:, : self.k_shot].reshape(-1),  # (N * K,)
            support_y=labels.expand(-1, self.k_shot).reshape(-1),
            query=picks[:, self.k_shot:].reshape(-1),  # (N * Q,)
            query_y=labels.expand(-1, self.n_query).reshape(-1),
            classes=self.classes[ways],
        )


def as_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (ink 255) to floats in [0, 1]; float images unchanged."""
    return images.float() / 255.0 if images.dtype == torch.uint8 else images


class EpisodeDataset(Dataset):
    """`length` episodes as tuples (support_x (N*K, C, H, W), support_y, query_x (N*Q, C, H, W), query_y); a
    DataLoader batches T of them into a meta-batch with a leading task axis."""

    def __init__(self, images: torch.Tensor, sampler: EpisodeSampler, length: int):
        self.images, self.sampler, self.length = images, sampler, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        ep = self.sampler(i)
        return as_float(self.images[ep.support]), ep.support_y, as_float(self.images[ep.query]), ep.query_y
