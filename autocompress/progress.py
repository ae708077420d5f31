"""Progress bars of long steps, on stderr, shown only where someone watches.

A bar is drawn when stderr is a terminal (tqdm's ``disable=None``), so logs, pipes and
tests stay free of bar noise; ``AUTOCOMPRESS_PROGRESS=1`` draws it anyway, ``0`` never.
"""

from __future__ import annotations

import os

from tqdm import tqdm


def progress_bar(enabled: bool = True, **options) -> tqdm:
    """A ``tqdm`` bar (``total``, ``desc``, ``unit``, ...) following the project's convention."""
    forced = os.environ.get("AUTOCOMPRESS_PROGRESS")
    disable = not enabled or (None if forced is None else forced == "0")
    return tqdm(disable=disable, dynamic_ncols=True, **options)
