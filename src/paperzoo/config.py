"""Typed dataclass configs with strict dotted `key=value` overrides (the minGPT habit).

`apply_overrides(cfg, ["train.lr=0.01", "model.channels=32"])` returns a new config; an unknown key, a value
that does not parse as the field's type, or a float that is nan or inf raises `ConfigError` naming the key and the
valid choices.

A value of the right type can still be wrong (out of range, or not fitting another setting). A config dataclass
says which in a method `check(self, prefix)` that raises `ConfigError` through `require`, `at_least`, `positive` or
`require_divisor`, naming each field `prefix + name`. `validate(cfg)` runs the `check` of every nested config with
its dotted prefix ("train.", "model.") and then that of `cfg`; `apply_overrides` calls it once after all overrides,
so settings that depend on each other may be given in any order.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from paperzoo.errors import ConfigError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def field_names(cfg: Any, prefix: str = "") -> list[str]:
    """Every settable dotted key of a (nested) dataclass config."""
    names = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            names += field_names(value, prefix + f.name + ".")
        else:
            names.append(prefix + f.name)
    return names


def _parse(text: str, kind: Any, key: str) -> Any:
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(kind) if a is not type(None)]
        if text.lower() in {"none", "null"} and len(options) < len(get_args(kind)):
            return None
        for option in options:
            try:
                return _parse(text, option, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}={text!r}: expected one of {options}")
    if origin is Literal:
        choices = get_args(kind)
        for choice in choices:
            if str(choice) == text:
                return choice
        raise ConfigError(f"{key}={text!r} is not a valid choice; choose one of: {', '.join(map(str, choices))}")
    if origin in (tuple, list):
        (item,) = get_args(kind)[:1] or (str,)
        parts = [p for p in text.strip("()[]").split(",") if p.strip()]
        values = [_parse(p.strip(), item, key) for p in parts]
        return tuple(values) if origin is tuple else values
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ConfigError(f"{key}={text!r}: expected a boolean (true/false)")
    if kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            raise ConfigError(f"{key}={text!r}: expected {kind.__name__}") from None
        if kind is float and not math.isfinite(value):
            raise ConfigError(f"{key}={text!r}: expected a finite number")
        return value
    if kind is str:
        return text
    raise ConfigError(f"{key}: fields of type {kind} cannot be set from the command line")


def apply_overrides(cfg: Any, overrides: list[str]) -> Any:
    """A copy of `cfg` with each `dotted.key=value` applied; strict about keys and types."""
    valid = field_names(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (valid keys: {', '.join(valid)})")
        key, text = item.split("=", 1)
        key = key.strip()
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown config key {key!r}.{hint} Valid keys: {', '.join(valid)}")
        cfg = _replace_path(cfg, key.split("."), text, key)
    validate(cfg)
    return cfg


def _replace_path(cfg: Any, path: list[str], text: str, key: str) -> Any:
    name = path[0]
    if len(path) > 1:
        return dataclasses.replace(cfg, **{name: _replace_path(getattr(cfg, name), path[1:], text, key)})
    kind = get_type_hints(type(cfg))[name]
    return dataclasses.replace(cfg, **{name: _parse(text, kind, key)})


def validate(cfg: Any, prefix: str = "") -> None:
    """Run `check(prefix)` of every nested config (innermost first), then of `cfg` itself."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            validate(value, prefix + f.name + ".")
    if hasattr(cfg, "check"):
        cfg.check(prefix)


def require(ok: bool, key: str, value: Any, rule: str) -> None:
    """Raise `ConfigError("<key> must be <rule>, got <value>")` unless `ok`."""
    if not ok:
        raise ConfigError(f"{key} must be {rule}, got {value!r}")


def at_least(cfg: Any, prefix: str, low: int, *names: str) -> None:
    for name in names:
        require(getattr(cfg, name) >= low, prefix + name, getattr(cfg, name), f">= {low}")


def positive(cfg: Any, prefix: str, *names: str) -> None:
    for name in names:
        require(getattr(cfg, name) > 0, prefix + name, getattr(cfg, name), "> 0")


def require_divisor(value: int, key: str, total: int, of: str) -> None:
    """`value` (the setting `key`) must divide `total`, described by `of`; the message lists the divisors."""
    divisors = [d for d in range(1, total + 1) if total % d == 0]
    require(value in divisors, key, value, f"a divisor of {of}: one of {', '.join(map(str, divisors))}")


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_dict(cfg), indent=2, sort_keys=True) + "\n")


def from_dict(cls: type, data: dict) -> Any:
    """Rebuild a (nested) dataclass config from `to_dict` output; unknown keys are an error."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"unknown config keys for {cls.__name__}: {sorted(unknown)}")
    kwargs = {}
    for name, value in data.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind) and isinstance(value, dict):
            value = from_dict(kind, value)
        elif get_origin(kind) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)
