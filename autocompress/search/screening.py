"""Predictor-guided search: screen thousands of candidates, fine-tune only the most promising.

An Optuna sampler (``--sampler predictor``, the default), so Optuna's storage stays the one
record of every really-evaluated trial and resume stays exact: each proposal is made from the
storage alone (its random draws seeded by the trial number) and is stored with its trial.
For each new search trial it

1. fits the accuracy predictor (``predictor.py``) on every trial fine-tuned so far
   (baselines included),
2. screens a pool of candidates: mutants and crossovers of the current measured front,
   plus uniform random ones, never one already evaluated or in flight; each scored by
   predicted accuracy (mean and spread) and LUT latency, those over ``--max-latency-ms``
   dropped,
3. proposes the one whose optimistic point (mean + ``EXPLORATION`` x spread, its latency)
   adds the most hypervolume to the measured front, with the trials still in flight counted
   at their predicted accuracy (so two workers are not sent the same region). Where no
   candidate adds any, the most uncertain one of the predicted front is proposed. Every
   ``KEEPING_EVERY``-th proposal instead asks the question a user ships by: the fastest
   candidate predicted within ``ACCURACY_KEPT`` of the best accuracy measured, if one is
   faster than every trial known to keep that accuracy (hypervolume alone spends its
   fine-tunes where accuracy differences are large, at the fast end, and rarely refines
   the top of the front, where a point of accuracy is what decides a deployment).
4. hands the driver a fine-tune gate for the proposal (``gate.py``): a second predictor, fitted
   on the trials' cheap-fidelity accuracy (measured before every fine-tune), lets the worker
   skip the fine-tune of a candidate whose cheap accuracy predicts no gain on the front, and
   a third, fitted on the accuracy after the first fine-tune epoch, lets it stop the
   fine-tune there for the same reason.

The run folder gets the fitted predictors, their quality (``run.predictor.PredictorSummary``)
and, per proposal, the predicted front of the pool it screened.
"""

from __future__ import annotations

import csv
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from autocompress.errors import MissingSignaturesError
from autocompress.hw.predict import predict
from autocompress.hw.profile import HardwareProfile
from autocompress.run.files import RunFiles
from autocompress.run.front import hypervolume, pareto_mask
from autocompress.run.predictor import CheapFidelityGate, FirstEpochGate, PredictorSummary, Quality, Screening
from autocompress.run.trial import Kind, State
from autocompress.search.gate import FinetuneGate, required_accuracy
from autocompress.search.params import search_params, suggest_candidate
from autocompress.search.predictor import (
    AccuracyPredictor,
    CheapFidelityEncoding,
    FirstEpochEncoding,
    ParamEncoding,
    quality,
)
from autocompress.search.prior import PriorTrials
from autocompress.space import SearchSpace

log = logging.getLogger(__name__)

POOL_SIZE = 1500
"""Candidates screened per proposal (MobileNet: 650-720 a second decoded + LUT + predictor, with
two workers training beside the driver)."""
SCREENING_SECONDS = 5.0
"""Time after which a pool stops growing: a family without a fast op path (a traced user
model, a ResNet architecture seen for the first time) costs milliseconds a candidate, and a
proposal must not keep a worker idle for minutes."""
MUTANT_SHARE = 0.6
"""Share of the pool bred from the measured front; the rest is uniform random."""
STARTUP_TRIALS = 2
"""Search trials proposed uniformly at random before the predictor is used (none when it
learns from earlier runs: it knows the space from the start)."""
UNGATED_AFTER_PRUNED = 3
"""After this many search trials in a row pruned by the fine-tune gate, the next proposal is
fine-tuned whatever its cheap accuracy: the front and the predictors then learn from a real
fine-tune, and the search cannot stall on cheap evaluations."""
MIN_FIRST_EPOCH_TRIALS = 3
"""Fine-tuned trials with an accuracy after their first epoch needed before the gate judges
by it (the five baselines and the startup trials give seven in a fresh run)."""
EXPLORATION = 1.0
"""Standard deviations added to the predicted accuracy in the acquisition (its optimistic point)."""
ACCURACY_KEPT = 0.01
"""Accuracy below the best measured that an accuracy-keeping proposal may give up (one point)."""
KEEPING_EVERY = 3
"""Every third proposal (by trial number) is accuracy-keeping; the others maximise hypervolume."""
CROSS_VALIDATE_EVERY = 10
"""Fitted trials between two cross-validations of the screening predictor (its summary):
learning from earlier runs, one costs five gradient-boosting fits on some thousand trials,
about 2 s of the driver's time, while a worker may wait for its next proposal."""
SCREENED_COLUMNS = ["trial", "candidate_hash", "predicted_accuracy", "predicted_std", "latency_ms", "chosen"]


