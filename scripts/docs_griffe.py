"""Griffe extensions for the API reference (mkdocs.yml, mkdocstrings `extensions:`): they keep the layout of the
aligned listings in paperzoo's docstrings, and leave out the attributes of a class that have no docstring.

Module docstrings list their contents as an indented two-column block, e.g.

    squash          Eq. 1: v = |s|^2 / (1 + |s|^2) * s / |s|
    margin_loss     Eq. 4: ...

Markdown would run those lines together into one paragraph; this extension fences every such block as text, so
it renders as written. A listing line is indented by two or more spaces, or holds a run of two or more spaces
between words (the column gap; prose has none). A paragraph whose first line is a listing line, after a blank line
or a line ending with ':', is fenced up to its end (an indented listing up to its first unindented line). An
indented line under a list item is that item's continuation and stays as it is. A list that follows its
paragraph without a blank line gets one before it and after it, so that it renders as a list.
"""

from __future__ import annotations

import re

from griffe import Extension

LIST_ITEM = re.compile(r"^\s*([-*+]|\d+[.)])\s")
COLUMNS = re.compile(r"^\S.*?\S {2,}\S")


def listing_line(line: str) -> bool:
    return bool(line.strip()) and (line.startswith("  ") or bool(COLUMNS.match(line)))


def docstring_markdown(text: str) -> str:
    """`text` with each indented listing wrapped in a ```text fence and blank lines around each list; fenced code
    is left alone."""
    out: list[str] = []
    lines = text.split("\n")
    i, fenced, in_list = 0, False, False
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            fenced = not fenced
        previous = out[-1] if out else ""
        opens = (not previous.strip() or previous.rstrip().endswith(":")) and not LIST_ITEM.match(previous)
        if not fenced and listing_line(line) and opens:
            end = i
            indented = line.startswith("  ")  # an indented listing ends at its first unindented line
            while end < len(lines) and lines[end].strip() and (lines[end].startswith("  ") or not indented):
                end += 1
            out += ([""] if out and out[-1].strip() else []) + ["```text", *lines[i:end], "```"]
            out += [""] if end < len(lines) and lines[end].strip() else []
            i = end
            continue
        item = bool(LIST_ITEM.match(line))
        if not fenced and line.strip() and not line.startswith(" ") and item != in_list:
            if previous.strip():
                out.append("")  # a list starts and ends at a blank line, or Markdown runs it into the paragraph
            in_list = item
        elif not line.strip():
            in_list = False
        out.append(line)
        i += 1
    return "\n".join(out)


def drop_undocumented_attributes(obj) -> None:
    """Remove from every class under `obj` the attributes without a docstring: a dataclass's fields are in its
    signature already, and `self.head = nn.Sequential(...)` is an implementation detail. Module attributes stay."""
    for name, member in list(obj.members.items()):
        if member.is_alias:
            continue
        if obj.is_class and member.is_attribute and member.docstring is None:
            del obj.members[name]
        elif member.is_module or member.is_class:
            drop_undocumented_attributes(member)


class DocstringLayout(Extension):
    def on_instance(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = docstring_markdown(obj.docstring.value)


class QuietClasses(Extension):
    def on_package(self, *, pkg, **kwargs) -> None:  # after griffe's own dataclass extension built the signatures
        drop_undocumented_attributes(pkg)
