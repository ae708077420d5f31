"""One candidate from choice to measured score: build, inherit, compress, fine-tune (as its task does)."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from autocompress.candidate import Candidate
from autocompress.compress.quantize import calibrate_activations
from autocompress.compress.size import model_size_bytes
from autocompress.models.family import family_of
from autocompress.models.slicing import load_state
from autocompress.space import SearchSpace
from autocompress.tasks import Split, Task
from autocompress.train import model_device, recalibrate_batchnorm


@dataclass(frozen=True)
class Evaluation:
    accuracy_before: float
    accuracy: float
    size_bytes: int
    finetune_seconds: float


def calibrated(space: SearchSpace, candidate: Candidate, base: nn.Module, task: Task) -> nn.Module:
    """The candidate built from ``base`` (on its device), batch norm recalibrated and activations
    calibrated: the first step of every evaluation."""
    device = model_device(base)
    model = family_of(space).build_compressed(candidate, base).to(device)
    recalibrate_batchnorm(model, task.training_inputs())
    calibrate_activations(model, [batch.to(device) for batch in task.calibration_batches()])
    return model


def compress_and_calibrate(space: SearchSpace, candidate: Candidate, base: nn.Module,
                           task: Task) -> tuple[nn.Module, float]:
    """The ``calibrated`` candidate and its validation score so, before any fine-tune: the cheap fidelity."""
    model = calibrated(space, candidate, base, task)
    return model, task.score(model, Split.VAL)


def probe(space: SearchSpace, candidate: Candidate, base: nn.Module, task: Task) -> tuple[float | None, float]:
    """Validation loss (None if the task has none) and score of the ``calibrated`` candidate,
    before any fine-tune: a sensitivity probe."""
    return task.validation_loss_and_score(calibrated(space, candidate, base, task))


def finetune_and_measure(space: SearchSpace, model: nn.Module, base: nn.Module, task: Task,
                         accuracy_before: float, seed: int = 0, epochs: int | None = None,
                         after_epoch: Callable[[int], bool] | None = None) -> Evaluation | None:
    """Fine-tune ``model`` from ``base`` as the task does, then score it on validation (None
    if ``after_epoch``, see ``train.run_epochs``, ended the fine-tune)."""
    start = time.perf_counter()
    settings = space.training
    if not task.finetune(model, base, settings, settings.finetune_epochs if epochs is None else epochs, seed,
                         after_epoch):
        return None
    seconds = time.perf_counter() - start
    model.eval()
    after = task.score(model, Split.VAL)
    return Evaluation(accuracy_before, after, model_size_bytes(model), seconds)


def accuracy_mid_finetune(model: nn.Module, task: Task) -> float:
    """Validation score of ``model`` between fine-tune epochs, measured on a copy with
    recalibrated batch norm (as the finished fine-tune's is), so the fine-tune goes on from
    ``model`` untouched."""
    snapshot = copy.deepcopy(model)
    recalibrate_batchnorm(snapshot, task.training_inputs())
    return task.score(snapshot, Split.VAL)


def evaluate_candidate(
    space: SearchSpace,
    candidate: Candidate,
    base: nn.Module,
    task: Task,
    seed: int = 0,
    epochs: int | None = None,
) -> tuple[nn.Module, Evaluation]:
    """Build, recalibrate, score, fine-tune from ``base``, score again (on ``base``'s device)."""
    model, before = compress_and_calibrate(space, candidate, base, task)
    evaluation = finetune_and_measure(space, model, base, task, before, seed, epochs)
    assert evaluation is not None  # nothing can end this fine-tune early
    return model, evaluation


def load_trial_model(space: SearchSpace, path: Path) -> tuple[Candidate, nn.Module]:
    """A trial's fine-tuned model as the search saved it (``models/trial_<n>.pt``), in eval mode."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    family = family_of(space)
    candidate = family.parse_candidate(saved["candidate"])  # its stages as the family's stage type
    model = family.build_compressed(candidate)
    load_state(model, saved["state_dict"])
    return candidate, model.eval()
