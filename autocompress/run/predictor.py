"""The predictor-guided sampler's summary of its predictors' quality, as the run keeps it.

Each predictor is scored twice: cross-validated on the trials it was fitted on, and on its
predictions made before each trial was evaluated (``before_*``), against what the trial then
measured. The fine-tune gate's two predictors also count the trials they pruned.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from autocompress.files import write_atomic
from autocompress.inputs import load_json, validated


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
