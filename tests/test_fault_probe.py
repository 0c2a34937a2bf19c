"""Fault probe of run folders, end to end through the CLI, as a careful user would try it (issue #22): nothing is
overwritten without being asked, a resumed run uses its own config.json, leftovers of killed writes do not block or
linger. Each case trains `sanity_cnn` for a few steps on a tiny model (about a second)."""

import json
import os
import subprocess
import sys

import pytest

from paperzoo.cli import EXIT_USER_ERROR, main
from paperzoo.engine.checkpoint import read_checkpoint
from paperzoo.run_folders import new_folder

TINY = ["train.steps=4", "train.batch_size=8", "channels=4", "train.progress=false", "train.log_every=2"]


def _train(out, *extra, tiny=TINY):
    return main(["train", "sanity_cnn", *tiny, *extra, "--out", str(out)])


def _rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _checkpoint(out):
    return out / "checkpoints" / "last.safetensors"


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    first, second = new_folder("train-x"), new_folder("train-x")
    assert first != second and first.is_dir() and second.is_dir()
    assert main(["train", "sanity_cnn", *TINY]) == 0
    assert main(["train", "sanity_cnn", *TINY, "channels=6"]) == 0
    folders = sorted((tmp_path / "runs").glob("train-sanity_cnn-*"))
    assert len(folders) == 2
    assert sorted(json.loads((f / "config.json").read_text())["channels"] for f in folders) == [4, 6]
    for folder in folders:  # each run logged its own rows, not interleaved
        assert [r["step"] for r in _rows(folder) if r["split"] == "train"] == [2, 4]


def test_a_finished_run_is_not_replaced_without_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(out) == 0
    checkpoint, metrics = _checkpoint(out).read_bytes(), (out / "metrics.jsonl").read_text()
    assert _train(out, "train.lr=0.01") == EXIT_USER_ERROR
    assert "already holds a training run" in capsys.readouterr().err
    assert _checkpoint(out).read_bytes() == checkpoint and (out / "metrics.jsonl").read_text() == metrics
    assert _train(out, "train.lr=0.01", "--overwrite") == 0
    assert json.loads((out / "config.json").read_text())["train"]["lr"] == 0.01
    assert [r["step"] for r in _rows(out) if r["split"] == "train"] == [2, 4]  # the old rows are gone
    assert main(["train", "sanity_cnn", "--resume", "--overwrite", "--out", str(out)]) == EXIT_USER_ERROR


