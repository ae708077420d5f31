"""Fault injection for the search tests, installed in Ray workers at start-up.

``install`` wraps ``pipeline.calibrated`` (the first step of every evaluation and probe) so
that candidates whose second stage is one block of expand ratio 3 raise, as a diverging fine-tune would. The reference
baselines (the base architecture: two blocks, expand ratio 4) never match.
"""

from __future__ import annotations

from autocompress import pipeline

_real_compress = pipeline.calibrated


def fails(candidate) -> bool:
    stage = candidate.stages[1]
    return stage.depth == 1 and stage.expand_ratio == 3


def _compress(space, candidate, *args, **kwargs):
    if fails(candidate):
        raise FloatingPointError("training loss is nan (injected by the test)")
    return _real_compress(space, candidate, *args, **kwargs)


def install() -> None:
    pipeline.calibrated = _compress


def _always_raise(space, candidate, *args, **kwargs):
    raise RuntimeError("this model cannot be compressed (injected by the test)")


def install_everywhere() -> None:
    """Every trial raises, as a model the pipeline cannot handle makes them."""
    pipeline.calibrated = _always_raise
