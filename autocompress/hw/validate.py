"""Validation of a LUT: predicted vs measured end-to-end latency of random candidates.

The candidates are prepared first and then timed in interleaved rounds, so a slow spell
of the machine spreads over all of them instead of skewing one. The
correction (LUT sum and op count -> measured ms) is a linear regression; its reported
figures are cross-validated, the stored one is fitted on all candidates.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import numpy as np
from scipy.stats import kendalltau
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import KFold, cross_val_predict
from tqdm import tqdm

from autocompress.candidate import Candidate
from autocompress.hw.bundle_runner import summarise, time_interleaved
from autocompress.hw.profile import Correction, Figures, HardwareProfile, Validation
from autocompress.hw.runtimes import WARMUP_E2E, measured_runtime
from autocompress.hw.runtimes.onnx import int8_layers
from autocompress.hw.signatures import BitsRule, candidate_signatures, network_macs
from autocompress.models.family import family_of
from autocompress.space import SearchSpace

ROUNDS = 30
CALLS_PER_ROUND = 3
FOLDS = 5


@dataclass(frozen=True)
class Sample:
    """One validation candidate: LUT sum, op count, precision switches, MACs, measured ms."""

    candidate: Candidate
    lut_ms: float
    ops: int
    transitions: int
    macs: int
    measured_ms: float


def figures(predicted: np.ndarray, measured: np.ndarray) -> Figures:
    error = np.abs(predicted - measured) / measured
    tau = kendalltau(predicted, measured).statistic
    return Figures(mape=float(100 * error.mean()), within_10=float((error <= 0.10).mean()),
                   kendall_tau=float(tau))


def measure_candidates(space: SearchSpace, candidates: list[Candidate], runtime: str,
                       batch_size: int, threads: int, statistic: str) -> list[float]:
    """End-to-end latency (ms per batch, by ``statistic``) of each candidate, timed
    interleaved."""
    timed_on = measured_runtime(runtime)
    rule = timed_on.bits_rule
    shape = space.input_shape(batch_size)
    runs = []
    for candidate in tqdm(candidates, desc=f"building on {runtime}", unit="net"):
        model = family_of(space).build_compressed(candidate)
        runs.append(timed_on.prepare(model, [shape], threads, int8=int8_layers(model, rule)))
    with tqdm(total=ROUNDS, desc=f"timing on {runtime}", unit="round") as bar:
        samples = time_interleaved(runs, ROUNDS, CALLS_PER_ROUND, threads, WARMUP_E2E, on_round=bar.update)
    return [summarise(s)[f"{statistic}_ms"] for s in samples]


def validation_candidates(space: SearchSpace, count: int, seed: int = 0) -> list[Candidate]:
    """The random candidates a validation measures (the same for the same seed)."""
    rng = random.Random(seed)
    return [family_of(space).random_candidate(rng) for _ in range(count)]


def score(space: SearchSpace, profile: HardwareProfile, candidates: list[Candidate],
          measured: list[float], seconds: float, seed: int = 0) -> tuple[Validation, Correction]:
    """Figures of the LUT against measured end-to-end latencies, and the fitted correction."""
    from autocompress.hw.predict import lut_sum, precision_transitions

    rule = BitsRule.of(profile)
    samples = []
    for candidate, ms in zip(candidates, measured, strict=True):
        signatures = candidate_signatures(space, candidate, rule)
        samples.append(Sample(candidate, lut_sum(signatures, profile, space), len(signatures),
                              precision_transitions(signatures), network_macs(signatures), ms))
    features = np.array([[s.lut_ms, s.ops, s.transitions] for s in samples])
    target = np.array(measured)
    folds = KFold(min(FOLDS, len(samples)), shuffle=True, random_state=seed)
    crossed = cross_val_predict(LinearRegression(), features, target, cv=folds)
    fit = LinearRegression().fit(features, target)
    correction = Correction(intercept=float(fit.intercept_), per_lut_ms=float(fit.coef_[0]),
                            per_op=float(fit.coef_[1]), per_transition=float(fit.coef_[2]))
    validation = Validation(
        candidates=len(samples),
        raw=figures(features[:, 0], target),
        corrected=figures(crossed, target),
        flops_tau=float(kendalltau([s.macs for s in samples], target).statistic),
        seconds=seconds,
        measured_ms=target.tolist(), lut_ms=features[:, 0].tolist(), corrected_ms=crossed.tolist(),
    )
    return validation, correction


def validate(space: SearchSpace, profile: HardwareProfile, count: int, seed: int = 0
             ) -> tuple[Validation, Correction]:
    """Measure ``count`` random candidates end to end and score the profile's LUT."""
    start = time.perf_counter()
    candidates = validation_candidates(space, count, seed)
    device = profile.device
    measured = measure_candidates(space, candidates, device.runtime, device.batch_size,
                                  device.threads, profile.statistic)
    return score(space, profile, candidates, measured, time.perf_counter() - start, seed)
