"""Pareto fronts and hypervolume of a run's objectives.

Every objective is turned into one to minimise and scaled to [0, 1]: accuracy becomes
the error ``1 - accuracy``; latency and size are divided by a reference value (by
default 1.1 x the largest seen). The reference point is then (1, 1[, 1]), so a
hypervolume is the share of that box the front dominates, comparable across trials of
one run and, with a shared reference, across runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

MAXIMISED = {"accuracy"}
REFERENCE_MARGIN = 1.1


def minimisation_points(table: pd.DataFrame, objectives: Sequence[str],
                        scale: Mapping[str, float] | None = None) -> np.ndarray:
    """Rows of ``table`` as points to minimise, each column divided by ``scale`` (if given)."""
    columns = []
    for name in objectives:
        values = table[name].to_numpy(dtype=float)
        values = 1.0 - values if name in MAXIMISED else values
        columns.append(values / scale[name] if scale and name not in MAXIMISED else values)
    return np.column_stack(columns) if columns else np.empty((len(table), 0))


def reference_scale(tables: Sequence[pd.DataFrame], objectives: Sequence[str]) -> dict[str, float]:
    """Divisor of each minimised objective: 1.1 x its largest value over ``tables``."""
    scale = {}
    for name in objectives:
        if name in MAXIMISED:
            continue
        largest = max((float(t[name].max()) for t in tables if len(t)), default=1.0)
        scale[name] = REFERENCE_MARGIN * largest if largest > 0 else 1.0
    return scale


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """True for each point no other point dominates (all <=, one <); duplicates all stay."""
    mask = np.ones(len(points), dtype=bool)
    for i, point in enumerate(points):
        dominated = np.all(points <= point, axis=1) & np.any(points < point, axis=1)
        mask[i] = not dominated.any()
    return mask


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


def front(table: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    """The non-dominated rows of ``table``, sorted by their first minimised objective."""
    if table.empty:
        return table
    mask = pareto_mask(minimisation_points(table, objectives))
    members = table[mask]
    order = [name for name in objectives if name not in MAXIMISED] or list(objectives)
    return members.sort_values(order)
