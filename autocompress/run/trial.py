"""One trial of a run as its table lists it: its kind, its state and what it measured."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any

from autocompress.run.config import Constraints


class State(StrEnum):
    """Where a trial stands. REJECTED: a constraint broke before training; PRUNED: the
    fine-tune gate did not fine-tune it, or stopped it after the first epoch."""

    COMPLETE = "COMPLETE"
    REJECTED = "REJECTED"
    PRUNED = "PRUNED"
    FAIL = "FAIL"
    RUNNING = "RUNNING"


class Kind(StrEnum):
    """Why a trial exists: a reference baseline, a sampler's proposal, or a proposal evaluated
    before (answered from the cache)."""

    BASELINE = "baseline"
    SEARCH = "search"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Trial:
    """A row of the trial table.

    ``accuracy`` is measured on the validation split (what the search selects by);
    ``test_accuracy`` on the test split, once, for the trials on the final front and the baselines only;
    ``predicted_accuracy`` is the predictor's estimate when the predictor sampler proposed the trial;
    ``predicted_accuracy_cheap`` the fine-tune gate's, from the trial's ``accuracy_before``;
    ``accuracy_first_epoch`` is measured after the first epoch of a fine-tune of two or more, and
    ``predicted_accuracy_first_epoch`` is the gate's prediction from it. A PRUNED trial has what
    was measured up to where the gate stopped it and the gate's predictions, no ``accuracy``.
    """

    number: int
    kind: Kind
    label: str
    state: State
    accuracy: float | None = None
    test_accuracy: float | None = None
    accuracy_before: float | None = None
    predicted_accuracy: float | None = None
    predicted_accuracy_cheap: float | None = None
    accuracy_first_epoch: float | None = None
    predicted_accuracy_first_epoch: float | None = None
    latency_ms: float | None = None
    size_kb: float | None = None
    candidate_hash: str = ""
    candidate: str = ""
    error: str = ""
    started_at: str = ""
    finished_at: str = ""
    duration_s: float | None = None
    finetune_s: float | None = None

    @classmethod
    def from_attrs(cls, number: int, attrs: dict[str, Any], running: bool) -> Trial:
        """Trial ``number`` from its user attributes in the Optuna storage (the source of truth).

        Baselines get their kind when queued; a trial without one is a search trial whose
        driver died before labelling it. Values are kept as stored, so the table shows them so.
        """
        state = State.RUNNING if running or "state" not in attrs else State(attrs["state"])
        values = {name: attrs[name] for name in COLUMNS if attrs.get(name) not in (None, "")}
        return cls(**values | {"number": number, "kind": Kind(attrs.get("kind", Kind.SEARCH)),
                               "label": str(attrs.get("label") or ""), "state": state})

    def row(self) -> dict[str, Any]:
        """The table's cells: ``""`` for what was not measured."""
        return {name: "" if value is None else value for name, value in asdict(self).items()}

    @property
    def counts_against_trials(self) -> bool:
        """Whether the trial uses up ``--trials``: a search trial the gate did not prune (a
        duplicate is answered from the cache; a pruned trial cost its cheap fidelity only, or
        that and one fine-tune epoch)."""
        return self.kind is Kind.SEARCH and self.state is not State.PRUNED

    @property
    def finished(self) -> bool:
        return self.state is not State.RUNNING

    def measured(self, objectives: list[str]) -> bool:
        """COMPLETE, with every objective measured."""
        return self.state is State.COMPLETE and all(getattr(self, name) is not None for name in objectives)

    def feasible(self, constraints: Constraints) -> bool:
        """Whether its predicted latency and size satisfy ``constraints`` (a reference baseline
        is measured even if it breaks one; then it is not feasible)."""
        violations = constraints.violations(float(self.latency_ms or 0), float(self.size_kb or 0))
        return all(value <= 0 for value in violations.values())


COLUMNS = [field.name for field in fields(Trial)]
FLOAT_COLUMNS = [field.name for field in fields(Trial) if field.type == "float | None"]
