"""Sharded DPO (`train.parallel=fsdp`, FSDP2's `fully_shard`) on CPU with gloo: 2 ranks x 8 pairs against 1 process x
16 pairs (the same losses, and the same checkpoint: weights or adapters, and the optimizer state), resume, the
refusal in one process. Each rank holds half of every tensor, so the checkpoint is the ranks' shards gathered to
rank 0."""

import pytest
import torch
from dpo_helpers import sharded_dpo_run, tiny_lm, toy_pairs

from paperzoo.dpo.methods import DPO
from paperzoo.engine import fsdp
from paperzoo.engine.checkpoint import read_checkpoint
from paperzoo.engine.trainer import TrainConfig, Trainer
from paperzoo.errors import ConfigError
from paperzoo.multigpu.launch import spawn_group


def saved(out):
    """The tensors (model and optimizer state) and the metadata of a run's last checkpoint."""
    tensors, meta = read_checkpoint(out / "checkpoints" / "last.safetensors")
    return {k: v for k, v in tensors.items() if not k.startswith("rng.")}, meta


def assert_same_checkpoint(sharded, single, atol):
    (tensors, meta), (expected, expected_meta) = saved(sharded), saved(single)
    assert tensors.keys() == expected.keys() and any(k.startswith("optim.") for k in tensors)  # Adam's moments
    assert meta.get("model_state") == expected_meta.get("model_state")
    assert meta["optimizer"] == expected_meta["optimizer"]  # keyed by parameter index, as one process saves it
    for name, value in expected.items():
        torch.testing.assert_close(tensors[name], value, rtol=0, atol=atol, msg=name)


@pytest.mark.parametrize("lora", [False, True], ids=["every-weight", "lora"])
def test_two_sharded_ranks_equal_one_process_on_the_union_batch(tmp_path, lora):
    if lora:
        pytest.importorskip("peft")
    ranks = spawn_group(sharded_dpo_run, world_size=2, args=(8, "fsdp", lora, tmp_path / "fsdp", 3), timeout_s=300)
    single = sharded_dpo_run(16, "auto", lora, tmp_path / "one", 3)
    assert ranks[0] == ranks[1]  # the logged losses are averaged over the ranks
    assert ranks[0] == pytest.approx(single, abs=1e-6) and single[0] == pytest.approx(0.693147, abs=1e-6)
    assert abs(single[-1] - single[0]) > 1e-3  # it trained
    # Adam divides by the root of the second moment, so float-rounding differences of tiny gradients grow a little
    assert_same_checkpoint(tmp_path / "fsdp", tmp_path / "one", atol=1e-6 if lora else 1e-4)
    tensors, meta = saved(tmp_path / "fsdp")
    model = {k for k in tensors if k.startswith("model.")}
    assert (meta.get("model_state") == "partial") == lora
    assert all("lora_" in k for k in model) if lora else len(model) == len(tiny_lm().state_dict())


def test_a_sharded_run_resumes_exactly_sharded_or_in_one_process(tmp_path):
    """2 sharded steps, a 3rd after resuming sharded, a 4th after resuming in one process: the 4 steps of one
    process."""
    pytest.importorskip("peft")
    run = tmp_path / "fsdp"
    spawn_group(sharded_dpo_run, world_size=2, args=(8, "fsdp", True, run, 2), timeout_s=300)
    spawn_group(sharded_dpo_run, world_size=2, args=(8, "fsdp", True, run, 3, True), timeout_s=300)
    resumed = sharded_dpo_run(16, "auto", True, run, 4, resume=True)
    single = sharded_dpo_run(16, "auto", True, tmp_path / "one", 4)
    assert resumed == pytest.approx(single, abs=1e-6)  # the logged history; step 3 and 4 after a reload
    assert_same_checkpoint(run, tmp_path / "one", atol=1e-6)


def test_fsdp_needs_torchrun():
    method = DPO(tiny_lm, tiny_lm(), toy_pairs(8, 0))
    with pytest.raises(ConfigError, match=r"train.parallel=fsdp shards the model over torchrun's processes"):
        Trainer(method, TrainConfig(parallel="fsdp", device="cpu"))


def test_the_shard_units_are_the_repeated_layers():
    model = tiny_lm()
    assert fsdp.shard_units(model) == list(model.blocks)
    nested = torch.nn.Sequential(torch.nn.ModuleList([torch.nn.ModuleList([torch.nn.Linear(2, 2)]),
                                                      torch.nn.ReLU(), torch.nn.Linear(2, 2)]))
    assert fsdp.shard_units(nested) == [nested[0][0], nested[0][2]]  # the outermost list; no parameter-free layer
