"""Validation of a LUT: predicted vs measured end-to-end latency of candidate networks.

Three candidate sets are measured: candidates drawn the way the search draws them (random
values of its sampler's parameters, decoded by ``suggest_candidate``: per-group policies,
end layers held), random per-layer ones, and uniform ones (``uniform_candidates``: the
networks the search measures its speed-ups against). All are prepared first and then timed
together in interleaved rounds, so a slow spell of the machine spreads over all of them
instead of skewing one; each network's median and minimum over its calls are kept. For
each statistic the correction (LUT sum, op count, precision switches, elided layout
reorders and, for the median, the sum of the entries' minima -> measured ms of that
statistic; ``predict.correction_terms``) is a linear regression over all sets; its
reported figures are cross-validated, the stored one is fitted on all candidates.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence

import numpy as np
from scipy.stats import kendalltau
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import KFold, cross_val_predict
from torch import nn

from autocompress.candidate import Candidate
from autocompress.hw.bundle_runner import summarise, time_interleaved
from autocompress.hw.ops import BitsRule, network_macs
from autocompress.hw.profile import (
    STATISTICS,
    CandidateSet,
    Correction,
    Figures,
    HardwareProfile,
    Statistic,
    StatisticFigures,
    Validation,
)
from autocompress.hw.runtimes import WARMUP_E2E, measured_runtime
from autocompress.hw.runtimes.onnx import int8_layers
from autocompress.hw.signatures import candidate_signatures
from autocompress.models.family import family_of
from autocompress.progress import progress_bar
from autocompress.search.params import BASELINES, baseline_params, suggest_candidate
from autocompress.space import SearchSpace

ROUNDS = 30
CALLS_PER_ROUND = 3
FOLDS = 5
TIMING = f"{WARMUP_E2E} warm-up calls, then {ROUNDS} interleaved rounds of {CALLS_PER_ROUND} calls"

Timing = dict[Statistic, float]
"""A network's latency (ms per batch) by statistic of its timed calls."""


def figures(predicted: np.ndarray, measured: np.ndarray) -> Figures:
    error = np.abs(predicted - measured) / measured
    tau = kendalltau(predicted, measured).statistic
    return Figures(mape=float(100 * error.mean()), within_10=float((error <= 0.10).mean()),
                   kendall_tau=float(tau))


def measure_models(models: Iterable[nn.Module], runtime: str, shape: tuple[int, ...], threads: int,
                   total: int | None = None) -> list[Timing]:
    """End-to-end latency of each (not yet frozen) model on ``runtime``, timed interleaved:
    ``WARMUP_E2E`` warm-up calls each, then ``ROUNDS`` rounds of ``CALLS_PER_ROUND`` calls."""
    timed_on = measured_runtime(runtime)
    rule = timed_on.bits_rule
    runs = [timed_on.prepare(model, [shape], threads, int8=int8_layers(model, rule))
            for model in progress_bar(iterable=models, total=total, desc=f"preparing on {runtime}", unit="net")]
    with progress_bar(total=ROUNDS, desc=f"timing on {runtime}", unit="round") as bar:
        samples = time_interleaved(runs, ROUNDS, CALLS_PER_ROUND, threads, WARMUP_E2E, on_round=bar.update)
    return [{statistic: summarise(s)[f"{statistic}_ms"] for statistic in STATISTICS} for s in samples]


def measure_candidates(space: SearchSpace, candidates: Sequence[Candidate], runtime: str,
                       batch_size: int, threads: int) -> list[Timing]:
    """End-to-end latency of each candidate (built with random weights), timed interleaved."""
    family = family_of(space)
    return measure_models((family.build_compressed(c) for c in candidates), runtime,
                          space.input_shape(batch_size), threads, total=len(candidates))


def search_candidate(space: SearchSpace, rng: random.Random) -> Candidate:
    """A candidate as the search proposes one: a random value of each sampler parameter."""
    return suggest_candidate(space, lambda _name, choices: rng.choice(choices))


