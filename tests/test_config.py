from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest

from paperzoo.config import apply_overrides, field_names, from_dict, to_dict
from paperzoo.engine import TrainConfig
from paperzoo.errors import ConfigError


@dataclass
class Model:
    width: int = 8
    dropout: float = 0.1
    kind: Literal["cnn", "mlp"] = "cnn"
    sizes: tuple[int, ...] = (1, 2)
    name: Optional[str] = None


@dataclass
class Run:
    model: Model = field(default_factory=Model)
    train: TrainConfig = field(default_factory=TrainConfig)
    verbose: bool = False


def test_overrides_parse_each_type_and_leave_the_original_alone():
    base = Run()
    cfg = apply_overrides(base, ["model.width=32", "model.dropout=0.5", "model.kind=mlp", "model.sizes=3,4,5",
                                 "model.name=abc", "verbose=true", "train.lr=0.01", "train.amp=bf16"])
    assert (cfg.model.width, cfg.model.dropout, cfg.model.kind, cfg.model.sizes) == (32, 0.5, "mlp", (3, 4, 5))
    assert cfg.model.name == "abc" and cfg.verbose is True
    assert cfg.train.lr == 0.01 and cfg.train.amp == "bf16"
    assert base.model.width == 8 and base.train.lr == 1e-3
    assert apply_overrides(cfg, ["model.name=none"]).model.name is None


def test_unknown_key_names_the_key_and_suggests_the_close_one():
    with pytest.raises(ConfigError, match=r"unknown config key 'model.widht'.*Did you mean: model.width"):
        apply_overrides(Run(), ["model.widht=3"])


@pytest.mark.parametrize("override, message", [
    ("model.width=wide", r"model.width='wide': expected int"),
    ("model.kind=rnn", r"not a valid choice; choose one of: cnn, mlp"),
    ("verbose=maybe", r"expected a boolean"),
    ("model.width", r"must look like key=value"),
])
def test_bad_values_are_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(Run(), [override])


def test_field_names_and_dict_round_trip():
    assert "model.width" in field_names(Run()) and "train.lr" in field_names(Run())
    cfg = apply_overrides(Run(), ["model.sizes=7,8"])
    assert from_dict(Run, to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="unknown config keys"):
        from_dict(Run, {**to_dict(cfg), "bogus": 1})
