"""In-process tests: augmentations, the DP loss wrapper, seeds and RNG state, the launcher environment, the
sampler's sharding, and the engine's clear errors."""

import itertools
import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from paperzoo.data.samplers import ShardedEpochSampler
from paperzoo.engine import TrainConfig, Trainer
from paperzoo.engine import distributed as D
from paperzoo.errors import ConfigError
from paperzoo.multigpu import ReplicaLoss, augment, policy_for_rank, random_erase, replica_mean
from paperzoo.multigpu.augment import rotate
from paperzoo.multigpu.launch import spawn_group
from paperzoo.multigpu.workers import endless_index_batches
from multigpu_helpers import NoisyRegression


def test_rotate_quarter_turn_is_rot90_and_zero_is_identity():
    images = torch.rand(2, 1, 6, 6)
    torch.testing.assert_close(rotate(images, torch.tensor([math.pi / 2] * 2)), torch.rot90(images, 1, (2, 3)),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(rotate(images, torch.zeros(2)), images, atol=1e-6, rtol=0)


def test_random_erase_zeroes_one_square_patch_per_image():
    torch.manual_seed(0)
    out = random_erase(torch.ones(5, 2, 10, 10), fraction=0.3)  # side round(3.0) = 3
    zeros = (out == 0).all(1)  # (B, H, W): erased in every channel
    assert zeros.sum((1, 2)).tolist() == [9] * 5
    for mask in zeros:
        rows, cols = mask.nonzero().T
        assert rows.max() - rows.min() == 2 and cols.max() - cols.min() == 2


def test_augment_policies_shapes_ranges_and_errors():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 28, 28)
    for policy in ("none", "shift", "rotate", "noise", "erase", "shift+noise+erase"):
        y = augment(x, policy)
        assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert torch.equal(augment(x, "none"), x) and not torch.equal(augment(x, "shift+rotate"), x)
    assert [policy_for_rank(("a", "b"), r) for r in range(5)] == ["a", "b", "a", "b", "a"]
    with pytest.raises(ConfigError, match="unknown augmentation 'blur' in policy 'shift\\+blur'"):
        augment(x, "shift+blur")
    with pytest.raises(ConfigError, match="list is empty"):
        policy_for_rank((), 0)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        augment(x[0], "shift")


def test_replica_loss_matches_the_plain_loss_and_its_gradients():
    torch.manual_seed(0)
    model = nn.Linear(5, 3)
    x, y = torch.randn(7, 5), torch.randint(0, 3, (7,))
    wrapped = nn.DataParallel(ReplicaLoss(model, F.cross_entropy))  # no GPU: DataParallel calls the module
    rows = wrapped(x, y)
    assert rows.shape == (1, 2) and rows[0, 1].item() == 7
    loss = replica_mean(rows)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    reference = F.cross_entropy(model(x), y)
    torch.testing.assert_close(loss, reference)
    for g, r in zip(grads, torch.autograd.grad(reference, list(model.parameters()))):
        torch.testing.assert_close(g, r)
    # unequal chunks are weighted by size: replica means 2 (3 examples) and 1 (1 example) -> 7 / 4
    assert replica_mean(torch.tensor([[6.0, 3.0], [1.0, 1.0]])).item() == 1.75
    with pytest.raises(ValueError, match="replicas, 2"):
        replica_mean(torch.zeros(3))
    with pytest.raises(ValueError, match="share the batch size"):
        ReplicaLoss(model, F.cross_entropy)(x, y[:3])


def test_seeds_per_rank_differ_and_rank0_keeps_the_base_seed():
    D.seed_everything(11, 0)
    rank0 = torch.rand(3)
    torch.manual_seed(11)
    assert torch.equal(rank0, torch.rand(3))
    D.seed_everything(11, 1)
    rank1 = torch.rand(3)
    assert not torch.equal(rank0, rank1)
    assert D.derive_seed(0, 1) != D.derive_seed(1, 0)  # `seed + rank` would collide here
    assert D.derive_seed(3, 1, 2) == D.derive_seed(3, 1, 2) != D.derive_seed(3, 2, 1)


def test_rng_state_round_trip_is_exact():
    D.seed_everything(4, 2)
    state = D.rng_state()
    first = (torch.rand(4), np.random.rand(3), random.random())
    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    D.set_rng_state(state)
    again = (torch.rand(4), np.random.rand(3), random.random())
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1]) and first[2] == again[2]


