"""Tasks: what a network is trained on and scored by.

A search compares compressed networks by one number, higher is better, on the validation
split (the search's selection) and, for the final front and the baselines, on the test
split. The task says what that number is (its ``metric`` name: ``accuracy`` for the
built-in classification, ``mAP`` or ``IoU`` for a user's own), how a compressed network
is fine-tuned from its base network, how the base network itself is trained, and which
inputs re-estimate batch-norm statistics and calibrate activation ranges.

Two tasks exist: ``ClassificationTask`` (``tasks/classification.py``), the space's data
with cross-entropy, distillation and top-1 accuracy; and ``CustomTask``
(``tasks/custom.py``), the user's data sets, ``evaluate`` and optional ``finetune`` and
``loss``, given through the Python API.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable

import torch
from torch import nn

from autocompress.space import SearchSpace, TrainingSettings


class Split(enum.Enum):
    TRAIN = "train"
    VAL = "val"
    TEST = "test"


class Task(ABC):
    """One task's data, metric and training, as the search's pipeline uses them.

    A task travels to every Ray worker by pickling (cloudpickle, so functions defined in a
    script travel too); a task whose data are opened from files should open them lazily and
    leave them out of its pickled state.
    """

    metric: str = "accuracy"
    """The score's name, shown in the trial table, the front and the report."""

    @abstractmethod
    def split_sizes(self) -> dict[str, int]:
        """Samples in the train, val and test splits."""

    @abstractmethod
    def score(self, model: nn.Module, split: Split) -> float:
        """The metric of ``model`` (in eval mode, on its device) on ``split``; higher is better."""

    def validation_loss_and_score(self, model: nn.Module) -> tuple[float | None, float]:
        """The mean loss of ``model`` (in eval mode) on the validation split, finer than a score
        measured on a few hundred samples, and its score there. The loss is None where the task
        has none (the sensitivity-based allocator then weighs the score's drop instead)."""
        return None, self.score(model, Split.VAL)

    @abstractmethod
    def training_inputs(self) -> Iterable[torch.Tensor]:
        """Batches of training inputs, in a fixed order, that re-estimate batch-norm statistics."""

    @abstractmethod
    def calibration_batches(self) -> list[torch.Tensor]:
        """Input batches on which activation ranges are calibrated."""

    @abstractmethod
    def finetune(self, student: nn.Module, teacher: nn.Module, settings: TrainingSettings, epochs: int, seed: int,
                 after_epoch: Callable[[int], bool] | None = None) -> bool:
        """Fine-tune the compressed ``student`` from the base network ``teacher`` for ``epochs``;
        ``after_epoch(epoch)`` returning False ends it (see ``train.run_epochs``). Returns
        whether it ran to the end."""

    @abstractmethod
    def train_base(self, model: nn.Module, space: SearchSpace, seed: int, progress: str) -> list[float]:
        """Train the space's largest network ``model`` in place as the search's base network;
        returns each step's loss (empty where the training does not report them)."""
