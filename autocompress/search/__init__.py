"""Hardware-aware multi-objective search: Optuna samples and records, Ray evaluates.

The driver (``driver.SearchDriver``) is the only writer of the run folder and of the Optuna
storage; Ray actors (``worker.TrialEvaluator``) only evaluate candidates and return results.

The package is also the Python API's ``search`` function: ``autocompress.search(...)`` (as
``import autocompress as ac; ac.search(...)``) calls ``autocompress.api.search``, so that the
name means the function whether or not this package was imported first.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableSearch(types.ModuleType):
    """This package, callable as ``autocompress.api.search``."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from autocompress.api import search

        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableSearch
