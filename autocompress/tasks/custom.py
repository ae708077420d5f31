"""A user's own task, given through the Python API: their data, metric and training.

Data are torch ``Dataset``s (batched here, ``batch_size`` samples) or zero-argument
factories returning an iterable of batches (a ``DataLoader``). A batch is ``(inputs,
targets)`` (or a longer tuple), the model is called on ``inputs`` (a tensor); another batch
layout names its inputs with ``inputs_of(batch)``. Targets may be anything the user's
functions read.

- ``evaluate(model, loader) -> float``: the metric, higher is better, named ``metric``; the
  model is in eval mode on its device, and ``evaluate`` moves batches there itself.
- ``finetune(model, loader, epochs, teacher)``: the user's training step, optional. It trains
  a compressed model from the base network ``teacher``, and the base network itself with
  ``teacher=None`` (when the model comes without trained weights).
- Without ``finetune``, the project's loop (SGD, one-cycle schedule) trains with ``loss(outputs,
  targets)`` where one is given, and fine-tunes by distillation: the mean squared error to
  the base network's outputs, mixed with ``loss`` by ``training.distill_alpha``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from autocompress.errors import UserInputError
from autocompress.progress import Progress
from autocompress.space import SearchSpace, TrainingSettings
from autocompress.tasks import Split, Task
from autocompress.train import OneCycleSGD, model_device, recalibrate_batchnorm, seed_everything

DataSource = Dataset | Callable[[], Iterable]
Evaluate = Callable[[nn.Module, Iterable], float]
Finetune = Callable[[nn.Module, Iterable, int, "nn.Module | None"], object]
Loss = Callable[[Any, Any], torch.Tensor]

CALIBRATION_SAMPLES = 256
"""Training samples (the first ones) that calibrate activation ranges when no calibration data are given."""
RECALIBRATION_SAMPLES = 2048
"""Training samples (the first ones) on which batch-norm statistics are re-estimated."""


def _first_of(batch: Any) -> Any:
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def _to(value: Any, device: torch.device) -> Any:
    """``value`` (a tensor, or tuples, lists and dicts of them) on ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(_to(item, device) for item in value)
    if isinstance(value, dict):
        return {key: _to(item, device) for key, item in value.items()}
    return value


