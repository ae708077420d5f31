"""Where a run stands: its trials by state, its front, and the time its driver has left.

The driver's status lines and ``autocompress status`` (from another shell) both say it
through ``Standing``; the driver records its invocation (``Session``) when its search
starts, so that another process can tell the elapsed time and the time left.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from autocompress.run.config import Constraints
from autocompress.run.trial import Kind, State, Trial


class Session(BaseModel):
    """One invocation of the search driver: who, since when, and what it was asked to do."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pid: int = Field(gt=0)
    started_at: float
    """When its search started (seconds since the epoch)."""
    trials: int | None = Field(default=None, ge=1)
    """``--trials``: search trials the run should have in all."""
    time_budget_s: float | None = Field(default=None, gt=0)
    done_at_start: int = Field(ge=0)
    """Search trials done before this invocation (a resumed run's)."""


@dataclass(frozen=True)
class Standing:
    """Counts of a run's trials and its front, at one moment."""

    states: dict[State, int]
    baselines: int
    """Baselines finished."""
    done: int
    """Search trials done (those that use up ``--trials``)."""
    front: int
    best_score: float | None
    """The best score (the run's metric) of a trial that meets the constraints: the front's best."""

    @classmethod
    def of(cls, trials: Iterable[Trial], front: int, constraints: Constraints) -> Standing:
        trials = list(trials)
        accurate = [t.accuracy for t in trials if t.state is State.COMPLETE and t.accuracy is not None
                    and t.feasible(constraints)]
        return cls(states=dict(Counter(t.state for t in trials)),
                   baselines=sum(t.kind is Kind.BASELINE and t.finished for t in trials),
                   done=sum(t.counts_against_trials and t.finished for t in trials), front=front,
                   best_score=max(accurate, default=None))

    def left_s(self, session: Session, now: float | None = None) -> float | None:
        """Time left to ``session``: the sooner of its time budget's end and the end its rate of
        search trials so far foresees (None while neither is known)."""
        elapsed = (time.time() if now is None else now) - session.started_at
        estimates = []
        if session.time_budget_s is not None:
            estimates.append(session.time_budget_s - elapsed)
        if session.trials is not None:
            if self.done >= session.trials:
                estimates.append(0.0)
            elif self.done > session.done_at_start and elapsed > 0:
                estimates.append((session.trials - self.done) * elapsed / (self.done - session.done_at_start))
        return max(0.0, min(estimates)) if estimates else None

    def figures(self, metric: str) -> dict[str, object]:
        """What a status line shows besides the trials done and the time left; the best score
        named by the run's ``metric``."""
        return {"baselines": self.baselines, "failed": self.states.get(State.FAIL, 0),
                "rejected": self.states.get(State.REJECTED, 0), "pruned": self.states.get(State.PRUNED, 0),
                "front": self.front,
                f"best_{metric}": None if self.best_score is None else f"{self.best_score:.4f}"}
