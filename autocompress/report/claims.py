"""What the front buys against each baseline: the fastest front model at least as accurate.

The search selected the front by validation accuracy, so a claim on validation figures is
optimistic. Each claim is therefore made on the test split when the baseline and every front
model were measured there (the search measures them once, after it ends), and on validation
otherwise (a run stopped before that, or one still going); every claim names its split.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pandas as pd

from autocompress.report.analysis import Analysis

CLAIMS_NOTE = ("For each baseline, the fastest other front model at least as accurate: on the test split where "
               "the baseline and every front model were measured there, else on validation (a search stopped "
               "before its end, or one still going); latencies as predicted by the run's profile.")


class Split(StrEnum):
    """The images a claim's accuracies were measured on."""

    TEST = "test"
    VALIDATION = "validation"

    @property
    def column(self) -> str:
        return "test_accuracy" if self is Split.TEST else "accuracy"


@dataclass(frozen=True)
class Claim:
    """One baseline against the front: ``rival`` is the fastest other front model at least as
    accurate on ``split`` (None if no front model is), with its accuracy and predicted latency."""

    baseline: str
    split: Split
    baseline_accuracy: float
    baseline_latency_ms: float
    rival: int | None
    rival_accuracy: float | None
    rival_latency_ms: float | None

    @property
    def speedup(self) -> float | None:
        """Baseline latency over the rival's (None without a rival)."""
        return None if self.rival_latency_ms is None else self.baseline_latency_ms / self.rival_latency_ms

    def sentence(self) -> str:
        """The claim in words, e.g. ``uniform-8bit (test accuracy 0.983, 21.2 ms): trial 12 is as
        accurate on the test split (0.986) at 9.07 ms, 2.34x lower predicted latency``."""
        own = f"{self.baseline} ({self.split} accuracy {self.baseline_accuracy:.4f}, {self.baseline_latency_ms:.4g} ms)"
        if self.speedup is None or self.speedup <= 1.0:
            return f"{own}: no faster front model is as accurate on the {self.split} split"
        return (f"{own}: trial {self.rival} is as accurate on the {self.split} split ({self.rival_accuracy:.4f}) "
                f"at {self.rival_latency_ms:.4g} ms, {self.speedup:.2f}x lower predicted latency")


def _split(baseline: pd.Series, front: pd.DataFrame) -> Split:
    measured = pd.notna(baseline["test_accuracy"]) and front["test_accuracy"].notna().all()
    return Split.TEST if measured else Split.VALIDATION


def _claim(baseline: pd.Series, front: pd.DataFrame) -> Claim:
    split = _split(baseline, front)
    accuracy = float(baseline[split.column])
    others = front[front["number"] != baseline["number"]]
    as_accurate = others[others[split.column] >= accuracy].sort_values(["latency_ms", "number"])
    rival = as_accurate.iloc[0] if len(as_accurate) else None
    return Claim(baseline=str(baseline["label"]), split=split, baseline_accuracy=accuracy,
                 baseline_latency_ms=float(baseline["latency_ms"]),
                 rival=None if rival is None else int(rival["number"]),
                 rival_accuracy=None if rival is None else float(rival[split.column]),
                 rival_latency_ms=None if rival is None else float(rival["latency_ms"]))


def claims(analysis: Analysis) -> list[Claim]:
    """One claim per completed baseline, in trial order."""
    return [_claim(row, analysis.front) for _, row in analysis.baselines.sort_values("number").iterrows()]
