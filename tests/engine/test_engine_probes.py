import pytest
import torch

from paperzoo.engine.probes import knn_accuracy, probe_accuracy


def test_one_nn_follows_the_most_cosine_similar_training_example():
    train = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 1, 2])
    test = torch.tensor([[5.0, 0.4], [0.2, 3.0], [-2.0, -0.5], [0.3, 0.2]])  # the scale does not matter (cosine)
    assert knn_accuracy(train, labels, test, torch.tensor([0, 1, 2, 0]), k=1) == 1.0
    assert knn_accuracy(train, labels, test, torch.tensor([1, 1, 2, 0]), k=1) == 0.75


def test_weighted_vote_can_overrule_the_majority():
    # two far neighbours of class 1 against one very close neighbour of class 0: with weight exp(sim / t)
    # the close one wins at a small temperature, the majority wins at a large one
    train = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.6, -0.8]])
    labels = torch.tensor([0, 1, 1])
    test, truth = torch.tensor([[1.0, 0.05]]), torch.tensor([0])
    assert knn_accuracy(train, labels, test, truth, k=3, temperature=0.05) == 1.0  # e^(20) vs 2 e^(12)
    assert knn_accuracy(train, labels, test, truth, k=3, temperature=100.0) == 0.0  # ~1 vs ~2


def test_chunking_does_not_change_the_answer():
    g = torch.Generator().manual_seed(0)
    train, test = torch.randn(50, 4, generator=g), torch.randn(33, 4, generator=g)
    ytr, yte = torch.randint(0, 3, (50,), generator=g), torch.randint(0, 3, (33,), generator=g)
    assert knn_accuracy(train, ytr, test, yte, k=5, chunk=7) == knn_accuracy(train, ytr, test, yte, k=5)


def test_knn_rejects_bad_input():
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match="k must be in"):
        knn_accuracy(x, y, x, y, k=5)
    with pytest.raises(ValueError, match="expected features"):
        knn_accuracy(x, y, torch.randn(4, 2), y)


def test_linear_probe_separates_a_linear_rule_and_not_noise():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 5, generator=g)
    y = (x[:, 0] + 2 * x[:, 3] > 0).long()  # a linear rule of two features
    assert probe_accuracy(x[:200], y[:200], x[200:], y[200:]) > 0.95
    noise = torch.randn(300, 5, generator=g)
    assert probe_accuracy(noise[:200], y[:200], noise[200:], y[200:]) < 0.7  # chance = 0.5


def test_a_tied_vote_goes_to_the_smaller_label():
    train = torch.tensor([[1.0, 1.0], [1.0, -1.0]])  # equally similar to the query, labels 2 and 1
    assert knn_accuracy(train, torch.tensor([2, 1]), torch.tensor([[1.0, 0.0]]), torch.tensor([1]), k=2) == 1.0
