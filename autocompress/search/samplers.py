"""Optuna samplers by name, set up for a parallel, possibly resumed, search."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from autocompress.errors import UserInputError
from autocompress.hw.profile import HardwareProfile
from autocompress.run.files import RunFiles
from autocompress.run.trial import Kind
from autocompress.search.prior import PriorTrials
from autocompress.search.screening import PredictorGuidedSampler
from autocompress.search.settings import SAMPLERS
from autocompress.space import SearchSpace


@dataclass(frozen=True)
class SamplerContext:
    """What the predictor-guided sampler screens with, and where it writes its files."""

    space: SearchSpace
    profile: HardwareProfile
    files: RunFiles | None
    seed: int
    max_latency_ms: float | None = None
    prior: PriorTrials | None = None
    """Earlier runs' trials for the predictor to learn from (``--learn-from``)."""


def population_size(trials: int | None) -> int:
    """NSGA population: Optuna's 50 gives few generations in a small budget, so scale it."""
    return 50 if trials is None else max(8, min(50, trials // 5))


class _BaselinesInFirstGeneration:
    """Makes an Optuna genetic sampler count the uniform baselines in its first generation.

    Optuna gives a generation only to the trials the sampler itself samples, so an enqueued
    trial is never a parent: the baselines, the best-trained points of the run, were lost
    on NSGA-II. Counted in generation 0, they compete for parenthood like any trial, and
    crossing two of them (8-bit with 4-bit, 4-bit with channel-pruned) gives the mixed
    policies on the base architecture that can beat both.
    """

    def get_population(self, study: optuna.Study, generation: int) -> list[FrozenTrial]:
        population = super().get_population(study, generation)  # type: ignore[misc]
        if generation == 0:
            key = self._get_generation_key()  # type: ignore[attr-defined]
            population += [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                           if t.user_attrs.get("kind") == Kind.BASELINE and key not in t.system_attrs]
        return population


class SeededNSGAIISampler(_BaselinesInFirstGeneration, optuna.samplers.NSGAIISampler):
    """NSGA-II whose first generation holds the uniform baselines."""


class SeededNSGAIIISampler(_BaselinesInFirstGeneration, optuna.samplers.NSGAIIISampler):
    """NSGA-III whose first generation holds the uniform baselines."""


def make_sampler(name: str, seed: int, trials: int | None,
                 screening: SamplerContext | None = None) -> optuna.samplers.BaseSampler:
    """Sampler ``name`` seeded with ``seed`` (the driver adds the trial count on resume,
    so a resumed run does not replay the proposals it already made). The predictor-guided
    sampler needs the run's ``screening`` context and derives each proposal from the
    storage and the trial number, so it takes the run's own seed."""
    if name == "predictor":
        if screening is None:
            raise ValueError("the predictor-guided sampler needs the run's space, profile and folder")
        return PredictorGuidedSampler(screening.space, screening.profile, screening.files, screening.seed,
                                      screening.max_latency_ms, screening.prior)
    if name == "nsga2":
        return SeededNSGAIISampler(population_size=population_size(trials), seed=seed)
    if name == "nsga3":
        return SeededNSGAIIISampler(population_size=population_size(trials), seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    raise UserInputError(f"--sampler: unknown sampler {name!r} (allowed: {', '.join(SAMPLERS)})")
