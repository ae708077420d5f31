"""One candidate from choice to measured accuracy: build, inherit, compress, fine-tune."""

from __future__ import annotations

import time
from dataclasses import dataclass

from torch import nn

from autocompress.candidate import Candidate
from autocompress.compress.quantize import calibrate_activations
from autocompress.compress.size import model_size_bytes
from autocompress.data import Splits
from autocompress.models.family import family_of
from autocompress.space import SearchSpace
from autocompress.train import accuracy, finetune, recalibrate_batchnorm


@dataclass(frozen=True)
class Evaluation:
    accuracy_before: float
    accuracy: float
    size_bytes: int
    finetune_seconds: float


def evaluate_candidate(
    space: SearchSpace,
    candidate: Candidate,
    base: nn.Module,
    splits: Splits,
    seed: int = 0,
    epochs: int | None = None,
) -> tuple[nn.Module, Evaluation]:
    """Build, recalibrate, measure, fine-tune with distillation from ``base``, measure again."""
    model = family_of(space).build_compressed(candidate, base)
    recalibrate_batchnorm(model, splits.train_x)
    calibrate_activations(model, [splits.train_x[:256]])
    before = accuracy(model, splits.val_x, splits.val_y)
    start = time.perf_counter()
    finetune(model, base, splits, space.training, epochs=epochs, seed=seed)
    seconds = time.perf_counter() - start
    after = accuracy(model, splits.val_x, splits.val_y)
    return model, Evaluation(before, after, model_size_bytes(model), seconds)
