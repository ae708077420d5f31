"""The fine-tune gate: a proposed candidate is fine-tuned only while what is measured of it says it can pay.

A worker measures every candidate's accuracy before fine-tuning (inherited weights,
recalibrated batch norm: about a second) anyway. The predictor-guided sampler ships with
each proposal a gate holding the cheap-fidelity predictor and the accuracy the candidate
must beat to add anything to the front at its latency; once the worker has the cheap
accuracy, the gate predicts the fine-tuned accuracy from it and the worker skips the
fine-tune (seconds) when that prediction does not beat that accuracy. Such a trial is
recorded as PRUNED with its cheap accuracy and the prediction, and does not use up
``--trials``.

A second judgement, a rung as in successive halving, comes after the first epoch of a
fine-tune of two or more: the worker measures the accuracy then (on a copy with
recalibrated batch norm, about as long as the cheap fidelity), and the gate's first-epoch
predictor, a line fitted on the finished trials' accuracies after their first epoch, says
whether the remaining epochs can beat the same accuracy. That accuracy ranks the fine-tuned
one better than the cheap one does where the cheap one is weak (``predictor.FirstEpochEncoding``).
A trial stopped there is PRUNED too, with both measurements and both predictions.

The gate asks the *expected* fine-tuned accuracy to beat the front, not an optimistic one:
the proposal was already chosen optimistically (the screening predictor's mean +
``screening.EXPLORATION`` x spread), and the gate judges a measurement: judging the mean
skips about 30% of the fine-tune seconds for 2-4% of the hypervolume those trials add
(``docs/decisions.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from autocompress.run.trial import Kind, State
from autocompress.search.predictor import AccuracyPredictor, CheapFidelityEncoding, FineTuned, FirstEpochEncoding

UNGATED_AFTER_PRUNED = 3
"""After this many search trials in a row pruned by the fine-tune gate, the next proposal is
fine-tuned whatever its cheap accuracy: the front and the predictors then learn from a real
fine-tune, and the search cannot stall on cheap evaluations."""
MIN_FIRST_EPOCH_TRIALS = 3
"""Fine-tuned trials with an accuracy after their first epoch needed before the gate judges
by it (the five baselines and the startup trials give seven in a fresh run)."""


@dataclass(frozen=True)
class Verdict:
    predicted_accuracy: float
    predicted_std: float
    finetune: bool
    reason: str


@dataclass(frozen=True)
class FinetuneGate:
    predictor: AccuracyPredictor
    """Fitted on ``CheapFidelityEncoding`` features."""
    params: Mapping[str, Any]
    latency_ms: float
    required_accuracy: float
    """The best accuracy on the front (measured, and in-flight trials at their predictions)
    at this latency or lower: a point adds hypervolume only above it."""
    first_epoch_predictor: AccuracyPredictor | None = None
    """Fitted on ``FirstEpochEncoding`` features; None until enough trials measured them."""

    @classmethod
    def against(cls, known: np.ndarray, predictors: GatePredictors, params: Mapping[str, Any],
                latency_ms: float) -> FinetuneGate:
        """The gate of a candidate at ``latency_ms`` against the ``known`` front (rows of
        1 - accuracy, latency: measured, and in flight at their predictions)."""
        return cls(predictors.cheap, params, latency_ms, required_accuracy(1.0 - known[:, 0], known[:, 1], latency_ms),
                   predictors.first_epoch)

    def judge(self, accuracy_before: float) -> Verdict:
        """Whether to fine-tune at all, from the cheap accuracy."""
        return self._judge(self.predictor, accuracy_before, "cheap accuracy")

    def judge_first_epoch(self, accuracy_first_epoch: float) -> Verdict | None:
        """Whether to run the fine-tune's remaining epochs, from the accuracy after its first
        (None without a first-epoch predictor: the fine-tune goes on)."""
        if self.first_epoch_predictor is None:
            return None
        return self._judge(self.first_epoch_predictor, accuracy_first_epoch, "accuracy after epoch 1")

    def _judge(self, predictor: AccuracyPredictor, measured: float, what: str) -> Verdict:
        mean, std = predictor.predict([self.params], [self.latency_ms], [measured])
        mean_value, std_value = float(mean[0]), float(std[0])
        finetune = mean_value > self.required_accuracy
        relation = ">" if finetune else "<="
        return Verdict(mean_value, std_value, finetune,
                       f"{what} {measured:.4f} predicts {mean_value:.4f} +- {std_value:.4f} after "
                       f"fine-tuning; {mean_value:.4f} {relation} {self.required_accuracy:.4f}, the front's best at "
                       f"{self.latency_ms:.4g} ms or less")


def required_accuracy(front_accuracy: np.ndarray, front_latency: np.ndarray, latency_ms: float) -> float:
    """Best accuracy among front points no slower than ``latency_ms`` (0 if there is none)."""
    faster = front_latency <= latency_ms
    return float(front_accuracy[faster].max()) if faster.any() else 0.0


@dataclass(frozen=True)
class GatePredictors:
    """The gate's predictors, fitted on the fine-tuned trials: from the cheap accuracy, and from
    the accuracy after the first epoch (None until ``MIN_FIRST_EPOCH_TRIALS`` measured it)."""

    cheap: AccuracyPredictor
    first_epoch: AccuracyPredictor | None
    fine_tuned: FineTuned
    first_epoch_trials: FineTuned
    """The fine-tuned trials with an accuracy after their first epoch."""

    @classmethod
    def fit(cls, fine_tuned: FineTuned, seed: int) -> GatePredictors:
        cheap = AccuracyPredictor(CheapFidelityEncoding(), seed).fit(
            fine_tuned.params, fine_tuned.latency, fine_tuned.accuracy, fine_tuned.accuracy_before)
        rung = fine_tuned.with_first_epoch()
        first_epoch = (AccuracyPredictor(FirstEpochEncoding(), seed).fit(
            rung.params, rung.latency, rung.accuracy, rung.accuracy_first_epoch)
            if len(rung.accuracy) >= MIN_FIRST_EPOCH_TRIALS else None)
        return cls(cheap, first_epoch, fine_tuned, rung)


def gate_suspended(trials: list[FrozenTrial]) -> bool:
    """Whether the last ``UNGATED_AFTER_PRUNED`` finished search trials were all pruned."""
    searched = [t.user_attrs.get("state") for t in trials
                if t.user_attrs.get("kind") == Kind.SEARCH and t.state != TrialState.RUNNING]
    recent = searched[-UNGATED_AFTER_PRUNED:]
    return len(recent) == UNGATED_AFTER_PRUNED and all(state == State.PRUNED for state in recent)
