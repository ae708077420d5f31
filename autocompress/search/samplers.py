"""The search's samplers, registered by name: what ``--sampler`` accepts.

A sampler is a small class: its ``name``, the Optuna sampler it runs (``make``), and what the
driver may ask of it beyond Optuna's interface (a fine-tune gate per proposal). A new one is
a subclass with ``@register_sampler``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import optuna

from autocompress.errors import UserInputError
from autocompress.hw.profile import HardwareProfile
from autocompress.run.predictor import SamplerOutput
from autocompress.search.genetic import SeededNSGAIIISampler, SeededNSGAIISampler, population_size
from autocompress.search.prior import PriorTrials
from autocompress.space import SearchSpace

if TYPE_CHECKING:
    from autocompress.search.gate import FinetuneGate

DEFAULT_SAMPLER = "predictor"


@dataclass(frozen=True)
class SamplerContext:
    """What the predictor-guided sampler screens with."""

    space: SearchSpace
    profile: HardwareProfile
    seed: int
    max_latency_ms: float | None = None
    prior: PriorTrials | None = None
    """Earlier runs' trials for the predictor to learn from (``--learn-from``)."""


class SearchSampler(ABC):
    """A sampler as the driver uses it: ``optuna``, the Optuna sampler the study runs, made with
    ``seed`` (the driver adds the trial count on resume, so a resumed run does not replay the
    proposals it already made) for a search of ``trials`` trials."""

    name: ClassVar[str]
    learns_from_earlier_runs: ClassVar[bool] = False
    """Whether it accepts ``--learn-from``."""
    proposes_search_trials: ClassVar[bool] = True
    """False for a sampler whose answer is its baselines: the driver then asks it for no search trial."""

    def __init__(self, seed: int, trials: int | None, context: SamplerContext | None = None) -> None:
        self.optuna = self.make(seed, trials, context)

    @abstractmethod
    def make(self, seed: int, trials: int | None, context: SamplerContext | None) -> optuna.samplers.BaseSampler:
        """The Optuna sampler; ``context`` is the run's space and profile (None outside a run)."""

    def finetune_gate(self, number: int) -> FinetuneGate | None:
        """The fine-tune gate of trial ``number``'s proposal, handed out once (None: fine-tune it)."""
        return None

    def take_output(self) -> SamplerOutput | None:
        """What it wants kept since the last call (the driver asks after each ask and each tell,
        and is the one to write it)."""
        return None


_SAMPLERS: dict[str, type[SearchSampler]] = {}


def register_sampler(cls: type[SearchSampler]) -> type[SearchSampler]:
    """Class decorator: make ``cls`` available as ``--sampler <cls.name>``."""
    _SAMPLERS[cls.name] = cls
    return cls


def sampler_names() -> list[str]:
    """The registered samplers, the default first."""
    return list(_SAMPLERS)


def sampler_named(name: str, option: str = "--sampler") -> type[SearchSampler]:
    """The registered sampler called ``name``; anything else is one line naming ``option``."""
    if name not in _SAMPLERS:
        raise UserInputError(f"{option}: unknown sampler {name!r} (allowed: {', '.join(sampler_names())})")
    return _SAMPLERS[name]


def make_sampler(name: str, seed: int, trials: int | None, context: SamplerContext | None = None) -> SearchSampler:
    return sampler_named(name)(seed, trials, context)


@register_sampler
class PredictorGuided(SearchSampler):
    """Screens thousands of candidates with an accuracy predictor, fine-tunes the most promising
    (``screening.py``). It derives each proposal from the storage and the trial number, so it
    takes the run's own seed."""

    name = DEFAULT_SAMPLER
    learns_from_earlier_runs = True

    def make(self, seed: int, trials: int | None, context: SamplerContext | None) -> optuna.samplers.BaseSampler:
        from autocompress.search.screening import PredictorGuidedSampler  # scikit-learn: only when used

        if context is None:
            raise ValueError("the predictor-guided sampler needs the run's space and profile")
        return PredictorGuidedSampler(context.space, context.profile, context.seed, context.max_latency_ms,
                                      context.prior)

    def finetune_gate(self, number: int) -> FinetuneGate | None:
        return self.optuna.finetune_gate(number)

    def take_output(self) -> SamplerOutput | None:
        return self.optuna.take_output()


@register_sampler
class NSGAII(SearchSampler):
    name = "nsga2"

    def make(self, seed: int, trials: int | None, context: SamplerContext | None) -> optuna.samplers.BaseSampler:
        return SeededNSGAIISampler(population_size=population_size(trials), seed=seed)


@register_sampler
class NSGAIII(SearchSampler):
    name = "nsga3"

    def make(self, seed: int, trials: int | None, context: SamplerContext | None) -> optuna.samplers.BaseSampler:
        return SeededNSGAIIISampler(population_size=population_size(trials), seed=seed)


@register_sampler
class TPE(SearchSampler):
    name = "tpe"

    def make(self, seed: int, trials: int | None, context: SamplerContext | None) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)


@register_sampler
class Random(SearchSampler):
    name = "random"

    def make(self, seed: int, trials: int | None, context: SamplerContext | None) -> optuna.samplers.BaseSampler:
        return optuna.samplers.RandomSampler(seed=seed)


@register_sampler
class GaussianProcess(SearchSampler):
    name = "gp"

    def make(self, seed: int, trials: int | None, context: SamplerContext | None) -> optuna.samplers.BaseSampler:
        return optuna.samplers.GPSampler(seed=seed)


@register_sampler
class SensitivityAllocator(SearchSampler):
    """No search: the baselines alone, among them the sensitivity-based allocator's candidates
    (``allocator.py``), the minutes-long answer."""

    name = "sensitivity"
    proposes_search_trials = False
    learns_from_earlier_runs = True  # their sensitivity probes, measured on the same base network

    def make(self, seed: int, trials: int | None, context: SamplerContext | None) -> optuna.samplers.BaseSampler:
        return optuna.samplers.RandomSampler(seed=seed)  # the driver asks it for queued baselines only
