"""Predictor-guided search: screen thousands of candidates, fine-tune only the most promising.

An Optuna sampler (``--sampler predictor``, the default), so Optuna's storage stays the one
record of every really-evaluated trial and resume stays exact: each proposal is made from the
storage alone (its random draws seeded by the trial number) and is stored with its trial.
For each new search trial it

1. fits the accuracy predictor (``predictor.py``) on every trial fine-tuned so far
   (baselines included),
2. screens a pool of candidates (``pool.py``): mutants and crossovers of the current
   measured front, plus uniform random ones, never one already evaluated or in flight; each
   scored by predicted accuracy (mean and spread) and LUT latency, those over
   ``--max-latency-ms`` dropped,
3. proposes the one that adds the most hypervolume to the front at its optimistic point, or
   every third time the fastest that keeps the best accuracy (``acquisition.py``).
4. hands the driver a fine-tune gate for the proposal (``gate.py``): a second predictor, fitted
   on the trials' cheap-fidelity accuracy (measured before every fine-tune), lets the worker
   skip the fine-tune of a candidate whose cheap accuracy predicts no gain on the front, and
   a third, fitted on the accuracy after the first fine-tune epoch, lets it stop the
   fine-tune there for the same reason.

The driver takes what it wants kept (``bookkeeping.py``): the proposal's predictions, the
fitted predictors, their quality and, per proposal, the predicted front of the pool it screened.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from autocompress.hw.profile import HardwareProfile
from autocompress.run.front import pareto_mask
from autocompress.run.predictor import SamplerOutput
from autocompress.run.trial import Kind, State
from autocompress.search.acquisition import choose
from autocompress.search.bookkeeping import Bookkeeping
from autocompress.search.gate import FinetuneGate, GatePredictors, gate_suspended
from autocompress.search.pool import CandidatePool, Screened
from autocompress.search.predictor import AccuracyPredictor, FineTuned, ParamEncoding, screening_predictor
from autocompress.search.prior import PriorTrials
from autocompress.space import SearchSpace

log = logging.getLogger(__name__)

STARTUP_TRIALS = 2
"""Search trials proposed uniformly at random before the predictor is used (none when it
learns from earlier runs: it knows the space from the start)."""


class PredictorGuidedSampler(optuna.samplers.BaseSampler):
    """See the module docstring."""

    def __init__(self, space: SearchSpace, profile: HardwareProfile, seed: int,
                 max_latency_ms: float | None = None, prior: PriorTrials | None = None) -> None:
        self.seed = seed
        self.pool = CandidatePool(space, profile, max_latency_ms)
        self.encoding = ParamEncoding(self.pool.choices, prior)
        self.startup_trials = STARTUP_TRIALS if prior is None else 0
        self.distributions = {name: CategoricalDistribution(choices) for name, choices in self.pool.choices.items()}
        self._independent = optuna.samplers.RandomSampler(seed=seed)
        self.gates: dict[int, FinetuneGate] = {}
        self.bookkeeping = Bookkeeping()

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
            return self.pool.random_untaken(rng, taken)
        return self._screen_and_choose(trial, rng, trials, finished, taken)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        """Optuna calls this with the finished trial's attributes stored."""
        self.bookkeeping.finished(study.get_trials(deepcopy=False))

    # -- what the driver asks ---------------------------------------------------------------------
    def finetune_gate(self, number: int) -> FinetuneGate | None:
        """The gate made with trial ``number``'s proposal (once), None if it has none."""
        return self.gates.pop(number, None)

    def take_output(self) -> SamplerOutput | None:
        """What to keep of the proposals and finished trials since the last call."""
        return self.bookkeeping.take()

    # -- the screening round ------------------------------------------------------------------------
    def _screen_and_choose(self, trial: FrozenTrial, rng: random.Random, trials: list[FrozenTrial],
                           finished: list[FrozenTrial], taken: set) -> dict[str, Any]:
        clock = time.perf_counter()
        pruned = [t for t in trials if t.user_attrs.get("state") == State.PRUNED]
        fine_tuned = FineTuned.of(finished)
        predictor = screening_predictor(self.encoding, self.seed, fine_tuned, pruned)
        measured = np.column_stack([1.0 - np.asarray(fine_tuned.accuracy), fine_tuned.latency])
        parents = [finished[i].params for i in np.flatnonzero(pareto_mask(measured))]
        params, hashes, latency_ms = self.pool.draw(rng, parents, taken)
        if not params:
            return self.pool.random_untaken(rng, taken)
        pool = Screened(params, hashes, latency_ms, *predictor.predict(params, latency_ms))
        known = np.vstack([measured, self._in_flight(trial, trials, predictor)])
        scale_ms = max(*fine_tuned.latency, *(float(t.user_attrs["latency_ms"]) for t in pruned),
                       float(np.max(pool.latency_ms)))
        choice = choose(pool, measured, known, scale_ms, trial.number)
        gate = GatePredictors.fit(fine_tuned, self.seed)
        if not gate_suspended(trials):
            self.gates[trial.number] = FinetuneGate.against(known, gate, pool.params[choice.index],
                                                            float(pool.latency_ms[choice.index]))
        seconds = time.perf_counter() - clock
        chosen = choice.index
        log.info("trial %d: screened %d candidates in %.2f s (%.0f a second); proposed %s (%s), predicted "
                 "accuracy %.4f +- %.4f at %.4g ms", trial.number, len(pool.params), seconds,
                 len(pool.params) / seconds, pool.hashes[chosen], choice.rule.value, pool.mean[chosen],
                 pool.std[chosen], pool.latency_ms[chosen])
        self.bookkeeping.proposed(trial.number, pool, choice, predictor, gate, trials, seconds)
        return pool.params[chosen]

    def _in_flight(self, trial: FrozenTrial, trials: list[FrozenTrial],
                   predictor: AccuracyPredictor) -> np.ndarray:
        """The other trials in flight as rows of (1 - predicted accuracy, latency)."""
        in_flight = [t for t in trials if t.state == TrialState.RUNNING and t.params and t.number != trial.number]
        if not in_flight:
            return np.empty((0, 2))
        latency = [self.pool.latency_ms(t.params) for t in in_flight]
        mean, _ = predictor.predict([t.params for t in in_flight], latency)
        return np.column_stack([1.0 - mean, latency])
