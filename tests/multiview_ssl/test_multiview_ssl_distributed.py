"""Global-batch InfoNCE under DDP: 2 CPU ranks (gloo) against one process holding the whole batch."""

import pytest
import torch

from paperzoo.multigpu.launch import spawn_group
from paperzoo.multiview_ssl.distributed import gather_with_grad, info_nce_global
from paperzoo.multiview_ssl.losses import info_nce
from multiview_ssl_helpers import global_batch, global_infonce_worker

T = 0.5


def test_without_a_process_group_it_is_info_nce():
    g = torch.Generator().manual_seed(0)
    z_x, z_s = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    assert torch.equal(info_nce_global(z_x, z_s, T), info_nce(z_x, z_s, T))
    assert gather_with_grad(z_x) is z_x


def test_the_anchor_shares_average_to_the_whole_batch_loss():
    """The arithmetic behind the rank shares, in one process: 4 ranks of 3 pairs each."""
    g = torch.Generator().manual_seed(1)
    z_x, z_s = torch.randn(12, 5, generator=g), torch.randn(12, 5, generator=g)
    shares = [info_nce(z_x, z_s, T, anchors=range(3 * r, 3 * r + 3)) for r in range(4)]
    assert torch.stack(shares).mean().item() == pytest.approx(info_nce(z_x, z_s, T).item(), rel=1e-6)
    assert max(s.item() for s in shares) - min(s.item() for s in shares) > 1e-3  # the shares are not all equal
    with pytest.raises(ValueError, match="anchors"):
        info_nce(z_x, z_s, T, anchors=range(10, 14))


def test_ddp_loss_and_gradients_equal_one_process_on_the_global_batch():
    ranks = spawn_group(global_infonce_worker, world_size=2, args=(T,), timeout_s=120)
    x, s, encoder = global_batch()
    z = encoder(torch.cat([x, s]))  # (2N, D)
    z_x, z_s = z.chunk(2)
    reference = info_nce(z_x, z_s, T)
    reference.backward()
    expected = [p.grad for p in encoder.parameters()]

    # (a) the mean of the per-rank losses is the global-batch loss (and the ranks' shares differ)
    losses = [r["loss"] for r in ranks]
    assert sum(losses) / 2 == pytest.approx(reference.item(), rel=1e-6)
    assert abs(losses[0] - losses[1]) > 1e-4
    # (b) DDP's averaged gradients are the one-process gradients, identical on both ranks
    for r in ranks:
        for got, want in zip(r["grads"], expected):
            assert torch.allclose(torch.tensor(got), want, atol=1e-6, rtol=1e-5), (got, want)
    # (c) the plain all_gather has the same forward value but loses the cross-rank gradient
    assert [r["plain_loss"] for r in ranks] == pytest.approx(losses, rel=1e-6)
    gap = max((torch.tensor(got) - want).abs().max().item() for got, want in zip(ranks[0]["plain_grads"], expected))
    assert gap > 1e-3

    # the gather itself: rows in rank order; the gradient is the sum over ranks of each rank's weights, sliced
    for r in ranks:
        assert r["gathered"] == [[0.0] * 3] * 2 + [[1.0] * 3] * 2
    weights = torch.arange(12.0).reshape(4, 3)
    summed = weights * 1 + weights * 2  # rank 0 multiplies by 1, rank 1 by 2
    assert ranks[0]["v_grad"] == summed[:2].tolist() and ranks[1]["v_grad"] == summed[2:].tolist()
    for r in ranks:
        assert "same shape on every rank" in r["shape_error"] and "[(1, 2), (2, 2)]" in r["shape_error"]