def uniform_candidates(space: SearchSpace, count: int, rng: random.Random) -> list[Candidate]:
    """``count`` networks with one policy for every layer: the search's baselines (each
    reference policy on the base architecture, decoded as the search decodes them), then
    those policies on random architectures. The search measures every speed-up against such
    a network, so the correction is fitted on them too."""
    family = family_of(space)
    decoded = (baseline_params(space, label) for label in BASELINES)
    found = [suggest_candidate(space, lambda name, _choices, p=params: p[name]) for params in decoded
             if params is not None][:count]
    while len(found) < count:
        found.append(family.uniform_candidate(family.random_arch(rng), **rng.choice(list(BASELINES.values()))))
    return found


def validation_sets(space: SearchSpace, count: int, seed: int = 0) -> dict[str, list[Candidate]]:
    """The candidates a validation measures, ``count`` per set (the same for the same seed)."""
    drawn, rng = random.Random(seed + 1), random.Random(seed)
    family = family_of(space)
    return {"search": [search_candidate(space, drawn) for _ in range(count)],
            "random": [family.random_candidate(rng) for _ in range(count)],
            "uniform": uniform_candidates(space, count, random.Random(seed + 2))}


def flat(sets: dict[str, list[Candidate]]) -> list[Candidate]:
    """The sets' candidates in one list, set after set (the order networks are timed and bundled)."""
    return [candidate for candidates in sets.values() for candidate in candidates]


def by_set(sets: dict[str, list[Candidate]], values: Sequence[Timing]) -> dict[str, list[Timing]]:
    """``values`` (one per candidate of ``flat(sets)``) split back into the sets."""
    split, start = {}, 0
    for name, candidates in sets.items():
        split[name] = list(values[start:start + len(candidates)])
        start += len(candidates)
    if start != len(values):
        raise ValueError(f"{len(values)} timings for {start} validation candidates")
    return split


def score(space: SearchSpace, profile: HardwareProfile, sets: dict[str, list[Candidate]],
          measured: dict[str, list[Timing]], seconds: float, seed: int = 0
          ) -> tuple[Validation, dict[Statistic, Correction]]:
    """Figures of the LUT against measured end-to-end latencies, per set and statistic, and
    the correction of each statistic (fitted on every set)."""
    from autocompress.hw.predict import correction_terms

    rule = BitsRule.of(profile)
    names = np.array([name for name, candidates in sets.items() for _ in candidates])
    signatures = [candidate_signatures(space, c, rule) for c in flat(sets)]
    macs = np.array([network_macs(s) for s in signatures])
    timings = [t for name in sets for t in measured[name]]
    folds = KFold(min(FOLDS, len(names)), shuffle=True, random_state=seed)
    corrections, columns = {}, {}
    for statistic in STATISTICS:
        features = np.array([correction_terms(s, profile, space, statistic) for s in signatures], dtype=float)
        lut = features[:, 0]
        target = np.array([t[statistic] for t in timings])
        crossed = cross_val_predict(LinearRegression(), features, target, cv=folds)
        fit = LinearRegression().fit(features, target)
        corrections[statistic] = Correction(intercept=float(fit.intercept_), **{
            weight: float(coef) for weight, coef in zip(Correction.WEIGHTS, fit.coef_, strict=True)})
        columns[statistic] = (lut, crossed, target)
    candidate_sets = {}
    for name in sets:
        mask = names == name
        candidate_sets[name] = CandidateSet(candidates=int(mask.sum()), statistics={
            statistic: StatisticFigures(
                raw=figures(lut[mask], target[mask]), corrected=figures(crossed[mask], target[mask]),
                flops_tau=float(kendalltau(macs[mask], target[mask]).statistic),
                measured_ms=target[mask].tolist(), lut_ms=lut[mask].tolist(), corrected_ms=crossed[mask].tolist())
            for statistic, (lut, crossed, target) in columns.items()})
    return Validation(sets=candidate_sets, seconds=seconds), corrections


def validate(space: SearchSpace, profile: HardwareProfile, count: int, seed: int = 0
             ) -> tuple[Validation, dict[Statistic, Correction]]:
    """Measure ``count`` candidates of each set end to end and score the profile's LUT."""
    start = time.perf_counter()
    sets = validation_sets(space, count, seed)
    device = profile.device
    measured = measure_candidates(space, flat(sets), device.runtime, device.batch_size, device.threads)
    return score(space, profile, sets, by_set(sets, measured), time.perf_counter() - start, seed)
