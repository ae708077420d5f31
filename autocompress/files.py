"""Writing a file so that a reader (a browser refreshing the report, a second process, a
crash half-way) never sees half of it: the text goes to a temporary file beside it, named
for this process, which then replaces the file in one rename."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` (UTF-8) in one step."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
