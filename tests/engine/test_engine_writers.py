"""Periodic checkpoints kept beside `last` (`train.keep_checkpoint_every`), and the metric writers: the run folder's
own, one of the user's (`Trainer(writers=...)`), and W&B's, tested on a stand-in `wandb` module."""

import json
import shutil
import sys
import types

import pytest
import torch
from engine_toy import NoisyRegression

from paperzoo import run_folders
from paperzoo.engine import TrainConfig, Trainer, WandbWriter, load_checkpoint
from paperzoo.engine.checkpoint import read_checkpoint
from paperzoo.engine.trainer import NonFiniteLossError
from paperzoo.errors import ConfigError


def cfg(**kw) -> TrainConfig:
    base = dict(steps=12, batch_size=8, lr=0.05, log_every=4, progress=False, device="cpu")
    return TrainConfig(**{**base, **kw})


def test_kept_checkpoints_hold_the_weights_of_their_step_and_resume_exactly(tmp_path):
    out = tmp_path / "run"
    full = Trainer(NoisyRegression(), cfg(keep_checkpoint_every=5), out_dir=out).fit()
    folder = out / "checkpoints"
    assert sorted(p.name for p in folder.glob("*.safetensors")) == ["last.safetensors", "step-10.safetensors",
                                                                    "step-5.safetensors"]  # 12 is not a multiple
    assert read_checkpoint(folder / "step-5.safetensors")[1]["step"] == 5
    assert read_checkpoint(folder / "last.safetensors")[1]["step"] == 12
    # step-5 holds the weights a 5-step run ends with (constant rate: the first 5 steps are the same)
    five = Trainer(NoisyRegression(), cfg(steps=5)).fit().model
    model = NoisyRegression().build_model()
    load_checkpoint(folder / "step-5.safetensors", model=model)
    for name, value in five.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    # copied over last, it is a full checkpoint: the resumed run ends where the uninterrupted one did
    shutil.copy(folder / "step-5.safetensors", folder / "last.safetensors")
    resumed = Trainer(NoisyRegression(), cfg(keep_checkpoint_every=5), out_dir=out).fit(resume=True)
    for name, value in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name
    # they are the run's files: listed in its manifest, so --overwrite removes them
    assert {"checkpoints/step-5.safetensors", "checkpoints/step-10.safetensors"} <= set(
        run_folders.read_manifest(out)["files"])
    Trainer(NoisyRegression(), cfg(steps=2), out_dir=out, overwrite=True).fit()
    assert sorted(p.name for p in folder.glob("*.safetensors")) == ["last.safetensors"]


def test_a_negative_period_names_the_python_argument():
    with pytest.raises(ConfigError, match=r"TrainConfig\.keep_checkpoint_every must be >= 0, got -1"):
        Trainer(NoisyRegression(), cfg(keep_checkpoint_every=-1))


class Recorder:
    """A writer of one's own: records every call."""

    def __init__(self):
        self.calls = []

    def write(self, step, split, values):
        self.calls.append(("write", step, split, dict(values)))

    def close(self):
        self.calls.append(("close",))


def test_a_writer_receives_every_row_of_metrics_jsonl_then_one_close(tmp_path):
    recorder = Recorder()
    Trainer(NoisyRegression(), cfg(eval_every=8), out_dir=tmp_path, writers=[recorder]).fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["split"]) for r in rows] == [(4, "train"), (8, "train"), (8, "eval"), (12, "train"),
                                                        (12, "eval")]
    written = [{"step": step, "split": split, **values} for _, step, split, values in recorder.calls[:-1]]
    assert written == rows and recorder.calls[-1] == ("close",)
    assert set(rows[0]) == {"step", "split", "loss", "abs_err", "lr"} and rows[0]["lr"] == 0.05


def test_a_writer_is_closed_when_the_run_fails_and_works_without_a_run_folder():
    recorder = Recorder()
    with pytest.raises(NonFiniteLossError):
        Trainer(NoisyRegression(nan_at_call=6), cfg(), writers=[recorder]).fit()
    assert [c[:3] for c in recorder.calls] == [("write", 4, "train"), ("close",)]


def test_a_writer_without_write_and_close_is_refused_naming_the_argument():
    with pytest.raises(ConfigError, match=r"Trainer\(writers=\.\.\.\) takes objects with write\(step, split, "
                                          r"values\) and close\(\).*got function"):
        Trainer(NoisyRegression(), cfg(), writers=[lambda *a: None])


def fake_wandb(calls: list) -> types.ModuleType:
    """A stand-in for the `wandb` package: `init(**kwargs)` returns a run whose `log` and `finish` are recorded."""

    class Run:
        def log(self, values, step):
            calls.append(("log", values, step))

        def finish(self):
            calls.append(("finish",))

    module = types.ModuleType("wandb")
    module.init = lambda **kwargs: calls.append(("init", kwargs)) or Run()
    return module


def test_the_wandb_writer_starts_one_run_logs_each_row_by_split_and_finishes(monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "wandb", fake_wandb(calls))
    writer = WandbWriter(project="paperzoo-test", name="toy")
    assert calls == []  # no run until the first row: other ranks never start one
    Trainer(NoisyRegression(), cfg(steps=8), writers=[writer]).fit()
    assert calls[0] == ("init", {"project": "paperzoo-test", "name": "toy"})
    logged = [(step, sorted(values)) for kind, values, step in (c for c in calls if c[0] == "log")]
    assert logged == [(4, ["train/abs_err", "train/loss", "train/lr"]), (8, ["train/abs_err", "train/loss",
                                                                            "train/lr"]), (8, ["eval/mse"])]
    assert calls[-1] == ("finish",) and sum(c[0] == "init" for c in calls) == 1
    assert calls[1][1]["train/lr"] == 0.05


def test_the_wandb_writer_without_wandb_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    with pytest.raises(ConfigError, match=r"WandbWriter needs the wandb package.*pip install wandb"):
        WandbWriter(project="x")


def test_a_taken_folder_is_refused_naming_the_python_arguments_too(tmp_path):
    """From Python, the refusal of a folder that holds a run names `fit(resume=True)` and `overwrite=True` beside
    the command-line flags; with either, the run goes on."""
    out = tmp_path / "run"
    Trainer(NoisyRegression(), cfg(steps=2), out_dir=out).fit()
    with pytest.raises(ConfigError, match=r"fit\(resume=True\), Trainer\(\.\.\., overwrite=True\)"):
        Trainer(NoisyRegression(), cfg(steps=2), out_dir=out).fit()
    last = out / "checkpoints" / "last.safetensors"
    Trainer(NoisyRegression(), cfg(steps=3), out_dir=out).fit(resume=True)
    assert read_checkpoint(last)[1]["step"] == 3  # continued from step 2
    Trainer(NoisyRegression(), cfg(steps=2), out_dir=out, overwrite=True).fit()
    assert read_checkpoint(last)[1]["step"] == 2  # a new run in its place