class CustomTask(Task):
    """The user's data sets and functions (see the module's docstring)."""

    def __init__(self, *, train_data: DataSource, val_data: DataSource, test_data: DataSource, evaluate: Evaluate,
                 metric: str = "score", finetune: Finetune | None = None, loss: Loss | None = None,
                 calibration_data: DataSource | None = None, batch_size: int = 32,
                 inputs_of: Callable[[Any], torch.Tensor] = _first_of) -> None:
        self.data = {Split.TRAIN: train_data, Split.VAL: val_data, Split.TEST: test_data}
        self.evaluate, self.metric, self.user_finetune, self.loss = evaluate, metric, finetune, loss
        self.calibration_data, self.batch_size, self.inputs_of = calibration_data, batch_size, inputs_of

    def loader(self, source: DataSource, generator: torch.Generator | None = None) -> Iterable:
        """Batches of ``source``: a data set batched (shuffled with ``generator`` if given), or its factory's."""
        if isinstance(source, Dataset):
            return DataLoader(source, batch_size=self.batch_size, shuffle=generator is not None, generator=generator)
        return source()

    def _samples(self, source: DataSource) -> int:
        if isinstance(source, Dataset) and hasattr(source, "__len__"):
            return len(source)
        return sum(len(self.inputs_of(batch)) for batch in self.loader(source))

    def split_sizes(self) -> dict[str, int]:
        return {split.value: self._samples(source) for split, source in self.data.items()}

    def score(self, model: nn.Module, split: Split) -> float:
        model.eval()
        with torch.no_grad():
            value = self.evaluate(model, self.loader(self.data[split]))
        if isinstance(value, torch.Tensor):
            value = value.item()
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"evaluate returned {value!r}, not a finite number")
        return float(value)

    def _first_inputs(self, source: DataSource, samples: int) -> list[torch.Tensor]:
        batches, seen = [], 0
        for batch in self.loader(source):
            if seen >= samples:
                break
            inputs = self.inputs_of(batch)
            batches.append(inputs[: samples - seen])
            seen += len(batches[-1])
        return batches

    def training_inputs(self) -> Iterable[torch.Tensor]:
        return self._first_inputs(self.data[Split.TRAIN], RECALIBRATION_SAMPLES)

    def calibration_batches(self) -> list[torch.Tensor]:
        if self.calibration_data is not None:
            return [self.inputs_of(batch) for batch in self.loader(self.calibration_data)]
        return self._first_inputs(self.data[Split.TRAIN], CALIBRATION_SAMPLES)

    def finetune(self, student: nn.Module, teacher: nn.Module, settings: TrainingSettings, epochs: int, seed: int,
                 after_epoch: Callable[[int], bool] | None = None) -> bool:
        """The user's ``finetune`` (all epochs at once), else distillation in the project's loop;
        batch norm is re-estimated afterwards, as the built-in task does."""
        if epochs <= 0:
            return True
        generator = seed_everything(seed)
        if self.user_finetune is not None:
            self.user_finetune(student, self.loader(self.data[Split.TRAIN], generator), epochs, teacher)
        else:
            teacher = teacher.eval()
            alpha = settings.distill_alpha

            def distilled(outputs: torch.Tensor, targets: Any, inputs: torch.Tensor) -> torch.Tensor:
                with torch.no_grad():
                    soft = F.mse_loss(outputs, teacher(inputs))
                return soft if self.loss is None else alpha * soft + (1 - alpha) * self.loss(outputs, targets)

            if not self._run_epochs(student, epochs, settings.finetune_lr, distilled, generator, after_epoch):
                return False
        recalibrate_batchnorm(student, self.training_inputs())
        return True

    def train_base(self, model: nn.Module, space: SearchSpace, seed: int, progress: str) -> list[float]:
        settings = space.training
        generator = seed_everything(seed)
        if self.user_finetune is not None:
            self.user_finetune(model, self.loader(self.data[Split.TRAIN], generator), settings.base_epochs, None)
        elif self.loss is not None:
            self._run_epochs(model, settings.base_epochs, settings.lr, lambda out, target, _: self.loss(out, target),
                             generator, progress=progress)
        else:
            raise UserInputError("model: has no trained weights, and neither finetune nor loss was given to train it")
        model.eval()
        return []

    def _run_epochs(self, model: nn.Module, epochs: int, peak_lr: float,
                    loss_of: Callable[[torch.Tensor, Any, torch.Tensor], torch.Tensor], generator: torch.Generator,
                    after_epoch: Callable[[int], bool] | None = None, progress: str | None = None) -> bool:
        """SGD with a one-cycle schedule minimising ``loss_of(outputs, targets, inputs)`` (see ``train.run_epochs``)."""
        per_epoch = len(self.loader(self.data[Split.TRAIN]))
        optimizer = OneCycleSGD(model, peak_lr, epochs * per_epoch)
        device = model_device(model)
        model.train()
        with Progress(progress or "", epochs * per_epoch, "batches", enabled=progress is not None) as shown:
            for epoch in range(1, epochs + 1):
                total, seen = 0.0, 0
                for batch in itertools.islice(self.loader(self.data[Split.TRAIN], generator), per_epoch):
                    batch = _to(batch, device)
                    inputs = self.inputs_of(batch)
                    targets = batch[1] if isinstance(batch, (tuple, list)) and len(batch) > 1 else None
                    loss = loss_of(model(inputs), targets, inputs)
                    optimizer.step(loss)
                    total, seen = total + float(loss.detach()) * len(inputs), seen + len(inputs)
                    shown.advance()
                    if shown.bar_shown or shown.line_due:
                        shown.show(epoch=f"{epoch}/{epochs}", loss=f"{total / seen:.4f}")
                shown.show(milestone=True, epoch=f"{epoch}/{epochs}", loss=f"{total / max(seen, 1):.4f}")
                if after_epoch is not None and not after_epoch(epoch):
                    model.eval()
                    return False
        model.eval()
        return True