def test_resume_uses_the_runs_own_config_and_refuses_changes(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(out, "train.lr=0.003") == 0
    # a changed setting that would mix two configurations is refused and named
    assert main(["train", "sanity_cnn", "train.lr=0.1", "--resume", "--out", str(out)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "train.lr=0.003 -> 0.1" in err and "train.steps" in err
    # overrides left out are not reset to the defaults: channels=4 and lr=0.003 come from config.json
    assert main(["train", "sanity_cnn", "train.steps=6", "--resume", "--out", str(out)]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert (saved["channels"], saved["train"]["lr"], saved["train"]["steps"]) == (4, 0.003, 6)
    assert read_checkpoint(_checkpoint(out))[1]["step"] == 6
    # a run of another method is not resumed as this one
    assert main(["train", "multiview_ssl", "--resume", "--out", str(out)]) == EXIT_USER_ERROR
    assert "is a run of 'sanity_cnn'" in capsys.readouterr().err


def test_resuming_a_finished_run_logs_its_evaluation_once_and_fewer_steps_are_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(out) == 0
    before = _rows(out)
    assert _train(out, "--resume") == 0
    assert _rows(out) == before
    assert _train(out, "--resume", tiny=[t for t in TINY if t != "train.steps=4"] + ["train.steps=2"]) \
        == EXIT_USER_ERROR
    assert "already trained 4 steps" in capsys.readouterr().err


def test_a_half_written_metrics_line_does_not_block_resume_but_a_corrupt_one_is_named(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(out) == 0
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "spl')  # the write a kill cut short
    assert _train(out, "train.steps=6", "--resume") == 0
    assert [r["step"] for r in _rows(out) if r["split"] == "train"] == [2, 4, 6]
    lines = (out / "metrics.jsonl").read_text().splitlines()
    (out / "metrics.jsonl").write_text("\n".join([lines[0], "garbage", *lines[1:]]) + "\n")
    assert _train(out, "train.steps=8", "--resume") == EXIT_USER_ERROR
    assert "metrics.jsonl, line 2" in capsys.readouterr().err


def test_a_killed_writers_temporary_file_is_removed_by_the_next_save(tmp_path):
    out = tmp_path / "run"
    assert _train(out) == 0
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = _checkpoint(out).with_name(f".last.safetensors.tmp-{int(dead.stdout)}")
    live = _checkpoint(out).with_name(f".last.safetensors.tmp-{os.getpid()}-other")  # not a pid: left alone
    stale.write_bytes(b"x" * 1000)
    live.write_bytes(b"")
    assert _train(out, "train.steps=6", "--resume") == 0
    assert not stale.exists() and live.exists()


def test_an_elastic_restart_without_out_continues_the_same_folder(tmp_path, monkeypatch, capsys):
    """torchrun sets TORCHELASTIC_RUN_ID (the rendezvous id) in every worker: it names the folder, so a restarted
    worker finds the run again instead of starting from step 0 in a new folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job42")
    assert main(["train", "sanity_cnn", *TINY]) == 0
    folder = tmp_path / "runs" / "train-sanity_cnn-torchrun-job42"
    assert read_checkpoint(_checkpoint(folder))[1]["step"] == 4
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    assert main(["train", "sanity_cnn", *TINY[1:], "train.steps=6"]) == 0
    assert [r["step"] for r in _rows(folder) if r["split"] == "train"] == [2, 4, 6]
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")  # a multi-node job without --rdzv-id
    assert main(["train", "sanity_cnn", *TINY]) == EXIT_USER_ERROR
    assert "pass --out" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [("{not json", "not valid JSON"), ("[1, 2]", "JSON object")])
def test_a_damaged_config_json_is_a_clear_error_on_resume(tmp_path, capsys, content, message):
    out = tmp_path / "run"
    assert _train(out) == 0
    (out / "config.json").write_text(content)
    assert _train(out, "--resume") == EXIT_USER_ERROR
    assert message in capsys.readouterr().err


def test_every_methods_config_survives_its_config_json():
    """--resume rebuilds the configuration from config.json: every method's must round-trip exactly."""
    from paperzoo import config
    from paperzoo.catalog import load_catalog

    specs = [spec for entry in load_catalog() for spec in entry.train_methods.values()]
    assert len(specs) >= 10
    for spec in specs:
        saved = json.loads(json.dumps(config.to_dict(spec.config())))
        assert config.from_dict(spec.config, saved) == spec.config(), spec.name


def test_no_loader_in_the_package_can_unpickle_code():
    """Every torch.load passes weights_only=True, no np.load allows pickles, and nothing imports pickle, except the
    seed workers: they unpickle only what their own run sent them through the pipe it opened to the processes it
    spawned, never a file (`paperzoo.seed_workers`)."""
    import ast
    from pathlib import Path

    import paperzoo

    calls = 0
    for path in Path(paperzoo.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                pickles = any(n.split(".")[0] in ("pickle", "dill", "cloudpickle") for n in names)
                assert not pickles or (path.name == "seed_workers.py" and names == ["cloudpickle", ""]), path
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load":
                owner = ast.unparse(node.func.value)
                flags = {k.arg: ast.unparse(k.value) for k in node.keywords}
                if owner == "torch":
                    calls += 1
                    assert flags.get("weights_only") == "True", f"{path}: torch.load without weights_only=True"
                if owner in ("np", "numpy"):
                    assert flags.get("allow_pickle", "False") == "False", f"{path}: np.load with pickles"
    assert calls >= 3  # the scan does see the loaders (DINOv2 weights, gblend features)
