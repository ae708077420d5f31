"""The candidates a predictor-guided proposal screens: bred from the measured front, or drawn at random."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from autocompress.candidate import Candidate
from autocompress.errors import MissingSignaturesError
from autocompress.hw.predict import predict
from autocompress.hw.profile import HardwareProfile
from autocompress.search.params import decode, search_params
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


@dataclass
class Screened:
    """A pool of candidates with their scores (one row each)."""

    params: list[dict[str, Any]]
    hashes: list[str]
    latency_ms: np.ndarray
    mean: np.ndarray
    std: np.ndarray


class CandidatePool:
    """Draws candidates of ``space`` by their search parameters, each with its LUT latency on
    ``profile``; those over ``max_latency_ms`` are left out."""

    def __init__(self, space: SearchSpace, profile: HardwareProfile, max_latency_ms: float | None = None) -> None:
        self.space, self.profile, self.max_latency_ms = space, profile, max_latency_ms
        self.choices = search_params(space)

    def decode(self, params: Mapping[str, Any]) -> Candidate:
        return decode(self.space, params)

    def latency_ms(self, params: Mapping[str, Any]) -> float:
        return predict(self.decode(params), self.profile, self.space)

    def random_params(self, rng: random.Random) -> dict[str, Any]:
        return {name: rng.choice(choices) for name, choices in self.choices.items()}

    def random_untaken(self, rng: random.Random, taken: set) -> dict[str, Any]:
        """A random candidate whose hash is not in ``taken`` (after 1000 tries, any)."""
        for _ in range(1000):
            params = self.random_params(rng)
            if self.decode(params).hash not in taken:
                return params
        return params

    def mutant(self, rng: random.Random, parents: list[dict[str, Any]]) -> dict[str, Any]:
        """A parent (or a uniform crossover of two), with each parameter redrawn at rate 2 / parameters."""
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

    def draw(self, rng: random.Random, parents: list[dict[str, Any]],
             taken: set) -> tuple[list[dict[str, Any]], list[str], np.ndarray]:
        """Parameters, hashes and LUT latencies of new candidates, bred from ``parents`` or random."""
        params, hashes, latencies = [], [], []
        seen = set(taken)
        skipped = 0
        deadline = time.perf_counter() + SCREENING_SECONDS
        for index in range(POOL_SIZE):
            if time.perf_counter() > deadline:
                break
            candidate_params = (self.mutant(rng, parents) if parents and index < POOL_SIZE * MUTANT_SHARE
                                else self.random_params(rng))
            candidate = self.decode(candidate_params)
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
