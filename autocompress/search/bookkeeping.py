"""What the predictor-guided sampler hands the driver to keep: the proposal's predictions, its
fitted predictors, the predicted front of the pool it screened and the predictors' quality
(``run.predictor``). The driver is the run folder's only writer; the sampler writes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial

from autocompress.run.predictor import (
    CheapFidelityGate,
    FirstEpochGate,
    PredictorSummary,
    Quality,
    SamplerOutput,
    ScreenedRow,
    Screening,
)
from autocompress.run.trial import State
from autocompress.search.acquisition import Choice
from autocompress.search.gate import GatePredictors
from autocompress.search.pool import Screened
from autocompress.search.predictor import AccuracyPredictor, FineTuned, quality

CROSS_VALIDATE_EVERY = 10
"""Fitted trials between two cross-validations of the screening predictor (its summary):
learning from earlier runs, one costs five gradient-boosting fits on some thousand trials,
about 2 s of the driver's time, while a worker may wait for its next proposal."""


class Bookkeeping:
    """Collects the sampler's output until the driver takes it (after each ask and each tell)."""

    def __init__(self) -> None:
        self.summary: PredictorSummary | None = None
        """The predictors' quality as last handed out."""
        self._pending: SamplerOutput | None = None
        self._cross_validation: tuple[int, Quality | None] | None = None
        """(fitted trials, their cross-validation) of the screening predictor, last computed."""

    def take(self) -> SamplerOutput | None:
        """What is to be kept since the last call (None if nothing)."""
        pending, self._pending = self._pending, None
        return pending

    def proposed(self, number: int, pool: Screened, choice: Choice, predictor: AccuracyPredictor,
                 gate: GatePredictors, trials: list[FrozenTrial], seconds: float) -> None:
        """Trial ``number``'s proposal: ``choice`` out of ``pool``, screened with ``predictor``
        in ``seconds``, and the gate's predictors fitted with it."""
        chosen = choice.index
        rows = list(np.flatnonzero(choice.predicted_front)) + ([] if choice.predicted_front[chosen] else [chosen])
        screened = [ScreenedRow(number, pool.hashes[i], round(float(pool.mean[i]), 5), round(float(pool.std[i]), 5),
                                round(float(pool.latency_ms[i]), 5), int(i == chosen)) for i in rows]
        rung = gate.first_epoch_trials
        predictors: dict[str, Any] = {"predictor": predictor, "cheap_predictor": gate.cheap}
        if gate.first_epoch is not None:
            predictors["first_epoch_predictor"] = gate.first_epoch
        summary = PredictorSummary(  # the quality before evaluation, of all three: with_proposal_quality
            model=predictor.description, fitted_on_trials=predictor.trained_on,
            cross_validated=self._screening_cross_validation(predictor, gate.fine_tuned),
            cheap_fidelity=_gate_summary(CheapFidelityGate, gate.cheap, gate.fine_tuned,
                                         gate.fine_tuned.accuracy_before),
            first_epoch=None if gate.first_epoch is None else _gate_summary(
                FirstEpochGate, gate.first_epoch, rung, rung.accuracy_first_epoch),
            last_screening=Screening(trial=number, candidates=len(pool.params), seconds=round(seconds, 3),
                                     candidates_per_s=round(len(pool.params) / seconds, 1)))
        self.summary = with_proposal_quality(summary, trials)
        attrs = {"predicted_accuracy": float(pool.mean[chosen]), "predicted_std": float(pool.std[chosen]),
                 "proposed_by": choice.rule.value}
        self._pending = SamplerOutput(attrs, predictors, screened, self.summary)

    def finished(self, trials: list[FrozenTrial]) -> None:
        """Scores the predictions made at proposal again, with the trial just finished: kept only at
        proposals, the summary would leave out every trial still in flight at the last one."""
        if self.summary is None:
            return
        self.summary = with_proposal_quality(self.summary, trials)
        self._pending = replace(self._pending or SamplerOutput(), summary=self.summary)

    def _screening_cross_validation(self, predictor: AccuracyPredictor, fine_tuned: FineTuned) -> Quality | None:
        """The screening predictor's cross-validation on the fine-tuned trials, computed again
        once ``CROSS_VALIDATE_EVERY`` more have been fitted (its ``trials`` says on how many)."""
        fitted_trials = len(fine_tuned.accuracy)
        last = self._cross_validation
        if last is None or last[1] is None or fitted_trials >= last[0] + CROSS_VALIDATE_EVERY:
            self._cross_validation = (fitted_trials, _typed(predictor.cross_validated(
                fine_tuned.params, fine_tuned.latency, fine_tuned.accuracy)))
        return self._cross_validation[1]


def _typed(quality_figures: dict[str, float] | None) -> Quality | None:
    return None if quality_figures is None else Quality(**quality_figures)


def _gate_summary(record: type[CheapFidelityGate | FirstEpochGate], predictor: AccuracyPredictor,
                  fine_tuned: FineTuned, measured_accuracy: Sequence[float]) -> CheapFidelityGate | FirstEpochGate:
    """A gate predictor's part of the summary; its quality at prediction and its pruned trials
    are filled in by ``with_proposal_quality``."""
    return record(model=predictor.description, fitted_on_trials=predictor.trained_on,
                  cross_validated=_typed(predictor.cross_validated(fine_tuned.params, fine_tuned.latency,
                                                                   fine_tuned.accuracy, measured_accuracy)))


def with_proposal_quality(summary: PredictorSummary, trials: list[FrozenTrial]) -> PredictorSummary:
    """``summary`` with each predictor's predictions made at proposal scored against every trial
    finished so far, and the gate's pruned trials counted (before the fine-tune, and after its
    first epoch)."""
    pruned = [t for t in trials if t.user_attrs.get("state") == State.PRUNED]
    stopped = sum(t.user_attrs.get("predicted_accuracy_first_epoch") is not None for t in pruned)
    cheap = summary.cheap_fidelity.model_copy(update={
        "before_finetune": _quality_of(trials, "predicted_accuracy_cheap"), "pruned_trials": len(pruned) - stopped})
    first_epoch = None if summary.first_epoch is None else summary.first_epoch.model_copy(update={
        "before_last_epochs": _quality_of(trials, "predicted_accuracy_first_epoch"), "pruned_trials": stopped})
    return summary.model_copy(update={"before_evaluation": _quality_of(trials, "predicted_accuracy"),
                                      "cheap_fidelity": cheap, "first_epoch": first_epoch})


def _quality_of(trials: list[FrozenTrial], key: str) -> Quality | None:
    """Quality of the predictions stored under ``key`` against the fine-tuned accuracy they were
    made before (None with fewer than two such trials)."""
    judged = [t for t in trials if t.user_attrs.get("state") == State.COMPLETE and t.user_attrs.get(key) is not None]
    if len(judged) < 2:
        return None
    return Quality(**quality([t.user_attrs[key] for t in judged], [t.user_attrs["accuracy"] for t in judged]))
