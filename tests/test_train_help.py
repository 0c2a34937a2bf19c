"""Every `key=value` example in a train method's description (printed by `paperzoo list`) is a valid override."""

import re

import pytest

from paperzoo.catalog import load_catalog
from paperzoo.config import apply_overrides

SPECS = {name: spec for entry in load_catalog() for name, spec in entry.train_methods.items()}
EXAMPLE = re.compile(r"(?<![\w.])([A-Za-z_][\w.]*)=([^\s,;)]+)")  # key=value, ends at a space , ; or )


def examples(description: str) -> list[str]:
    # a placeholder value (root=...) stands for a path: any text does for the check
    return [f"{key}={'/data/placeholder' if value == '...' else value}"
            for key, value in EXAMPLE.findall(description)]


def test_examples_are_found():
    assert examples("x (train.lr=0.1, data=folder root=...)") == ["train.lr=0.1", "data=folder",
                                                                 "root=/data/placeholder"]
    assert sum(bool(examples(spec.description)) for spec in SPECS.values()) >= 4


@pytest.mark.parametrize("name", sorted(name for name, spec in SPECS.items() if examples(spec.description)))
def test_description_examples_are_valid_overrides(name):
    spec = SPECS[name]
    apply_overrides(spec.config(), examples(spec.description))  # a ConfigError names a bad key or value


# `paperzoo train METHOD --help`: every key with its type, default and meaning; `--config FILE`

import dataclasses  # noqa: E402
import json  # noqa: E402
import typing  # noqa: E402

from paperzoo import config  # noqa: E402
from paperzoo.cli import EXIT_USER_ERROR, main  # noqa: E402
from paperzoo.errors import ConfigError  # noqa: E402


@dataclasses.dataclass
class _Inner:
    width: int = 3
    """How wide.

    Continued on a second line."""
    mode: typing.Literal["a", "b"] = "a"  # the mode, from the comment
    plain: float = 0.5


@dataclasses.dataclass
class _Outer:
    inner: _Inner = dataclasses.field(default_factory=_Inner)
    sizes: tuple[int, int] = (4, 8)
    """Two sizes."""
    name: str | None = None  # a comment is used only when no docstring follows
    """The docstring wins."""
    flag: bool = True


@dataclasses.dataclass
class _Child(_Outer):
    extra: int = 1
    """Added by the subclass."""


def test_field_docs_read_the_docstring_after_a_field_else_its_comment():
    assert config.field_docs(_Inner) == {"width": "How wide. Continued on a second line.",
                                         "mode": "the mode, from the comment"}
    assert config.field_docs(_Outer)["name"] == "The docstring wins."
    assert config.field_docs(_Child) == {"sizes": "Two sizes.", "name": "The docstring wins.",
                                         "extra": "Added by the subclass."}


def test_describe_gives_key_type_default_and_meaning_as_the_command_line_writes_them():
    assert config.describe(_Outer()) == [
        ("inner.width", "int", "3", "How wide. Continued on a second line."),
        ("inner.mode", "{a,b}", "a", "the mode, from the comment"),
        ("inner.plain", "float", "0.5", ""),
        ("sizes", "int,int", "4,8", "Two sizes."),
        ("name", "str | none", "none", "The docstring wins."),
        ("flag", "bool", "true", ""),
    ]
    # each default, written back as an override, gives the default again
    rows = config.describe(_Outer())
    assert config.apply_overrides(_Outer(), [f"{key}={default}" for key, _, default, _ in rows]) == _Outer()


