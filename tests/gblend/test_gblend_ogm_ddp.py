"""OGM-GE on the global batch: 2 CPU ranks (gloo) against one process holding the union batch, and gradient
accumulation against one larger batch. Coefficients come from the scores summed over ranks and micro-batches, and
the noise is added once, after the gradient average, the same on every rank (Peng et al., arXiv 2203.15332)."""

import torch

from paperzoo.multigpu.launch import spawn_group
from gblend_ddp_helpers import ogm_run


def test_two_rank_ddp_equals_one_process_on_the_union_batch():
    ranks = spawn_group(ogm_run, world_size=2, args=(8,), timeout_s=180)
    union, half = ogm_run(16), ogm_run(8)
    assert ranks[0]["params"] == ranks[1]["params"]  # the shared noise keeps the replicas identical
    _assert_same_run(ranks[0], union)
    assert min(union["k"]["image"]) < 0.9 and min(union["k"]["audio"]) < 0.9  # the modulation is at work
    assert (torch.tensor(half["params"]) - torch.tensor(union["params"])).abs().max() > 1e-3  # 8 is not 16


def _assert_same_run(run: dict, reference: dict) -> None:
    for m, k in reference["k"].items():
        torch.testing.assert_close(torch.tensor(run["k"][m]), torch.tensor(k), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(torch.tensor(run["params"]), torch.tensor(reference["params"]), atol=2e-5,
                               rtol=1e-4)


def test_accumulated_micro_batches_equal_one_batch():
    _assert_same_run(ogm_run(8, accumulation=2), ogm_run(16))
