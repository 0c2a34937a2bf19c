"""A hash of the code a claim's protocol depends on (`paperzoo.claims.fingerprint`).

Starting from a claim's run, check and precondition callables, it follows every name they use to what that name is
in their module: a function or class of the claim's own paper package (or of `paperzoo.criteria`, whose rules decide
the verdict) is hashed with its source and followed in turn; a constant (a number, a string, an `Effect`, a tuple
or a dict of them, a preset table) is hashed by its repr. So a change of a preset's steps in a helper, of a smallest
effect in a module constant, or of a model the claim trains changes the fingerprint; a docstring, a comment or a
reformatting does not (sources are compared as their syntax trees without docstrings), nor does the dry run's cap
of a loop (`dry_run_steps(steps)` is read as `steps`: it changes nothing outside `reproduce --dry-run`). Code
outside the paper package and the criteria (the engine, data loaders, torch) is shared by every paper and is not
followed.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import sys
import textwrap
import types
from typing import Any, Callable, Iterable

_PLAIN = (int, float, complex, str, bytes, bool, type(None))
RULES = "paperzoo.criteria"


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


class _WithoutDryRunCap(ast.NodeTransformer):
    """`dry_run_steps(x)` -> `x` (paperzoo.engine.dry_run)."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id == "dry_run_steps" and len(node.args) == 1:
            return node.args[0]
        return node


def _source_key(obj: Any) -> tuple[str, set[str]]:
    """(the object's code as compared, the names it uses): an AST dump without docstrings where its source parses
    alone; a lambda's source lines (they hold the surrounding call) otherwise."""
    try:
        source = textwrap.dedent(inspect.getsource(obj))
    except (OSError, TypeError):
        return getattr(obj, "__qualname__", repr(obj)), set()
    try:
        tree = _WithoutDryRunCap().visit(_without_docstrings(ast.parse(source)))
    except SyntaxError:
        lines = "\n".join(line.rstrip() for line in source.splitlines() if not line.strip().startswith("#"))
        return lines, _code_names(getattr(obj, "__code__", None))
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    return ast.dump(tree), names


def _code_names(code: types.CodeType | None) -> set[str]:
    """The global and attribute names a code object and its nested functions and lambdas use."""
    if code is None:
        return set()
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _constant_repr(value: Any) -> str | None:
    """A deterministic repr of a constant-like value (numbers, strings, dataclass or named-tuple records of them,
    and containers of those); None for anything else (modules, functions, live objects)."""
    if isinstance(value, _PLAIN):
        return repr(value)
    if isinstance(value, (tuple, list, frozenset, set)):
        parts = [_constant_repr(v) for v in value]
        return None if None in parts else f"{type(value).__name__}({', '.join(sorted(parts) if isinstance(value, (set, frozenset)) else parts)})"
    if isinstance(value, dict):
        parts = [(_constant_repr(k), _constant_repr(v)) for k, v in value.items()]
        return None if any(None in p for p in parts) else "{" + ", ".join(f"{k}: {v}" for k, v in parts) + "}"
    fields = getattr(value, "__dataclass_fields__", None) or getattr(value, "_fields", None)
    if fields is not None and not isinstance(value, type):
        parts = [_constant_repr(getattr(value, name)) for name in fields]
        return None if None in parts else f"{type(value).__name__}({', '.join(parts)})"
    return None


def _in_scope(obj: Any, packages: tuple[str, ...]) -> bool:
    module = getattr(obj, "__module__", "") or ""
    return any(module == p or module.startswith(p + ".") for p in packages)


def digest(callables: Iterable[Callable], package: str) -> str:
    """The sha256 of the code reachable from `callables` within `package` (e.g. "paperzoo.capsnet") and the
    criteria, with the constants it reads."""
    packages = (package, RULES)
    seen: set[int] = set()
    parts: list[str] = []

    def visit(obj: Any) -> None:
        if isinstance(obj, functools.partial):
            parts.append(f"partial{_constant_repr(obj.args)}{_constant_repr(obj.keywords)}")
            visit(obj.func)
            return
        if id(obj) in seen:
            return
        seen.add(id(obj))
        key, names = _source_key(obj)
        parts.append(key)
        namespace = getattr(obj, "__globals__", None) or vars(sys.modules.get(obj.__module__, types))
        for name in sorted(names):
            if name not in namespace:
                continue
            value = namespace[name]
            if (inspect.isfunction(value) or inspect.isclass(value)) and _in_scope(value, packages):
                visit(value)
            elif (text := _constant_repr(value)) is not None:
                parts.append(f"{name}={text}")

    for fn in callables:
        visit(fn)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
