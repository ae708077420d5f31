"""The Pareto front of a run, and the hypervolume it dominates.

Every objective is turned into one to minimise and scaled to [0, 1]: accuracy becomes
the error ``1 - accuracy``; latency and size are divided by a reference value (by
default 1.1 x the largest seen). The reference point is then (1, 1[, 1]), so a
hypervolume is the share of that box the front dominates, comparable across trials of
one run and, with a shared reference, across runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from autocompress.run.config import Constraints
from autocompress.run.trial import Trial

MAXIMISED = {"accuracy"}
REFERENCE_MARGIN = 1.1


def minimisation_points(columns: Any, objectives: Sequence[str],
                        scale: Mapping[str, float] | None = None) -> np.ndarray:
    """The rows of ``columns`` (anything indexed by objective name: a table, a mapping of value
    lists) as points to minimise, each objective divided by ``scale`` (if given)."""
    points = []
    for name in objectives:
        values = np.asarray(columns[name], dtype=float)
        values = 1.0 - values if name in MAXIMISED else values
        points.append(values / scale[name] if scale and name not in MAXIMISED else values)
    return np.column_stack(points) if points else np.empty((0, 0))


def trial_points(trials: Sequence[Trial], objectives: Sequence[str]) -> np.ndarray:
    """``trials`` (every objective measured) as points to minimise."""
    return minimisation_points({name: [getattr(t, name) for t in trials] for name in objectives}, objectives)


def reference_scale(tables: Sequence[Any], objectives: Sequence[str]) -> dict[str, float]:
    """Divisor of each minimised objective: 1.1 x its largest value over ``tables``."""
    scale = {}
    for name in objectives:
        if name in MAXIMISED:
            continue
        largest = max((float(np.max(np.asarray(t[name], dtype=float))) for t in tables if len(t)), default=1.0)
        scale[name] = REFERENCE_MARGIN * largest if largest > 0 else 1.0
    return scale


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """True for each point no other point dominates (all <=, one <); duplicates all stay."""
    mask = np.ones(len(points), dtype=bool)
    for i, point in enumerate(points):
        dominated = np.all(points <= point, axis=1) & np.any(points < point, axis=1)
        mask[i] = not dominated.any()
    return mask


def front(trials: Sequence[Trial], objectives: Sequence[str], constraints: Constraints) -> list[Trial]:
    """The run's front: its COMPLETE, feasible trials that no other dominates, one per candidate
    (the first tried; a later trial of the same candidate was answered from the cache), by number."""
    first_of: dict[str, Trial] = {}
    for trial in sorted(trials, key=lambda t: t.number):
        if trial.measured(list(objectives)) and trial.feasible(constraints):
            first_of.setdefault(trial.candidate_hash or f"#{trial.number}", trial)
    unique = list(first_of.values())
    if not unique:
        return []
    mask = pareto_mask(trial_points(unique, objectives))
    return [trial for trial, keep in zip(unique, mask, strict=True) if keep]


def hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """Volume dominated by ``points`` (minimised) and bounded by ``reference``.

    Exact, by slicing along the last axis (the HSO scheme): between two consecutive
    values of it, the dominated region is the (d-1)-dimensional one of the points
    already passed. Cost grows as n^(d-1): fine for the 2-3 objectives of a run.
    """
    points = np.asarray(points, dtype=float)
    reference = np.asarray(reference, dtype=float)
    if len(points):
        points = points[np.all(points < reference, axis=1)]
    if len(points) == 0:
        return 0.0
    if points.shape[1] == 1:
        return float(reference[0] - points[:, 0].min())
    points = points[np.argsort(points[:, -1])]
    bounds = np.append(points[1:, -1], reference[-1])
    volume = 0.0
    for i, upper in enumerate(bounds):
        depth = upper - points[i, -1]
        if depth > 0:
            volume += depth * hypervolume(points[: i + 1, :-1], reference[:-1])
    return volume


def hypervolume_history(points: np.ndarray) -> np.ndarray:
    """Hypervolume of the first k points, for each k, against the unit reference point."""
    reference = np.ones(points.shape[1])
    history = np.zeros(len(points))
    current = points[:0]
    for k, point in enumerate(points):
        current = np.vstack([current, point])
        current = current[pareto_mask(current)]
        history[k] = hypervolume(current, reference)
    return history
