"""What the predictor-guided sampler keeps in the run folder: its fitted predictors, the
predicted front of each pool it screened, and its predictors' quality.

Each predictor is scored twice: cross-validated on the trials it was fitted on, and on its
predictions made before each trial was evaluated (``before_*``), against what the trial then
measured. The fine-tune gate's two predictors also count the trials they pruned.
"""

from __future__ import annotations

import csv
import json
from dataclasses import astuple, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from autocompress.files import write_atomic
from autocompress.inputs import load_json, validated
from autocompress.run.files import RunFiles


class Quality(BaseModel):
    """Predictions against measurements: rank agreement, mean absolute error, how many."""

    kendall_tau: float
    mae: float
    trials: int


class Fitted(BaseModel):
    """A fitted predictor: what it is, on how many trials, its 5-fold cross-validation."""

    model: str
    fitted_on_trials: int
    cross_validated: Quality | None


class CheapFidelityGate(Fitted):
    """The gate's predictor from a trial's accuracy before fine-tuning."""

    before_finetune: Quality | None = None
    pruned_trials: int = 0


class FirstEpochGate(Fitted):
    """The gate's predictor from a trial's accuracy after its first fine-tune epoch."""

    before_last_epochs: Quality | None = None
    pruned_trials: int = 0


class Screening(BaseModel):
    """The last proposal's screening: of which trial, how many candidates, how fast."""

    trial: int
    candidates: int
    seconds: float
    candidates_per_s: float


class PredictorSummary(Fitted):
    """The screening predictor (this record's own fields) and the gate's two predictors."""

    before_evaluation: Quality | None = None
    cheap_fidelity: CheapFidelityGate
    first_epoch: FirstEpochGate | None = None
    last_screening: Screening | None = None

    def write(self, path: Path) -> None:
        write_atomic(path, json.dumps(self.model_dump(), indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> PredictorSummary:
        """The summary in ``path``; a broken one is one line naming it."""
        return validated(cls, load_json(path, "predictor summary"), path)


class SavedPredictor(Protocol):
    """A fitted predictor that writes itself to a file (``search.predictor.AccuracyPredictor``)."""

    def save(self, path: Path) -> None: ...


@dataclass(frozen=True)
class ScreenedRow:
    """A candidate of a screened pool: on the pool's predicted front, or the one proposed."""

    trial: int
    candidate_hash: str
    predicted_accuracy: float
    predicted_std: float
    latency_ms: float
    chosen: int


@dataclass(frozen=True)
class SamplerOutput:
    """What a sampler hands the driver after a proposal or a finished trial: the proposed
    trial's attributes (the predictions it was proposed with), and what the run folder keeps."""

    trial_attrs: dict[str, Any] = field(default_factory=dict)
    predictors: dict[str, SavedPredictor] = field(default_factory=dict)
    """Fitted predictors by name (``RunFiles.predictor_model``)."""
    screened: list[ScreenedRow] = field(default_factory=list)
    summary: PredictorSummary | None = None

    def write(self, files: RunFiles) -> None:
        """The predictors, the screened rows (appended) and the summary, in that order."""
        for name, predictor in self.predictors.items():
            predictor.save(files.predictor_model(name))
        if self.screened:
            new = not files.screened.exists()
            with open(files.screened, "a", newline="") as handle:
                writer = csv.writer(handle)
                if new:
                    writer.writerow([column.name for column in fields(ScreenedRow)])
                writer.writerows(astuple(row) for row in self.screened)
        if self.summary is not None:
            self.summary.write(files.predictor_summary)
