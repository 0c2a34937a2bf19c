"""Offline real datasets, format readers, samplers and the cache folder."""

from paperzoo.data.cache import cache_dir
from paperzoo.data.idx import read_idx, write_idx
from paperzoo.data.samplers import ShardedEpochSampler
from paperzoo.data.sources import ImageSplit, digits_8x8, fashion_mnist, fashion_mnist_available, idx_dataset, mnist_5k

__all__ = [
    "ImageSplit",
    "ShardedEpochSampler",
    "cache_dir",
    "digits_8x8",
    "fashion_mnist",
    "fashion_mnist_available",
    "idx_dataset",
    "mnist_5k",
    "read_idx",
    "write_idx",
]
