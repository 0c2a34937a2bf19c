import pytest
import torch
from torch.utils.data import DataLoader

from paperzoo.data.episodes import EpisodeDataset, EpisodeSampler, check_disjoint
from paperzoo.errors import DataError

LABELS = torch.arange(10).repeat_interleave(6)  # 10 classes x 6 examples, index i has class i // 6


def test_episode_shapes_labels_and_membership():
    sampler = EpisodeSampler(LABELS, classes=[0, 2, 4, 6, 8], n_way=3, k_shot=2, n_query=3, seed=1)
    ep = sampler(0)
    assert ep.support.shape == (6,) and ep.query.shape == (9,)
    assert ep.support_y.tolist() == [0, 0, 1, 1, 2, 2]
    assert ep.query_y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert set(ep.classes.tolist()) <= {0, 2, 4, 6, 8} and len(set(ep.classes.tolist())) == 3
    # label remapping: the original class of every example is the episode class of its label
    assert torch.equal(LABELS[ep.support], ep.classes[ep.support_y])
    assert torch.equal(LABELS[ep.query], ep.classes[ep.query_y])
    assert not set(ep.support.tolist()) & set(ep.query.tolist())


def test_episodes_are_deterministic_and_vary():
    a = EpisodeSampler(LABELS, range(10), 5, 1, 2, seed=3)
    b = EpisodeSampler(LABELS, range(10), 5, 1, 2, seed=3)
    assert torch.equal(a(7).support, b(7).support) and torch.equal(a(7).query, b(7).query)
    assert any(not torch.equal(a(0).classes, a(i).classes) for i in range(1, 5))
    c = EpisodeSampler(LABELS, range(10), 5, 1, 2, seed=4)
    assert any(not torch.equal(a(i).support, c(i).support) for i in range(5))


def test_labels_are_remapped_differently_across_episodes():
    sampler = EpisodeSampler(LABELS, range(10), 5, 1, 1, seed=0)
    first_class_of_label0 = {sampler(i).classes[0].item() for i in range(20)}
    assert len(first_class_of_label0) > 3


def test_short_class_and_bad_split_errors():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    with pytest.raises(DataError, match="class 1 has 2 examples, fewer than K \\+ Q"):
        EpisodeSampler(labels, [0, 1, 2], n_way=2, k_shot=2, n_query=1)
    with pytest.raises(DataError, match="need >= 5 classes"):
        EpisodeSampler(labels, [0, 1, 2], n_way=5, k_shot=1, n_query=0)
    with pytest.raises(DataError, match="share 1 classes"):
        check_disjoint({"train": [0, 1, 2], "test": [2, 3]})
    check_disjoint({"train": [0, 1], "val": [2], "test": [3]})


def test_episode_dataset_batches_into_a_meta_batch():
    images = (torch.arange(60, dtype=torch.uint8) * 4)[:, None, None, None].expand(60, 1, 4, 4).contiguous()
    ds = EpisodeDataset(images, EpisodeSampler(LABELS, range(10), 5, 1, 3, seed=0), length=8)
    sx, sy, qx, qy = next(iter(DataLoader(ds, batch_size=4)))
    assert sx.shape == (4, 5, 1, 4, 4) and qx.shape == (4, 15, 1, 4, 4)
    assert sy.shape == (4, 5) and qy.shape == (4, 15)
    assert sx.dtype == torch.float32 and 0 <= sx.min() and sx.max() <= 1
    ep = ds.sampler(0)
    assert torch.allclose(sx[0, :, 0, 0, 0], images[ep.support, 0, 0, 0].float() / 255)
