"""Pareto fronts and hypervolume of objective vectors (accuracy up, the others down)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def to_minimisation(points: Sequence[Sequence[float]], objectives: Sequence[str]) -> np.ndarray:
    """Objective vectors with accuracy negated, so that lower is better everywhere."""
    array = np.asarray(points, dtype=float).reshape(len(points), len(objectives))
    signs = np.array([-1.0 if name == "accuracy" else 1.0 for name in objectives])
    return array * signs


def pareto_mask(points: Sequence[Sequence[float]], objectives: Sequence[str]) -> np.ndarray:
    """True for each point no other point dominates (ties: both stay on the front)."""
    costs = to_minimisation(points, objectives)
    mask = np.ones(len(costs), dtype=bool)
    for i, cost in enumerate(costs):
        dominated_by = np.all(costs <= cost, axis=1) & np.any(costs < cost, axis=1)
        mask[i] = not dominated_by.any()
    return mask


def dominates(a: Sequence[float], b: Sequence[float], objectives: Sequence[str]) -> bool:
    """Whether objective vector ``a`` Pareto-dominates ``b``."""
    ca, cb = to_minimisation([a, b], objectives)
    return bool(np.all(ca <= cb) and np.any(ca < cb))