@dataclass
class Screened:
    """A pool of candidates with their scores (one row each)."""

    params: list[dict[str, Any]]
    hashes: list[str]
    latency_ms: np.ndarray
    mean: np.ndarray
    std: np.ndarray


@dataclass(frozen=True)
class _Fitted:
    """What the fine-tuned trials give the predictors: parameters, LUT latency, fine-tuned and
    cheap-fidelity accuracy, one entry per trial."""

    params: list[dict[str, Any]]
    latency: list[float]
    accuracy: list[float]
    accuracy_before: list[float]
    accuracy_first_epoch: list[float | None]
    """None for a trial fine-tuned for one epoch, or recorded before this was measured."""

    @classmethod
    def of(cls, finished: list[FrozenTrial]) -> _Fitted:
        first_epoch = [t.user_attrs.get("accuracy_first_epoch") for t in finished]
        return cls([t.params for t in finished], [float(t.user_attrs["latency_ms"]) for t in finished],
                   [float(t.user_attrs["accuracy"]) for t in finished],
                   [float(t.user_attrs["accuracy_before"]) for t in finished],
                   [None if value is None else float(value) for value in first_epoch])

    def with_first_epoch(self) -> _Fitted:
        """The trials that have an accuracy after their first epoch."""
        keep = [i for i, value in enumerate(self.accuracy_first_epoch) if value is not None]
        return _Fitted(*([column[i] for i in keep] for column in (
            self.params, self.latency, self.accuracy, self.accuracy_before, self.accuracy_first_epoch)))


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


