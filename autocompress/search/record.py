"""What a trial produced, how it is kept in Optuna's storage, and its ``trials.csv`` row.

The storage is the one source of truth: every column of ``trials.csv`` is a user
attribute of the trial (so optuna-dashboard shows them too), and the CSV files are
derived from it, so a driver killed between the two loses nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

COLUMNS = ["number", "kind", "label", "state", "accuracy", "test_accuracy", "accuracy_before", "predicted_accuracy",
           "predicted_accuracy_cheap", "accuracy_first_epoch", "predicted_accuracy_first_epoch", "latency_ms",
           "size_kb", "candidate_hash", "candidate", "error", "started_at", "finished_at", "duration_s", "finetune_s"]
"""``accuracy`` is measured on the validation split (what the search selects by);
``test_accuracy`` on the test split, once, for the trials on the final front only;
``predicted_accuracy`` is the predictor's estimate when the predictor sampler proposed the trial;
``predicted_accuracy_cheap`` the fine-tune gate's, from the trial's ``accuracy_before``;
``accuracy_first_epoch`` is measured after the first epoch of a fine-tune of two or more, and
``predicted_accuracy_first_epoch`` is the gate's prediction from it. A PRUNED trial is one the
gate did not fine-tune, or stopped after that first epoch: it has what was measured up to there
and the gate's predictions, no ``accuracy``."""

REJECTED_ACCURACY = 0.0
"""Accuracy told to Optuna for a candidate rejected before training: with its constraint
violation, it lets the samplers learn to avoid the infeasible region. ``trials.csv`` leaves
the accuracy of such rows empty."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Outcome:
    """A trial's result as a worker returns it (``state_dict`` only for COMPLETE). States:
    COMPLETE, REJECTED (a constraint broke before training), PRUNED (not fine-tuned: the
    fine-tune gate), FAIL."""

    state: str
    latency_ms: float | None = None
    size_kb: float | None = None
    accuracy: float | None = None
    accuracy_before: float | None = None
    predicted_accuracy_cheap: float | None = None
    accuracy_first_epoch: float | None = None
    predicted_accuracy_first_epoch: float | None = None
    error: str = ""
    started_at: str = ""
    finished_at: str = ""
    duration_s: float = 0.0
    finetune_s: float = 0.0
    state_dict: dict | None = field(default=None, repr=False)

    def attrs(self) -> dict:
        """The user attributes that mirror this outcome (everything but the weights)."""
        return {k: v for k, v in asdict(self).items() if k != "state_dict"}

    def values(self, objectives: list[str]) -> list[float]:
        """Objective values to tell Optuna (COMPLETE and REJECTED trials)."""
        measured = {"accuracy": REJECTED_ACCURACY if self.accuracy is None else self.accuracy,
                    "latency_ms": self.latency_ms, "size_kb": self.size_kb}
        return [float(measured[name]) for name in objectives]


def trial_row(number: int, attrs: dict, running: bool) -> dict:
    """The ``trials.csv`` row of trial ``number`` from its user attributes.

    Baselines get their kind when queued; a trial without one is a search trial whose
    driver died before labelling it.
    """
    row = {column: attrs.get(column, "") for column in COLUMNS}
    row |= {"number": number, "kind": attrs.get("kind", "search")}
    if running or "state" not in attrs:
        row["state"] = "RUNNING"
    return {k: ("" if v is None else v) for k, v in row.items()}
