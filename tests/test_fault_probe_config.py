"""Bad settings through the real CLI (issue #22): a value that parses but is out of range, inconsistent with another
setting, or more than the data holds ends in one `paperzoo: error: ...` line naming the key, exit status 2, before
any training and before a run folder exists. Each case stops where the config is read (a few need the data)."""

import pytest

import paperzoo.engine
from paperzoo.cli import EXIT_USER_ERROR, main


class NeverTrains:
    def __init__(self, *args, **kwargs):
        raise AssertionError("training started")


class Reached(Exception):
    pass


@pytest.mark.parametrize("method, overrides, expected", [
    ("sanity_cnn", ["train.lr=nan"], "train.lr='nan': expected a finite number"),
    ("sanity_cnn", ["train.grad_clip=inf"], "train.grad_clip='inf': expected a finite number"),
    ("sanity_cnn", ["train.warmup_steps=-5"], "train.warmup_steps must be >= 0, got -5"),
    ("sanity_cnn", ["train.decay_every=0"], "train.decay_every must be >= 1, got 0"),
    ("sanity_cnn", ["train.lr=0"], "train.lr must be > 0, got 0.0"),
    ("sanity_cnn", ["train.momentum=1"], "train.momentum must be in [0, 1), got 1.0"),
    ("gblend_naive", ["hidden=0"], "hidden must be >= 1, got 0"),
    ("capsnet", ["test_examples=-5"], "test_examples must be >= 1, got -5"),
    ("capsnet", ["model.image_size=20"], "model.image_size must be 28 for task=mnist"),
    ("capsnet", ["task=multimnist"], "model.image_size must be 36 for task=multimnist"),
    ("capsnet", ["model.iterations=0"], "model.iterations must be >= 1, got 0"),
    ("causal_vqa", ["image_size=4"], "image_size must be >= 16"),
    ("squeezetime", ["model=x3d"], "model must be one of squeezetime, squeezetime_conv, squeezetime_tfc, r3d"),
    ("squeezetime", ["n_test=0"], "n_test must be >= 1, got 0"),
    ("squeezetime", ["num_frames=16"], "image_size must be >= 44 for 16 frames"),
    ("dpo", ["tiny.heads=5"], "tiny.heads must be a divisor of tiny.hidden_size=96: one of 1, 2, 3, 4, 6, 8, 12"),
    ("vit_registers", ["num_heads=3"], "num_heads must be a divisor of embed_dim=64: one of 1, 2, 4, 8"),
    ("vit_registers", ["patch_size=5"], "patch_size must be a divisor of the image size 28: one of 1, 2, 4, 7, 14"),
    ("vit_registers", ["num_registers=-1"], "num_registers must be >= 0, got -1"),
    ("maml", ["n_way=7"], "n_way must be equal to data.test_way=5"),
    ("protonet", ["data.test_episodes=1"], "data.test_episodes must be >= 2"),
    ("maml", ["data.max_alphabets=3", "data.max_per_alphabet=10", "data.renderings=17", "data.test_queries=30"],
     "data.test_queries=30 do not fit the meta-test classes"),
])
def test_bad_setting_is_refused_before_training(tmp_path, monkeypatch, capsys, method, overrides, expected):
    monkeypatch.setattr(paperzoo.engine, "Trainer", NeverTrains)
    out = tmp_path / "run"
    assert main(["train", method, *overrides, "--out", str(out)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    line = err.splitlines()[-1]  # after the progress bar of data built on first use
    assert line.startswith("paperzoo: error: ") and expected in line and "Traceback" not in err, err
    assert not out.exists()


def test_settings_that_depend_on_each_other_may_come_in_any_order(tmp_path, monkeypatch):
    """The checks run once all overrides are applied, so a consistent pair reaches training in either order."""
    def trainer(method, cfg, **kwargs):
        raise Reached

    monkeypatch.setattr(paperzoo.engine, "Trainer", trainer)
    for overrides in (["task=multimnist", "model.image_size=36"], ["model.image_size=36", "task=multimnist"]):
        with pytest.raises(Reached):
            main(["train", "capsnet", *overrides, "--out", str(tmp_path / "run")])
