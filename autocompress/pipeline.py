"""One candidate from choice to measured accuracy: build, inherit, compress, fine-tune."""

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
from autocompress.data import Splits
from autocompress.models.family import family_of
from autocompress.models.slicing import load_state
from autocompress.space import SearchSpace
from autocompress.train import accuracy, finetune, model_device, recalibrate_batchnorm


@dataclass(frozen=True)
class Evaluation:
    accuracy_before: float
    accuracy: float
    size_bytes: int
    finetune_seconds: float


def compress_and_calibrate(space: SearchSpace, candidate: Candidate, base: nn.Module,
                           splits: Splits) -> tuple[nn.Module, float]:
    """The candidate built from ``base`` (on its device), batch norm recalibrated and activations
    calibrated, and its validation accuracy so, before any fine-tune: the cheap fidelity."""
    device = model_device(base)
    model = family_of(space).build_compressed(candidate, base).to(device)
    recalibrate_batchnorm(model, splits.train_x)
    calibrate_activations(model, [splits.train_x[:256].to(device)])
    return model, accuracy(model, splits.val_x, splits.val_y)


def finetune_and_measure(space: SearchSpace, model: nn.Module, base: nn.Module, splits: Splits,
                         accuracy_before: float, seed: int = 0, epochs: int | None = None,
                         after_epoch: Callable[[int], bool] | None = None) -> Evaluation | None:
    """Fine-tune ``model`` with distillation from ``base``, then measure it on validation
    (None if ``after_epoch``, see ``train.run_epochs``, ended the fine-tune)."""
    start = time.perf_counter()
    if not finetune(model, base, splits, space.training, epochs=epochs, seed=seed, after_epoch=after_epoch):
        return None
    seconds = time.perf_counter() - start
    after = accuracy(model, splits.val_x, splits.val_y)
    return Evaluation(accuracy_before, after, model_size_bytes(model), seconds)


def accuracy_mid_finetune(model: nn.Module, splits: Splits) -> float:
    """Validation accuracy of ``model`` between fine-tune epochs, measured on a copy with
    recalibrated batch norm (as the finished fine-tune's is), so the fine-tune goes on from
    ``model`` untouched."""
    snapshot = copy.deepcopy(model)
    recalibrate_batchnorm(snapshot, splits.train_x)
    return accuracy(snapshot, splits.val_x, splits.val_y)


def evaluate_candidate(
    space: SearchSpace,
    candidate: Candidate,
    base: nn.Module,
    splits: Splits,
    seed: int = 0,
    epochs: int | None = None,
) -> tuple[nn.Module, Evaluation]:
    """Build, recalibrate, measure, fine-tune with distillation from ``base``, measure again
    (on ``base``'s device)."""
    model, before = compress_and_calibrate(space, candidate, base, splits)
    evaluation = finetune_and_measure(space, model, base, splits, before, seed, epochs)
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