class PredictorGuidedSampler(optuna.samplers.BaseSampler):
    """See the module docstring."""

    def __init__(self, space: SearchSpace, profile: HardwareProfile, files: RunFiles | None, seed: int,
                 max_latency_ms: float | None = None, prior: PriorTrials | None = None) -> None:
        self.space, self.profile, self.files, self.seed = space, profile, files, seed
        self.max_latency_ms = max_latency_ms
        self.choices = search_params(space)
        self.encoding = ParamEncoding(self.choices, prior)
        self.startup_trials = STARTUP_TRIALS if prior is None else 0
        self.distributions = {name: CategoricalDistribution(choices) for name, choices in self.choices.items()}
        self._independent = optuna.samplers.RandomSampler(seed=seed)
        self.last_screening: dict[str, float] = {}
        self._cross_validation: tuple[int, Quality | None] | None = None
        """(fitted trials, their cross-validation) of the screening predictor, last computed."""
        self.gates: dict[int, FinetuneGate] = {}
        self.summary: PredictorSummary | None = None
        """The predictors' quality as last written to the run folder."""

    # -- Optuna's sampler interface ---------------------------------------------------------------
    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return dict(self.distributions)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._independent.sample_independent(study, trial, param_name, param_distribution)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if "fixed_params" in trial.system_attrs:
            return {}  # a queued baseline
        rng = random.Random(self.seed * 1_000_003 + trial.number)
        trials = study.get_trials(deepcopy=False)
        finished = [t for t in trials if t.state == TrialState.COMPLETE and t.user_attrs.get("state") == State.COMPLETE]
        taken = {t.user_attrs.get("candidate_hash") for t in trials}
        if sum(t.user_attrs.get("kind") == Kind.SEARCH for t in finished) < self.startup_trials:
            return self._random_untaken(rng, taken)
        return self._screen_and_choose(study, trial, rng, trials, finished, taken)

    def finetune_gate(self, number: int) -> FinetuneGate | None:
        """The gate made with trial ``number``'s proposal (once), None if it has none."""
        return self.gates.pop(number, None)

    # -- the screening round ------------------------------------------------------------------------
    def _decode(self, params: Mapping[str, Any]):
        return suggest_candidate(self.space, lambda name, _choices: params[name])

    def _random_params(self, rng: random.Random) -> dict[str, Any]:
        return {name: rng.choice(choices) for name, choices in self.choices.items()}

    def _random_untaken(self, rng: random.Random, taken: set) -> dict[str, Any]:
        for _ in range(1000):
            params = self._random_params(rng)
            if self._decode(params).hash not in taken:
                return params
        return params

    def _mutant(self, rng: random.Random, parents: list[dict[str, Any]]) -> dict[str, Any]:
        first = rng.choice(parents)
        if len(parents) > 1 and rng.random() < 0.5:
            second = rng.choice(parents)
            first = {name: rng.choice((first[name], second[name])) for name in self.choices}
        rate = 2.0 / len(self.choices)
        child = {name: (rng.choice(choices) if rng.random() < rate else first[name])
                 for name, choices in self.choices.items()}
        if child == first:
            name = rng.choice([n for n, c in self.choices.items() if len(c) > 1])
            child[name] = rng.choice([c for c in self.choices[name] if c != first[name]])
        return child

    def _pool(self, rng: random.Random, parents: list[dict[str, Any]],
              taken: set) -> tuple[list[dict[str, Any]], list[str], np.ndarray]:
        """Parameters, hashes and LUT latencies of new candidates, bred from ``parents`` or random."""
        params, hashes, latencies = [], [], []
        seen = set(taken)
        skipped = 0
        deadline = time.perf_counter() + SCREENING_SECONDS
        for index in range(POOL_SIZE):
            if time.perf_counter() > deadline:
                break
            candidate_params = (self._mutant(rng, parents) if parents and index < POOL_SIZE * MUTANT_SHARE
                                else self._random_params(rng))
            candidate = self._decode(candidate_params)
            if candidate.hash in seen:
                continue
            seen.add(candidate.hash)
            try:
                latency = predict(candidate, self.profile, self.space)
            except MissingSignaturesError:
                skipped += 1
                continue
            if self.max_latency_ms is not None and latency > self.max_latency_ms:
                continue
            params.append(candidate_params)
            hashes.append(candidate.hash)
            latencies.append(latency)
        if skipped:
            log.warning("screening skipped %d candidates with ops the profile has no entry for", skipped)
        return params, hashes, np.asarray(latencies, dtype=float)

    def _screen_and_choose(self, study: optuna.Study, trial: FrozenTrial, rng: random.Random,
                           trials: list[FrozenTrial], finished: list[FrozenTrial], taken: set) -> dict[str, Any]:
        clock = time.perf_counter()
        # pruned trials teach the screening predictor too, at the accuracy the gate predicted for
        # them last: without them it would keep proposing the region the gate just turned down
        pruned = [t for t in trials if t.user_attrs.get("state") == State.PRUNED]
        fitted = _Fitted.of(finished)
        pruned_latency = [float(t.user_attrs["latency_ms"]) for t in pruned]
        pruned_accuracy = [float(t.user_attrs["predicted_accuracy_cheap"]
                                 if t.user_attrs.get("predicted_accuracy_first_epoch") is None
                                 else t.user_attrs["predicted_accuracy_first_epoch"]) for t in pruned]
        predictor = AccuracyPredictor(self.encoding, self.seed).fit(
            fitted.params + [t.params for t in pruned], fitted.latency + pruned_latency,
            fitted.accuracy + pruned_accuracy)
        measured = np.column_stack([1.0 - np.asarray(fitted.accuracy), fitted.latency])
        parents = [finished[i].params for i in np.flatnonzero(pareto_mask(measured))]
        params, hashes, latency_ms = self._pool(rng, parents, taken)
        if not params:
            return self._random_untaken(rng, taken)
        pool = Screened(params, hashes, latency_ms, *predictor.predict(params, latency_ms))
        in_flight = [t for t in trials if t.state == TrialState.RUNNING and t.params and t.number != trial.number]
        lies = np.empty((0, 2))
        if in_flight:
            lie_latency = [predict(self._decode(t.params), self.profile, self.space) for t in in_flight]
            lie_mean, _ = predictor.predict([t.params for t in in_flight], lie_latency)
            lies = np.column_stack([1.0 - lie_mean, lie_latency])
        scale = max(*fitted.latency, *pruned_latency, float(np.max(pool.latency_ms)))
        reference = np.array([1.0, 1.1])
        known = np.vstack([measured, lies])  # (1 - accuracy, latency): measured and in flight
        front = known / np.array([1.0, scale])
        optimistic = np.column_stack([1.0 - (pool.mean + EXPLORATION * pool.std), pool.latency_ms / scale])
        gains = hypervolume_gain(optimistic, front, reference)
        predicted_front = pareto_mask(np.column_stack([1.0 - pool.mean, pool.latency_ms]))
        keeping = (_fastest_keeping(pool, 1.0 - measured[:, 0], known)
                   if trial.number % KEEPING_EVERY == 0 else None)
        if keeping is not None:
            chosen, rule = keeping, "accuracy-keeping"
        elif gains.max() > 0:
            chosen, rule = int(np.argmax(gains)), "hypervolume"
        else:
            chosen, rule = int(np.flatnonzero(predicted_front)[np.argmax(pool.std[predicted_front])]), "uncertainty"
        cheap_predictor = AccuracyPredictor(CheapFidelityEncoding(), self.seed).fit(
            fitted.params, fitted.latency, fitted.accuracy, fitted.accuracy_before)
        rung = fitted.with_first_epoch()
        first_epoch_predictor = (AccuracyPredictor(FirstEpochEncoding(), self.seed).fit(
            rung.params, rung.latency, rung.accuracy, rung.accuracy_first_epoch)
            if len(rung.accuracy) >= MIN_FIRST_EPOCH_TRIALS else None)
        if not self._gate_suspended(trials):
            latency = float(pool.latency_ms[chosen])
            self.gates[trial.number] = FinetuneGate(cheap_predictor, pool.params[chosen], latency,
                                                    required_accuracy(1.0 - known[:, 0], known[:, 1], latency),
                                                    first_epoch_predictor)
        seconds = time.perf_counter() - clock
        self.last_screening = {"candidates": len(pool.params), "seconds": seconds}
        log.info("trial %d: screened %d candidates in %.2f s (%.0f a second); proposed %s (%s), predicted "
                 "accuracy %.4f +- %.4f at %.4g ms", trial.number, len(pool.params), seconds,
                 len(pool.params) / seconds, pool.hashes[chosen], rule, pool.mean[chosen], pool.std[chosen],
                 pool.latency_ms[chosen])
        for key, value in (("predicted_accuracy", float(pool.mean[chosen])),
                           ("predicted_std", float(pool.std[chosen])), ("proposed_by", rule)):
            study._storage.set_trial_user_attr(trial._trial_id, key, value)
            trial.set_user_attr(key, value)  # the driver's Trial reads this (cached) copy
        if self.files is not None:
            self._write(trial.number, pool, predicted_front, chosen, (predictor, cheap_predictor),
                        first_epoch_predictor, fitted, rung, trials, seconds)
        return pool.params[chosen]

    @staticmethod
    def _gate_suspended(trials: list[FrozenTrial]) -> bool:
        """Whether the last ``UNGATED_AFTER_PRUNED`` finished search trials were all pruned."""
        searched = [t.user_attrs.get("state") for t in trials
                    if t.user_attrs.get("kind") == Kind.SEARCH and t.state != TrialState.RUNNING]
        recent = searched[-UNGATED_AFTER_PRUNED:]
        return len(recent) == UNGATED_AFTER_PRUNED and all(state == State.PRUNED for state in recent)

    # -- what the run folder gets ----------------------------------------------------------------------
    def _write(self, number: int, pool: Screened, predicted_front: np.ndarray, chosen: int,
               predictors: tuple[AccuracyPredictor, AccuracyPredictor], first_epoch_predictor: AccuracyPredictor | None,
               fitted: _Fitted, rung: _Fitted, trials: list[FrozenTrial], seconds: float) -> None:
        """The fitted predictors, the screened pool's predicted front and the predictors' quality
        (``rung``: the fitted trials that have an accuracy after their first epoch)."""
        predictor, cheap_predictor = predictors
        predictor.save(self.files.predictor_model("predictor"))
        cheap_predictor.save(self.files.predictor_model("cheap_predictor"))
        if first_epoch_predictor is not None:
            first_epoch_predictor.save(self.files.predictor_model("first_epoch_predictor"))
        rows = [i for i in np.flatnonzero(predicted_front)] + ([chosen] if not predicted_front[chosen] else [])
        table = self.files.screened
        new = not table.exists()
        with open(table, "a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(SCREENED_COLUMNS)
            for i in rows:
                writer.writerow([number, pool.hashes[i], round(float(pool.mean[i]), 5), round(float(pool.std[i]), 5),
                                 round(float(pool.latency_ms[i]), 5), int(i == chosen)])
        summary = PredictorSummary(  # the quality before evaluation, of all three: _with_proposal_quality
            model=predictor.description, fitted_on_trials=predictor.trained_on,
            cross_validated=self._screening_cross_validation(predictor, fitted),
            cheap_fidelity=_gate_summary(CheapFidelityGate, cheap_predictor, fitted, fitted.accuracy_before),
            first_epoch=None if first_epoch_predictor is None else _gate_summary(
                FirstEpochGate, first_epoch_predictor, rung, rung.accuracy_first_epoch),
            last_screening=Screening(trial=number, candidates=len(pool.params), seconds=round(seconds, 3),
                                     candidates_per_s=round(len(pool.params) / seconds, 1)))
        self._write_summary(_with_proposal_quality(summary, trials))

    def _write_summary(self, summary: PredictorSummary) -> None:
        summary.write(self.files.predictor_summary)
        self.summary = summary

    def _screening_cross_validation(self, predictor: AccuracyPredictor, fitted: _Fitted) -> Quality | None:
        """The screening predictor's cross-validation on the fine-tuned trials, computed again
        once ``CROSS_VALIDATE_EVERY`` more have been fitted (its ``trials`` says on how many)."""
        fitted_trials = len(fitted.accuracy)
        last = self._cross_validation
        if last is None or last[1] is None or fitted_trials >= last[0] + CROSS_VALIDATE_EVERY:
            self._cross_validation = (fitted_trials, _typed(predictor.cross_validated(
                fitted.params, fitted.latency, fitted.accuracy)))
        return self._cross_validation[1]

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        """Scores the predictions made at proposal in the predictors' summary again, with the trial
        just finished: written only at proposals, the summary would leave out every trial still in
        flight at the last one (Optuna calls this with the trial's attributes stored)."""
        if self.files is not None and self.summary is not None:
            self._write_summary(_with_proposal_quality(self.summary, study.get_trials(deepcopy=False)))


def _fastest_keeping(pool: Screened, measured_accuracy: np.ndarray, known: np.ndarray) -> int | None:
    """The pool's fastest candidate predicted within ``ACCURACY_KEPT`` of the best measured
    accuracy, if it is faster than every known point (measured, or in flight at its predicted
    accuracy; rows of 1 - accuracy, latency) that keeps that accuracy; else None."""
    target = float(measured_accuracy.max()) - ACCURACY_KEPT
    keeps = 1.0 - known[:, 0] >= target
    bar_ms = float(known[keeps, 1].min()) if keeps.any() else np.inf
    eligible = np.flatnonzero((pool.mean >= target) & (pool.latency_ms < bar_ms))
    return int(eligible[np.argmin(pool.latency_ms[eligible])]) if len(eligible) else None


def _typed(quality_figures: dict[str, float] | None) -> Quality | None:
    return None if quality_figures is None else Quality(**quality_figures)


def _gate_summary(record: type[CheapFidelityGate | FirstEpochGate], predictor: AccuracyPredictor, fitted: _Fitted,
                  measured_accuracy: Sequence[float]) -> CheapFidelityGate | FirstEpochGate:
    """A gate predictor's part of the summary; its quality at prediction and its pruned trials
    are filled in by ``_with_proposal_quality``."""
    return record(model=predictor.description, fitted_on_trials=predictor.trained_on,
                  cross_validated=_typed(predictor.cross_validated(fitted.params, fitted.latency, fitted.accuracy,
                                                                   measured_accuracy)))


def _with_proposal_quality(summary: PredictorSummary, trials: list[FrozenTrial]) -> PredictorSummary:
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