@pytest.mark.parametrize("name", sorted(SPECS))
def test_train_method_help_lists_every_key_with_its_default(name, capsys):
    assert main(["train", name, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"usage: paperzoo train {name} " in out and SPECS[name].description in out
    cfg = SPECS[name].config()
    for key, kind, default, doc in config.describe(cfg):
        assert f"  {key} ({kind}) = {default}\n" in out, key
    assert config.field_names(cfg) == [row[0] for row in config.describe(cfg)]


def test_engine_keys_are_all_explained_in_the_help(capsys):
    assert main(["train", "sanity_cnn", "--help"]) == 0
    out = capsys.readouterr().out
    assert "  train.lr (float) = 0.002\n      Peak learning rate (after warm-up, before decay).\n" in out
    assert "  train.optimizer ({adamw,adam,sgd}) = adam\n" in out
    engine_rows = [row for row in config.describe(SPECS["sanity_cnn"].config()) if row[0].startswith("train.")]
    assert len(engine_rows) == len(dataclasses.fields(SPECS["sanity_cnn"].config().train))
    assert [key for key, _, _, doc in engine_rows if not doc] == []


def test_train_help_without_a_method_lists_the_methods(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    for name, spec in SPECS.items():
        assert f"  {name}" in out and spec.description in out
    assert main(["train"]) == EXIT_USER_ERROR
    assert "train needs a METHOD" in capsys.readouterr().err


def test_overrides_from_file_take_a_run_config_or_dotted_keys(tmp_path):
    spec = SPECS["capsnet"]
    changed = config.apply_overrides(spec.config(), ["model.decoder_hidden=16,32", "train.lr=0.02",
                                                     "affine_test=true", "train.steps=7"])
    run = tmp_path / "config.json"
    run.write_text(json.dumps({"method": "capsnet", **config.to_dict(changed)}))
    assert config.apply_overrides(spec.config(), config.overrides_from_file(run, "capsnet")) == changed
    dotted = tmp_path / "dotted.json"
    dotted.write_text(json.dumps({"train.lr": 0.02, "model": {"iterations": 2}}))
    assert config.overrides_from_file(dotted) == ["train.lr=0.02", "model.iterations=2"]
    with pytest.raises(ConfigError, match="a configuration of 'capsnet', not 'maml'"):
        config.overrides_from_file(run, "maml")
    (tmp_path / "bad.json").write_text(json.dumps({"train": {"lrr": 1}}))
    with pytest.raises(ConfigError, match="unknown config key 'train.lrr'"):
        config.apply_overrides(spec.config(), config.overrides_from_file(tmp_path / "bad.json"))
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must hold a JSON object"):
        config.overrides_from_file(tmp_path / "list.json")


def test_train_config_file_reruns_a_previous_run_and_arguments_win(tmp_path, capsys):
    first, second = tmp_path / "a", tmp_path / "b"
    assert main(["train", "sanity_cnn", "train.steps=3", "train.batch_size=8", "channels=4", "train.progress=false",
                 "--out", str(first)]) == 0
    assert main(["train", "sanity_cnn", "train.steps=2", "--config", str(first / "config.json"),
                 "--out", str(second)]) == 0
    a, b = (json.loads((run / "config.json").read_text()) for run in (first, second))
    assert b["channels"] == 4 and b["train"]["batch_size"] == 8 and b["train"]["progress"] is False
    assert b["train"]["steps"] == 2 and {**a, "train": {**a["train"], "steps": 2}} == b
    capsys.readouterr()
    assert main(["train", "maml", "--config", str(first / "config.json")]) == EXIT_USER_ERROR
    assert "a configuration of 'sanity_cnn', not 'maml'" in capsys.readouterr().err


# keys whose meaning is still missing: their configs live in files this change could not edit (the experiments
# modules, locked while `make demo` runs from them; dpo/cli.py, edited elsewhere at the same time)
UNEXPLAINED = {
    "squeezetime": {"scale", "width_mult", "num_frames", "image_size", "data", "n_train", "n_test", "distractor",
                    "noise", "root", "val_root", "interval", "short_side"},
}
NOT_CHECKED = {"dpo", "dpo_sft", "dpo_reward", "dpo_rl"}


@pytest.mark.parametrize("name", sorted(set(SPECS) - NOT_CHECKED))
def test_every_key_of_a_method_has_a_meaning(name):
    missing = {key for key, _, _, doc in config.describe(SPECS[name].config()) if not doc}
    assert missing == UNEXPLAINED.get(name, set()), "document these fields (a docstring after the field)"
