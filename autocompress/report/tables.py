"""Tables a report shows, as plain data: front, baselines, timings, settings, profile."""

from __future__ import annotations

from typing import Any

import pandas as pd

from autocompress.models.family import family_of
from autocompress.report.analysis import Analysis
from autocompress.report.policy import policy_text

FRONT_COLUMNS = {"number": "trial", "label": "baseline", "accuracy": "validation accuracy",
                 "test_accuracy": "test accuracy", "accuracy_before": "accuracy before fine-tune",
                 "latency_ms": "latency (ms)", "size_kb": "size (KB)", "duration_s": "trial time (s)"}


def front_table(analysis: Analysis, separator: str = "; ") -> pd.DataFrame:
    """The front, one row per member, with its policy as text."""
    table = analysis.front[list(FRONT_COLUMNS)].rename(columns=FRONT_COLUMNS)
    family = family_of(analysis.run.space)
    table["policy"] = [policy_text(family.parse_candidate(text), separator) for text in analysis.front["candidate"]]
    return table.reset_index(drop=True)


def baseline_table(analysis: Analysis) -> pd.DataFrame:
    columns = {"label": "baseline", "number": "trial", "accuracy": "validation accuracy",
               "test_accuracy": "test accuracy", "latency_ms": "latency (ms)",
               "size_kb": "size (KB)", "dominated_by": "dominated by front trials"}
    return analysis.baselines[list(columns)].rename(columns=columns).reset_index(drop=True)


def timings(analysis: Analysis) -> dict[str, Any]:
    """Trial counts by state and where the time went."""
    trials = analysis.run.trials
    states = trials["state"].value_counts().to_dict()
    started = pd.to_datetime(trials["started_at"], errors="coerce", utc=True)
    finished = pd.to_datetime(trials["finished_at"], errors="coerce", utc=True)
    measured = started.notna().any() and finished.notna().any()
    span = (finished.max() - started.min()).total_seconds() if measured else None
    return {
        "trials": len(trials),
        **{f"trials {state}": int(count) for state, count in sorted(states.items())},
        "first trial started": str(started.min()) if started.notna().any() else None,
        "last trial finished": str(finished.max()) if finished.notna().any() else None,
        "wall time (s)": round(span, 1) if span is not None else None,
        "trial time, sum (s)": round(float(trials["duration_s"].sum()), 1),
        "trial time, mean (s)": _rounded(trials["duration_s"].mean()),
        "fine-tune time, mean (s)": _rounded(trials["finetune_s"].mean()),
        "front size": len(analysis.front),
        "hypervolume": round(analysis.final_hypervolume, 4),
    }


def _rounded(value: float) -> float | None:
    return None if pd.isna(value) else round(float(value), 2)


def settings(analysis: Analysis) -> dict[str, Any]:
    """The run's frozen settings, but the space itself (shown apart)."""
    return {key: value for key, value in analysis.run.config.items() if key != "space"}


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys; a dict of more than 20 entries becomes its count."""
    if not isinstance(data, dict):
        return {prefix: data}
    if len(data) > 20:
        return {prefix: f"{len(data)} entries"}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def profile_summary(profile: dict) -> tuple[dict[str, Any], dict[str, Any]]:
    """(device and capabilities, validation figures) of a profile; missing fields are left out."""
    device = flatten({key: value for key, value in profile.items() if key not in ("validation", "entries")})
    if isinstance(profile.get("entries"), dict):
        device["LUT entries"] = len(profile["entries"])
    return device, flatten(profile.get("validation") or {})
