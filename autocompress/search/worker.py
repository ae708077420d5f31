"""Evaluation of one candidate, inside a Ray actor that keeps data and base network loaded.

Each actor receives the space, profile, task and base weights once (through Ray's object
store; the built-in classification task opens the data itself from the space's ``data``
settings, so a large data set never passes through the driver), and then evaluates
candidate after candidate on its device, so no trial pays for loading.
"""

from __future__ import annotations

import time

import torch

from autocompress import pipeline
from autocompress.base import build_base
from autocompress.candidate import Candidate
from autocompress.compress.size import model_size_bytes
from autocompress.hw.predict import predict
from autocompress.hw.profile import HardwareProfile
from autocompress.models.family import family_of
from autocompress.models.slicing import load_state
from autocompress.run.config import Constraints
from autocompress.run.trial import State
from autocompress.search.gate import FinetuneGate, Verdict
from autocompress.search.record import Outcome, now
from autocompress.space import SearchSpace
from autocompress.tasks import Task


class TrialEvaluator:
    """Turns candidate JSON into an ``Outcome``; never raises for a bad candidate."""

    def __init__(self, space: SearchSpace, profile_json: str, task: Task, base_state: dict,
                 constraints: Constraints, seed: int, finetune_epochs: int | None, threads: int,
                 device: str = "cpu") -> None:
        torch.set_num_threads(threads)
        # the profile travels as JSON and is validated here: a worker whose autocompress
        # differs from the driver's fails with a clear message, not a half-built object
        self.profile = HardwareProfile.model_validate_json(profile_json)
        self.space, self.task = space, task
        self.constraints, self.seed, self.epochs = constraints, seed, finetune_epochs
        self.base = build_base(space)
        load_state(self.base, base_state)
        self.base.to(device).eval()

    def evaluate(self, candidate_json: str, enforce_constraints: bool = True,
                 gate: FinetuneGate | None = None) -> Outcome:
        """Predict latency and size, reject if a constraint breaks, else measure the cheap
        fidelity, and fine-tune and measure unless ``gate`` says the fine-tune cannot pay
        (judged on the cheap fidelity, and again after the fine-tune's first epoch).

        Reference baselines pass ``enforce_constraints=False``: they are measured anyway.
        """
        started, clock = now(), time.perf_counter()
        try:
            outcome = self._evaluate(family_of(self.space).parse_candidate(candidate_json), enforce_constraints, gate)
        except Exception as error:  # noqa: BLE001 - any failure of a trial is recorded, not fatal
            outcome = Outcome(State.FAIL, error=f"{type(error).__name__}: {error}")
        outcome.started_at, outcome.finished_at = started, now()
        outcome.duration_s = time.perf_counter() - clock
        return outcome

    def probe(self, candidate_json: str) -> tuple[float | None, float]:
        """Validation loss (None if the task has none) and score of the candidate before any
        fine-tune: a sensitivity probe."""
        return pipeline.probe(self.space, family_of(self.space).parse_candidate(candidate_json), self.base, self.task)

    def _evaluate(self, candidate: Candidate, enforce_constraints: bool, gate: FinetuneGate | None) -> Outcome:
        latency = predict(candidate, self.profile, self.space)
        size_kb = model_size_bytes(family_of(self.space).build_compressed(candidate)) / 1024
        reason = self.constraints.rejection(latency, size_kb)
        if reason and enforce_constraints:
            return Outcome(State.REJECTED, latency_ms=latency, size_kb=size_kb, error=reason)
        model, before = pipeline.compress_and_calibrate(self.space, candidate, self.base, self.task)
        predicted = None
        if gate is not None:
            verdict = gate.judge(before)
            predicted = verdict.predicted_accuracy
            if not verdict.finetune:
                return Outcome(State.PRUNED, latency_ms=latency, size_kb=size_kb, accuracy_before=before,
                               predicted_accuracy_cheap=predicted, error=f"not fine-tuned: {verdict.reason}")
        epochs = self.space.training.finetune_epochs if self.epochs is None else self.epochs
        rung = _FirstEpoch(model, self.task, gate, epochs)
        clock = time.perf_counter()
        result = pipeline.finetune_and_measure(self.space, model, self.base, self.task, before, self.seed,
                                               self.epochs, after_epoch=rung)
        measured = {"accuracy_before": before, "predicted_accuracy_cheap": predicted,
                    "accuracy_first_epoch": rung.accuracy, "predicted_accuracy_first_epoch": rung.predicted_accuracy}
        if result is None:
            return Outcome(State.PRUNED, latency_ms=latency, size_kb=size_kb, finetune_s=time.perf_counter() - clock,
                           error=f"fine-tune stopped after epoch 1: {rung.verdict.reason}", **measured)
        return Outcome(State.COMPLETE, latency_ms=latency, size_kb=result.size_bytes / 1024, accuracy=result.accuracy,
                       finetune_s=result.finetune_seconds,
                       state_dict={name: tensor.cpu() for name, tensor in model.state_dict().items()}, **measured)


class _FirstEpoch:
    """The fine-tune's ``after_epoch``: after the first of two or more epochs, measures the
    accuracy (every trial records it, so the gate's first-epoch predictor has trials to fit),
    and ends the fine-tune if the gate says the remaining epochs cannot pay."""

    def __init__(self, model: torch.nn.Module, task: Task, gate: FinetuneGate | None, epochs: int) -> None:
        self.model, self.task, self.gate, self.epochs = model, task, gate, epochs
        self.accuracy: float | None = None
        self.verdict: Verdict | None = None

    @property
    def predicted_accuracy(self) -> float | None:
        return None if self.verdict is None else self.verdict.predicted_accuracy

    def __call__(self, epoch: int) -> bool:
        if epoch != 1 or self.epochs < 2:
            return True
        self.accuracy = pipeline.accuracy_mid_finetune(self.model, self.task)
        if self.gate is not None:
            self.verdict = self.gate.judge_first_epoch(self.accuracy)
        return self.verdict is None or self.verdict.finetune
