"""Typed dataclass configs with strict dotted `key=value` overrides (the minGPT habit).

`apply_overrides(cfg, ["train.lr=0.01", "model.channels=32"])` returns a new config; an unknown key, a value
that does not parse as the field's type, or a float that is nan or inf raises `ConfigError` naming the key and the
valid choices.

A value of the right type can still be wrong (out of range, or not fitting another setting). A config dataclass
says which in a method `check(self, prefix)` that raises `ConfigError` through `require`, `at_least`, `positive` or
`require_divisor`, naming each field `prefix + name`. `validate(cfg)` runs the `check` of every nested config with
its dotted prefix ("train.", "model.") and then that of `cfg`; `apply_overrides` calls it once after all overrides,
so settings that depend on each other may be given in any order.

A field is documented by a string right after it (an attribute docstring, which the API reference shows) or, where
there is none, by the comment at the end of its line; `field_docs` reads either, and `describe` / `help_text` list
every key with its type, default and meaning (`paperzoo train METHOD --help`). `overrides_from_file` turns a JSON
file of settings, nested (a run's `config.json`) or dotted, into overrides.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import inspect
import io
import json
import math
import textwrap
import tokenize
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


def from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    """Rebuild a (nested) dataclass config from `to_dict` output (a run's config.json); unknown keys and values of
    the wrong type (`"lr": null`, an optimizer that is not one of the choices) are a `ConfigError` naming the
    dotted key. Ranges are `validate`'s."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"unknown config keys for {cls.__name__}: {sorted(unknown)}")
    kwargs = {}
    for name, value in data.items():
        kind, key = hints[name], prefix + name
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, dict):
                raise ConfigError(f"{key}={value!r}: expected an object of {kind.__name__}'s settings")
            value = from_dict(kind, value, key + ".")
        else:
            value = _typed(value, kind, key)
        kwargs[name] = value
    return cls(**kwargs)


def _typed(value: Any, kind: Any, key: str) -> Any:
    """`value` (from JSON) as a value of type `kind`, or a `ConfigError` naming `key` and the type expected."""
    origin = get_origin(kind)
    wrong = ConfigError(f"{key}={value!r}: expected {type_text(kind)}")
    if origin in (Union, types.UnionType):
        if value is None and type(None) in get_args(kind):
            return None
        for option in (a for a in get_args(kind) if a is not type(None)):
            try:
                return _typed(value, option, key)
            except ConfigError:
                continue
        raise wrong
    if origin is Literal:
        if any(value == c and type(value) is type(c) for c in get_args(kind)):
            return value
        raise ConfigError(f"{key}={value!r} is not a valid choice; choose one of: "
                          f"{', '.join(map(str, get_args(kind)))}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise wrong
        args = get_args(kind)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise wrong
            items = [_typed(v, a, key) for v, a in zip(value, args)]
        else:
            items = [_typed(v, args[0], key) for v in value] if args else list(value)
        return tuple(items) if origin is tuple else items
    if kind is bool:
        if not isinstance(value, bool):
            raise wrong
    elif kind is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise wrong
    elif kind is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ConfigError(f"{key}={value!r}: expected a finite number")
        return float(value)
    elif kind is str:
        if not isinstance(value, str):
            raise wrong
    return value


@functools.lru_cache(maxsize=None)
def _own_field_docs(cls: type) -> dict[str, str]:
    """The docs of the fields that `cls` itself declares: the string after a field, else its line's comment."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    body = ast.parse(source).body[0].body
    docs = {}
    for node, after in zip(body, [*body[1:], None]):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        if (isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[node.target.id] = " ".join(inspect.cleandoc(after.value.value).split())
        elif node.end_lineno in comments:
            docs[node.target.id] = comments[node.end_lineno]
    return docs


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> its documentation, for a dataclass and the dataclasses it inherits from (a field's own class
    wins). A field's doc is the string right after it (attribute docstring) or else the comment ending its line."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(_own_field_docs(klass))
    return docs


def type_text(kind: Any) -> str:
    """A field's type as the command line sees it: `int`, `float | none`, `{adam,adamw,sgd}`, `int,int,...`."""
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):
        return " | ".join("none" if a is type(None) else type_text(a) for a in get_args(kind))
    if origin is Literal:
        return "{" + ",".join(map(str, get_args(kind))) + "}"
    if origin in (tuple, list):
        args = get_args(kind)
        if origin is tuple and args and args[-1] is not Ellipsis:
            return ",".join(type_text(a) for a in args)
        return f"{type_text(args[0]) if args else 'str'},..."
    return getattr(kind, "__name__", str(kind))


def value_text(value: Any) -> str:
    """A value written as an override takes it: `true`, `none`, `512,1024`, `""` for the empty string."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return ",".join(value_text(v) for v in value)
    if value == "":
        return '""'
    return str(value)


def describe(cfg: Any, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(dotted key, type, default, meaning) of every settable key of a (nested) dataclass config, in field order;
    the meaning is "" where the field has no doc."""
    hints, docs, rows = get_type_hints(type(cfg)), field_docs(type(cfg)), []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            rows += describe(value, prefix + f.name + ".")
        else:
            rows.append((prefix + f.name, type_text(hints[f.name]), value_text(value), docs.get(f.name, "")))
    return rows


def help_text(cfg: Any, width: int = 100) -> str:
    """Every key of `cfg` on its own line: `key  type = default`, the meaning below it, indented and wrapped."""
    lines = []
    for key, kind, default, doc in describe(cfg):
        lines.append(f"  {key} ({kind}) = {default}")
        if doc:
            lines += textwrap.wrap(doc, width, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines)


def _flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + str(key)] = value
    return flat


def overrides_from_file(path: Path, method: str | None = None) -> list[str]:
    """The settings of a JSON file as `key=value` overrides: nested objects (a run's `config.json`) or dotted keys
    (`{"train.lr": 0.01}`). A `"method"` entry, as a run's `config.json` has, must name `method`. Keys and values
    are checked by `apply_overrides` like those of the command line."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"--config {path} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path} must hold a JSON object of settings, not {type(data).__name__}")
    data = dict(data)
    named = data.pop("method", None)
    if method is not None and named is not None and named != method:
        raise ConfigError(f"--config {path} is a configuration of {named!r}, not {method!r}")
    return [f"{key}={value_text(value) if value != '' else ''}" for key, value in _flatten(data).items()]
