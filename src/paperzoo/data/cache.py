"""The user cache folder for data built once (rendered glyphs, decoded clips): `$PAPERZOO_CACHE`, else
`~/.cache/paperzoo`."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """The folder `parts` under `$PAPERZOO_CACHE` (else `~/.cache/paperzoo`), created if needed."""
    root = Path(os.environ.get("PAPERZOO_CACHE") or Path.home() / ".cache" / "paperzoo")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
