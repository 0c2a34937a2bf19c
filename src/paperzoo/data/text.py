"""Real English text that ships offline (see the project's DATA.md).

  english_text()   (text, source): the Lee news corpus from the gensim wheel (`gensim/test/test_data/
                   lee_background.cor`, 300 Australian news documents) when gensim is installed; otherwise the
                   English prose of Python's own reference manual (`pydoc_data.topics`, part of CPython's
                   standard library), which every Python has.
The gensim package is located without importing it (its import is slow and needs scipy).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from paperzoo.errors import DataError


def gensim_lee_path() -> Path | None:
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "test" / "test_data" / "lee_background.cor"
    return path if path.is_file() else None


def english_text() -> tuple[str, str]:
    path = gensim_lee_path()
    if path is not None:
        return path.read_text(encoding="utf-8", errors="replace"), "gensim lee_background.cor (news)"
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise DataError("no offline English text: install gensim (pip install gensim) for the Lee news corpus") \
            from None
    return "\n\n".join(topics[k] for k in sorted(topics)), "Python reference manual (pydoc_data)"
