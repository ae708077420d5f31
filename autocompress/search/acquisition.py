"""Which screened candidate a predictor-guided proposal picks.

The one whose optimistic point (mean + ``EXPLORATION`` x spread, its latency) adds the most
hypervolume to the known front: the measured trials, and those in flight at their predicted
accuracy (so two workers are not sent the same region). Where no candidate adds any, the most
uncertain one of the predicted front. Every ``KEEPING_EVERY``-th proposal instead asks the
question a user ships by: the fastest candidate predicted within ``ACCURACY_KEPT`` of the best
accuracy measured, if one is faster than every trial known to keep that accuracy (hypervolume
alone spends its fine-tunes where accuracy differences are large, at the fast end, and rarely
refines the top of the front, where a point of accuracy is what decides a deployment).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from autocompress.run.front import hypervolume, pareto_mask
from autocompress.search.pool import Screened

EXPLORATION = 1.0
"""Standard deviations added to the predicted accuracy in the acquisition (its optimistic point)."""
ACCURACY_KEPT = 0.01
"""Accuracy below the best measured that an accuracy-keeping proposal may give up (one point)."""
KEEPING_EVERY = 3
"""Every third proposal (by trial number) is accuracy-keeping; the others maximise hypervolume."""
REFERENCE = np.array([1.0, 1.1])
"""The hypervolume's reference point in (1 - accuracy, latency / the largest latency known)."""


class Rule(StrEnum):
    """Why a candidate was proposed (the trial's ``proposed_by``)."""

    ACCURACY_KEEPING = "accuracy-keeping"
    HYPERVOLUME = "hypervolume"
    UNCERTAINTY = "uncertainty"


@dataclass(frozen=True)
class Choice:
    index: int
    """The proposed candidate's row in the pool."""
    rule: Rule
    predicted_front: np.ndarray
    """Mask of the pool's candidates on its predicted front (mean accuracy, latency)."""


def choose(pool: Screened, measured: np.ndarray, known: np.ndarray, scale_ms: float, number: int) -> Choice:
    """The candidate trial ``number`` proposes; ``measured`` and ``known`` (measured and in flight)
    are rows of (1 - accuracy, latency), ``scale_ms`` the largest latency known."""
    optimistic = np.column_stack([1.0 - (pool.mean + EXPLORATION * pool.std), pool.latency_ms / scale_ms])
    gains = hypervolume_gain(optimistic, known / np.array([1.0, scale_ms]), REFERENCE)
    predicted_front = pareto_mask(np.column_stack([1.0 - pool.mean, pool.latency_ms]))
    keeping = fastest_keeping(pool, 1.0 - measured[:, 0], known) if number % KEEPING_EVERY == 0 else None
    if keeping is not None:
        return Choice(keeping, Rule.ACCURACY_KEEPING, predicted_front)
    if gains.max() > 0:
        return Choice(int(np.argmax(gains)), Rule.HYPERVOLUME, predicted_front)
    uncertain = int(np.flatnonzero(predicted_front)[np.argmax(pool.std[predicted_front])])
    return Choice(uncertain, Rule.UNCERTAINTY, predicted_front)


def hypervolume_gain(points: np.ndarray, front: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Hypervolume each 2-D minimisation point adds to ``front`` (both below ``reference``)."""
    front = front[np.all(front < reference, axis=1)]
    front = front[pareto_mask(front)]
    base = hypervolume(front, reference)
    gains = np.zeros(len(points))
    for i, point in enumerate(points):
        if np.any(point >= reference) or np.any(np.all(front <= point, axis=1)):
            continue
        gains[i] = hypervolume(np.vstack([front, point[None]]), reference) - base
    return gains


def fastest_keeping(pool: Screened, measured_accuracy: np.ndarray, known: np.ndarray) -> int | None:
    """The pool's fastest candidate predicted within ``ACCURACY_KEPT`` of the best measured
    accuracy, if it is faster than every known point (measured, or in flight at its predicted
    accuracy; rows of 1 - accuracy, latency) that keeps that accuracy; else None."""
    target = float(measured_accuracy.max()) - ACCURACY_KEPT
    keeps = 1.0 - known[:, 0] >= target
    bar_ms = float(known[keeps, 1].min()) if keeps.any() else np.inf
    eligible = np.flatnonzero((pool.mean >= target) & (pool.latency_ms < bar_ms))
    return int(eligible[np.argmin(pool.latency_ms[eligible])]) if len(eligible) else None