def test_launcher_environment_is_read_and_checked(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "2")
    env = D.dist_env()
    assert (env.rank, env.world_size, env.local_rank, env.restart_count, env.is_main) == (1, 4, 1, 2, False)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ConfigError, match="RANK=4, WORLD_SIZE=4"):
        D.dist_env()
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(ConfigError, match="RANK='one' must be an integer"):
        D.dist_env()


def test_sampler_partitions_each_epoch_once_and_reshuffles_with_set_epoch():
    shards = [ShardedEpochSampler(10, rank=r, world_size=2, seed=1) for r in range(2)]
    epoch0 = [list(s) for s in shards]
    assert sorted(epoch0[0] + epoch0[1]) == list(range(10))
    for s in shards:
        s.set_epoch(1)
    epoch1 = [list(s) for s in shards]
    assert sorted(epoch1[0] + epoch1[1]) == list(range(10)) and epoch1 != epoch0
    # uneven: 7 examples on 2 ranks -> 4 each, one example repeated, none missing
    uneven = [list(ShardedEpochSampler(7, rank=r, world_size=2, seed=1)) for r in range(2)]
    assert [len(u) for u in uneven] == [4, 4] and set(uneven[0] + uneven[1]) == set(range(7))


class IndexData(NoisyRegression):
    """Examples that are their own indices: the engine's batches show the order it walks the data in."""

    def train_dataset(self):
        return TensorDataset(torch.arange(13))


def test_reference_index_batches_walk_epochs_as_the_engine_does(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    # 13 examples on 2 ranks: 7 per rank (one repeated), 2 batches of 3 per epoch; 7 batches cross 3 epoch ends
    engine = Trainer(IndexData(), TrainConfig(batch_size=3, seed=4, device="cpu", progress=False))
    walked = [batch[0].tolist() for batch in itertools.islice(engine._batches(0, torch.device("cpu")), 7)]
    sampler = ShardedEpochSampler(13, rank=1, world_size=2, seed=4)
    assert list(itertools.islice(endless_index_batches(sampler, 3), 7)) == walked
    assert walked[:2] != walked[2:4]  # the next epoch is reshuffled, not the first one again
    with pytest.raises(ValueError, match="batch size 8 is larger than this rank's 7 examples"):
        next(endless_index_batches(sampler, 8))


def test_gpu_only_switches_are_clear_config_errors_on_cpu():
    if torch.cuda.is_available():
        pytest.skip("checks the CPU-only error messages")
    with pytest.raises(ConfigError, match="sync_batchnorm=true needs CUDA GPUs"):
        Trainer(NoisyRegression(), TrainConfig(sync_batchnorm=True))
    with pytest.raises(ConfigError, match="parallel=dp .* needs CUDA GPUs"):
        Trainer(NoisyRegression(), TrainConfig(parallel="dp"))


def test_spawn_group_rejects_an_empty_world():
    with pytest.raises(ValueError, match="world_size must be >= 1"):
        spawn_group(print, world_size=0)


def test_unseen_moves_shift_three_pixels_and_rotate_beyond_training():
    from paperzoo.multigpu.augment import unseen_moves

    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    blob = torch.exp(-((yy - 13.5) ** 2 + (xx - 13.5) ** 2) / 8)  # round and centred: rotation leaves it in place
    images = blob.expand(16, 1, 28, 28).clone()
    moved = unseen_moves(images, torch.Generator().manual_seed(0))
    mass = moved.sum((1, 2, 3))
    dy = (moved[:, 0] * yy).sum((1, 2)) / mass - 13.5  # centre of mass, (B,)
    dx = (moved[:, 0] * xx).sum((1, 2)) / mass - 13.5
    for y, x in zip(dy.tolist(), dx.tolist()):  # each moved 3 px in one of the 8 directions
        assert {round(abs(y)), round(abs(x))} <= {0, 3} and (round(abs(y)), round(abs(x))) != (0, 0)
        assert abs(abs(y) - round(abs(y))) < 0.05 and abs(abs(x) - round(abs(x))) < 0.05
    bar = torch.zeros(1, 1, 28, 28)
    bar[0, 0, 13:15, 4:24] = 1  # a horizontal bar: rotation tilts it by 20-30 degrees
    turned = unseen_moves(bar, torch.Generator().manual_seed(1))[0, 0]
    ys, xs = torch.nonzero(turned > 0.3, as_tuple=True)
    slope = torch.linalg.lstsq(torch.stack([xs.float(), torch.ones_like(xs.float())], 1), ys.float()[:, None]).solution
    assert 20 <= abs(torch.rad2deg(torch.atan(slope[0, 0])).item()) <= 30
    assert torch.equal(moved, unseen_moves(images, torch.Generator().manual_seed(0)))  # seeded
