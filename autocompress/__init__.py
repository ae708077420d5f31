"""autocompress: hardware-aware AutoML search for compressed neural networks.

``import autocompress as ac`` gives the Python API (``autocompress/api.py``): ``ac.search``,
``ac.open_run``, ``ac.load_space``, ``ac.load_profile``, ``ac.profile``; it is imported on
first use, so that ``import autocompress`` (and every command's start) stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
API = ("search", "open_run", "load_space", "load_profile", "profile", "Run", "SearchFailed", "custom_task")


def __getattr__(name: str) -> Any:
    if name == "search":  # the search package, callable as the API's search (see its docstring)
        return importlib.import_module("autocompress.search")
    if name in API:
        from autocompress import api

        return getattr(api, name)
    raise AttributeError(f"module 'autocompress' has no attribute {name!r}")
