"""Frozen-feature evaluation shared by the papers: a linear probe (multinomial logistic regression on standardised
features, the linear evaluation protocol of SimCLR, Chen et al. 2020, arXiv 2002.05709, Sec. 2.3) and a ridge probe
for continuous targets, and the weighted k-nearest-neighbour classifier of Wu et al. 2018 (arXiv 1805.01978,
Sec. 3.4; the kNN monitor of solo-learn and lightly): the k most cosine-similar training examples vote with weight
exp(similarity / temperature). With k=1 it is the 1-NN classifier.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _check_split(train_x: torch.Tensor, test_x: torch.Tensor) -> None:
    if len(train_x) < 2 or len(test_x) < 1:
        raise ValueError(f"a probe needs >= 2 training and >= 1 test examples, got {len(train_x)} and {len(test_x)}")


def _standardize(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = train.mean(0), train.std(0) + 1e-6
    return (train - mean) / std, (test - mean) / std


def probe_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                   c: float = 1.0, max_iter: int = 300) -> float:
    """Test accuracy of a multinomial logistic regression on standardised features (a linear probe)."""
    from sklearn.linear_model import LogisticRegression

    _check_split(train_x, test_x)
    classes = train_y.unique()
    if len(classes) == 1:  # one class seen in training (e.g. all outliers at one position): always predicted
        return float((test_y == classes[0]).float().mean())
    xtr, xte = _standardize(train_x.double().numpy(), test_x.double().numpy())
    clf = LogisticRegression(C=c, max_iter=max_iter)
    clf.fit(xtr, train_y.numpy())
    return float((clf.predict(xte) == test_y.numpy()).mean())


def probe_mse(train_x: torch.Tensor, train_t: torch.Tensor, test_x: torch.Tensor, test_t: torch.Tensor,
              alpha: float = 1.0) -> float:
    """Test mean squared error of a ridge regression (closed form) from features to targets (e.g. patch pixels)."""
    _check_split(train_x, test_x)
    xtr, xte = _standardize(train_x.double().numpy(), test_x.double().numpy())
    xtr = np.hstack([xtr, np.ones((len(xtr), 1))])
    xte = np.hstack([xte, np.ones((len(xte), 1))])
    eye = np.eye(xtr.shape[1])
    eye[-1, -1] = 0  # the bias is not penalised
    weights = np.linalg.solve(xtr.T @ xtr + alpha * eye, xtr.T @ train_t.double().numpy())
    return float(((xte @ weights - test_t.double().numpy()) ** 2).mean())


def knn_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 k: int = 20, temperature: float = 0.07, chunk: int = 1024) -> float:
    """Test accuracy of the weighted kNN classifier on cosine similarity (ties go to the smaller label)."""
    _check_split(train_x, test_x)
    if train_x.dim() != 2 or test_x.dim() != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"expected features (N, D) and (M, D), got {tuple(train_x.shape)} and {tuple(test_x.shape)}")
    if not 1 <= k <= len(train_x):
        raise ValueError(f"k must be in [1, {len(train_x)}] (the training examples), got {k}")
    bank = F.normalize(train_x.float(), dim=1)
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    correct = 0
    for start in range(0, len(test_x), chunk):
        query = F.normalize(test_x[start:start + chunk].float(), dim=1)
        sim, idx = (query @ bank.t()).topk(k, dim=1)  # (M, k)
        votes = torch.zeros(len(query), n_classes).scatter_add_(1, train_y[idx], (sim / temperature).exp())
        correct += int((votes.argmax(1) == test_y[start:start + chunk]).sum())
    return correct / len(test_x)
