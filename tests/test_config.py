from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest

from paperzoo.config import apply_overrides, at_least, field_names, from_dict, require_divisor, to_dict, validate
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


@dataclass
class Attention:
    width: int = 8
    heads: int = 2

    def check(self, prefix):
        at_least(self, prefix, 1, "width")
        require_divisor(self.heads, prefix + "heads", self.width, f"{prefix}width={self.width}")


@dataclass
class Net:
    attention: Attention = field(default_factory=Attention)
    layers: int = 2

    def check(self, prefix):
        at_least(self, prefix, 1, "layers")


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


@pytest.mark.parametrize("override", ["train.lr=nan", "train.lr=inf", "model.dropout=-inf", "model.dropout=NaN"])
def test_non_finite_floats_are_refused(override):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"{key}='.*': expected a finite number"):
        apply_overrides(Run(), [override])


@pytest.mark.parametrize("override, message", [
    ("train.steps=0", "train.steps must be >= 1, got 0"),
    ("train.batch_size=0", "train.batch_size must be >= 1, got 0"),
    ("train.accumulation=0", "train.accumulation must be >= 1, got 0"),
    ("train.log_every=0", "train.log_every must be >= 1, got 0"),
    ("train.decay_every=0", "train.decay_every must be >= 1, got 0"),
    ("train.warmup_steps=-5", "train.warmup_steps must be >= 0, got -5"),
    ("train.weight_decay=-0.1", "train.weight_decay must be >= 0, got -0.1"),
    ("train.grad_clip=-1", "train.grad_clip must be >= 0, got -1.0"),
    ("train.eval_every=-1", "train.eval_every must be >= 0, got -1"),
    ("train.checkpoint_every=-1", "train.checkpoint_every must be >= 0, got -1"),
    ("train.num_workers=-1", "train.num_workers must be >= 0, got -1"),
    ("train.lr=0", "train.lr must be > 0, got 0.0"),
    ("train.lr=-0.01", "train.lr must be > 0, got -0.01"),
    ("train.lr_decay=0", "train.lr_decay must be > 0, got 0.0"),
    ("train.dist_timeout_s=0", "train.dist_timeout_s must be > 0, got 0.0"),
    ("train.momentum=1", r"train.momentum must be in \[0, 1\), got 1.0"),
    ("train.momentum=-0.5", r"train.momentum must be in \[0, 1\), got -0.5"),
])
def test_train_settings_out_of_range_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(Run(), [override])


def test_train_settings_at_their_bounds_pass():
    cfg = apply_overrides(Run(), ["train.warmup_steps=0", "train.weight_decay=0", "train.grad_clip=0",
                                  "train.momentum=0", "train.steps=1", "train.decay_every=1", "train.lr=1e-9"])
    assert (cfg.train.warmup_steps, cfg.train.momentum, cfg.train.decay_every) == (0, 0.0, 1)


def test_checks_run_on_nested_configs_with_their_dotted_keys():
    with pytest.raises(ConfigError, match=r"attention.heads must be a divisor of attention.width=8: one of 1, 2, 4, 8, "
                                          "got 3"):
        apply_overrides(Net(), ["attention.heads=3"])
    with pytest.raises(ConfigError, match="attention.width must be >= 1, got 0"):
        apply_overrides(Net(), ["attention.width=0"])
    with pytest.raises(ConfigError, match="^layers must be >= 1, got 0"):
        validate(Net(layers=0))


def test_settings_that_depend_on_each_other_may_come_in_any_order():
    for overrides in (["attention.heads=3", "attention.width=12"], ["attention.width=12", "attention.heads=3"]):
        cfg = apply_overrides(Net(), overrides)
        assert (cfg.attention.width, cfg.attention.heads) == (12, 3)
