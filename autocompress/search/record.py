"""What a trial produced, as a worker returns it and Optuna's storage keeps it.

The storage is the one source of truth: every column of the run's trial table is a user
attribute of the trial (so optuna-dashboard shows them too), and the tables are derived
from it (``run.trial.Trial.from_attrs``), so a driver killed between the two loses nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from optuna.trial import TrialState

from autocompress.run.trial import State

REJECTED_ACCURACY = 0.0
"""Accuracy told to Optuna for a candidate rejected before training: with its constraint
violation, it lets the samplers learn to avoid the infeasible region. The trial table leaves
the accuracy of such rows empty."""

_OPTUNA_STATE = {State.COMPLETE: TrialState.COMPLETE, State.REJECTED: TrialState.COMPLETE,
                 State.PRUNED: TrialState.PRUNED, State.FAIL: TrialState.FAIL}


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Outcome:
    """A trial's result as a worker returns it (``state_dict`` only for COMPLETE); never RUNNING."""

    state: State
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

    @classmethod
    def stored(cls, attrs: dict) -> Outcome:
        """A finished trial's outcome as its user attributes keep it (without the weights)."""
        kept = {k: v for k, v in attrs.items() if k in cls.__dataclass_fields__ and k != "state_dict"}
        return cls(**kept | {"state": State(kept["state"])})

    @property
    def optuna_state(self) -> TrialState:
        """The state Optuna gets: a REJECTED trial is COMPLETE there, with its constraint violated."""
        return _OPTUNA_STATE[self.state]

    def attrs(self) -> dict:
        """The user attributes that mirror this outcome (everything but the weights)."""
        return {k: v for k, v in asdict(self).items() if k != "state_dict"}

    def values(self, objectives: list[str]) -> list[float]:
        """Objective values to tell Optuna (COMPLETE and REJECTED trials)."""
        measured = {"accuracy": REJECTED_ACCURACY if self.accuracy is None else self.accuracy,
                    "latency_ms": self.latency_ms, "size_kb": self.size_kb}
        return [float(measured[name]) for name in objectives]

