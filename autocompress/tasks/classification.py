"""The built-in task: image classification on the space's data (``data.source``).

Top-1 accuracy; the base network trained as a supernet with cross-entropy and in-place
distillation (``base.train_supernet``); a compressed network fine-tuned by distillation
from the base (``train.finetune``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from autocompress.base import train_supernet
from autocompress.data import Splits, chunks, load_splits
from autocompress.space import SearchSpace, TrainingSettings
from autocompress.tasks import Split, Task
from autocompress.train import accuracy, eval_batches, finetune, model_device

CALIBRATION_IMAGES = 256
"""Training images (the first ones) on which activation ranges are calibrated."""


class ClassificationTask(Task):
    """Classification of the space's images. The splits are opened on first use, in the
    process that uses them: a pickled task (a Ray worker's) carries the space, not the data."""

    metric = "accuracy"

    def __init__(self, space: SearchSpace, splits: Splits | None = None, progress: bool = False) -> None:
        self.space, self.progress = space, progress
        self._splits = splits
        self._opened_here = splits is None

    @property
    def splits(self) -> Splits:
        if self._splits is None:
            self._splits = load_splits(self.space.data, progress=self.progress)
        return self._splits

    def __getstate__(self) -> dict:
        return self.__dict__ | ({"_splits": None} if self._opened_here else {})

    def _split(self, split: Split) -> tuple:
        splits = self.splits
        return {Split.TRAIN: (splits.train_x, splits.train_y), Split.VAL: (splits.val_x, splits.val_y),
                Split.TEST: (splits.test_x, splits.test_y)}[split]

    def split_sizes(self) -> dict[str, int]:
        return self.splits.image_counts()

    def score(self, model: nn.Module, split: Split) -> float:
        return accuracy(model, *self._split(split))

    @torch.no_grad()
    def validation_loss_and_score(self, model: nn.Module) -> tuple[float, float]:
        """Mean cross-entropy and top-1 accuracy on the validation split, from one pass."""
        model.eval()
        device = model_device(model)
        splits = self.splits
        loss, predictions = 0.0, []
        for x, y in zip(chunks(splits.val_x, 512), chunks(splits.val_y, 512), strict=True):
            logits = model(x.to(device))
            loss += F.cross_entropy(logits, y.to(device), reduction="sum").item()
            predictions.append(logits.argmax(1).cpu())
        return loss / len(splits.val_y), float((torch.cat(predictions) == splits.val_y).float().mean())

    def training_inputs(self) -> Iterable[torch.Tensor]:
        return eval_batches(self.splits.train_x)

    def calibration_batches(self) -> list[torch.Tensor]:
        return [self.splits.train_x[:CALIBRATION_IMAGES]]

    def finetune(self, student: nn.Module, teacher: nn.Module, settings: TrainingSettings, epochs: int, seed: int,
                 after_epoch: Callable[[int], bool] | None = None) -> bool:
        return finetune(student, teacher, self.splits, settings, epochs=epochs, seed=seed, after_epoch=after_epoch)

    def train_base(self, model: nn.Module, space: SearchSpace, seed: int, progress: str) -> list[float]:
        return train_supernet(model, space, self.splits, seed, progress=f"{progress} ({model_device(model)})")
