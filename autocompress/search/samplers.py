"""Optuna samplers by name, set up for a parallel, possibly resumed, search."""

from __future__ import annotations

import optuna

from autocompress.errors import UserInputError
from autocompress.search.settings import SAMPLERS


def population_size(trials: int | None) -> int:
    """NSGA population: Optuna's 50 gives few generations in a small budget, so scale it."""
    return 50 if trials is None else max(8, min(50, trials // 5))


def make_sampler(name: str, seed: int, trials: int | None) -> optuna.samplers.BaseSampler:
    """Sampler ``name`` seeded with ``seed`` (the driver adds the trial count on resume,
    so a resumed run does not replay the proposals it already made)."""
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=population_size(trials), seed=seed)
    if name == "nsga3":
        return optuna.samplers.NSGAIIISampler(population_size=population_size(trials), seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    raise UserInputError(f"--sampler: unknown sampler {name!r} (allowed: {', '.join(SAMPLERS)})")
