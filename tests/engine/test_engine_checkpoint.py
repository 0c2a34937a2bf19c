import os
import random

import numpy as np
import pytest
import torch

from paperzoo.engine import checkpoint as ckpt
from paperzoo.engine import load_checkpoint, save_checkpoint
from paperzoo.errors import UserError


def _model_and_optimizer():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    for _ in range(3):
        model(torch.randn(8, 4)).pow(2).mean().backward()
        optimizer.step()
        scheduler.step()
    return model, optimizer, scheduler


def test_round_trip_restores_model_optimizer_scheduler_and_rng(tmp_path):
    model, optimizer, scheduler = _model_and_optimizer()
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, model=model, step=3, optimizer=optimizer, scheduler=scheduler, config={"lr": 0.1})
    expected = (torch.rand(3), np.random.rand(), random.random())

    torch.manual_seed(99)
    other = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 1))
    other_opt = torch.optim.AdamW(other.parameters(), lr=0.1)
    other_sched = torch.optim.lr_scheduler.StepLR(other_opt, step_size=2, gamma=0.5)
    meta = load_checkpoint(path, model=other, optimizer=other_opt, scheduler=other_sched)

    assert meta["step"] == 3 and meta["config"] == {"lr": 0.1}
    for (k, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        assert torch.equal(a, b), k
    for a, b in zip(optimizer.state_dict()["state"].values(), other_opt.state_dict()["state"].values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
        assert float(a["step"]) == float(b["step"]) == 3
    assert other_sched.get_last_lr() == scheduler.get_last_lr() == [0.05]
    assert torch.equal(torch.rand(3), expected[0]) and np.random.rand() == expected[1]
    assert random.random() == expected[2]


def test_the_file_holds_no_pickle_and_loads_with_safetensors_alone(tmp_path):
    from safetensors.torch import load_file

    model, optimizer, _ = _model_and_optimizer()
    save_checkpoint(tmp_path / "c.safetensors", model=model, step=1, optimizer=optimizer)
    tensors = load_file(str(tmp_path / "c.safetensors"))
    assert torch.equal(tensors["model.0.weight"], model[0].weight.detach())
    assert b"\x80\x04" not in (tmp_path / "c.safetensors").read_bytes()[:16]  # not a pickle stream


def test_crash_mid_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model, optimizer, _ = _model_and_optimizer()
    path = tmp_path / "last.safetensors"
    save_checkpoint(path, model=model, step=1, optimizer=optimizer)
    before = path.read_bytes()

    def crash(fd):
        raise OSError("disk died during fsync")

    monkeypatch.setattr(ckpt.os, "fsync", crash)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    with pytest.raises(OSError, match="disk died"):
        save_checkpoint(path, model=model, step=2, optimizer=optimizer)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["last.safetensors"]  # no temporary file left behind
    assert load_checkpoint(path, model=model)["step"] == 1


def test_corrupt_or_missing_checkpoint_is_a_clear_error(tmp_path):
    model, _, _ = _model_and_optimizer()
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, model=model, step=1)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UserError, match="corrupt or not a paperzoo checkpoint"):
        load_checkpoint(path, model=model)
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors", model=model)


def test_state_dict_mismatches_names_each_kind_once():
    from paperzoo.engine.checkpoint import state_dict_mismatches

    model = torch.nn.Linear(2, 3)
    assert state_dict_mismatches(model, model.state_dict()) == []
    state = {"weight": torch.zeros(3, 4), "extra": torch.zeros(1)}
    assert state_dict_mismatches(model, state) == ["  missing keys (1): bias", "  unexpected keys (1): extra",
                                                   "  shape mismatches (1): weight: (3, 4) vs model (3, 2)"]
