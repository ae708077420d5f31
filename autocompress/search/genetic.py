"""Optuna's genetic samplers with the uniform baselines in their first generation."""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from autocompress.run.trial import Kind


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

    Optuna has no public way to tell which generation a trial belongs to: the key it stores
    that under comes from its private ``_get_generation_key``.
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
