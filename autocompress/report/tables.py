"""Tables a report shows, as plain data: front, baselines, timings, settings, profile, verify."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from autocompress.hw.describe import prediction_line, validation_rows
from autocompress.hw.profile import HardwareProfile
from autocompress.models.family import family_of
from autocompress.report.analysis import Analysis
from autocompress.report.policy import policy_text

FRONT_COLUMNS = {"number": "trial", "label": "baseline", "accuracy": "validation accuracy",
                 "test_accuracy": "test accuracy", "accuracy_before": "accuracy before fine-tune",
                 "latency_ms": "latency (ms)", "size_kb": "size (KB)", "duration_s": "trial time (s)"}


def predictor_note(key: Callable[[str], str] = str) -> str:
    """What the accuracy-predictor section shows; ``key`` marks up its keys."""
    return (f"Predictions made for each searched trial before it was evaluated ({key('before_evaluation')}), and "
            f"5-fold cross-validated on the trials it was fitted on; {key('cheap_fidelity')}: the fine-tune gate's "
            f"predictor, its predictions made once a trial's accuracy before fine-tuning was in "
            f"({key('before_finetune')}), and the trials it pruned; {key('first_epoch')}: the gate's predictor from "
            f"the accuracy after the first fine-tune epoch, its predictions made then ({key('before_last_epochs')}), "
            f"and the trials it stopped there.")


def _named(columns: dict[str, str], analysis: Analysis) -> dict[str, str]:
    """``columns`` with the latency named by its statistic and batch (as the profile predicts it)."""
    return columns | {"latency_ms": f"predicted {analysis.run.latency_label}"}


def front_table(analysis: Analysis, separator: str = "; ") -> pd.DataFrame:
    """The front, one row per member, with its policy as text."""
    table = analysis.front[list(FRONT_COLUMNS)].rename(columns=_named(FRONT_COLUMNS, analysis))
    family = family_of(analysis.run.space)
    table["policy"] = [policy_text(family.parse_candidate(text), separator) for text in analysis.front["candidate"]]
    return table.reset_index(drop=True)


def baseline_table(analysis: Analysis) -> pd.DataFrame:
    columns = {"label": "baseline", "number": "trial", "accuracy": "validation accuracy",
               "test_accuracy": "test accuracy", "latency_ms": "latency (ms)",
               "size_kb": "size (KB)", "dominated_by": "dominated by front trials (validation)"}
    return analysis.baselines[list(columns)].rename(columns=_named(columns, analysis)).reset_index(drop=True)


def timings(analysis: Analysis) -> dict[str, Any]:
    """Trial counts by state and where the time went."""
    trials = analysis.trials
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
    return {key: value for key, value in analysis.run.config.model_dump().items() if key != "space"}


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


def profile_summary(profile: HardwareProfile | None) -> dict[str, Any]:
    """What the run's latencies mean, the settings a deployment must share to see them, and
    the device's capabilities; empty without a profile."""
    if profile is None:
        return {}
    return {"latency_ms": prediction_line(profile),
            **{f"deploy with: {key}": value for key, value in profile.deployment().items()},
            "profiled": profile.device.date, "space": profile.space,
            "native weight bits": profile.native_weight_bits,
            "native activation bits": profile.native_activation_bits,
            "activation bits follow weights": profile.activation_bits_follow_weights,
            "native sparsity": ", ".join(profile.native_sparsity) or "none",
            "corrections fitted for": ", ".join(profile.corrections) or "none",
            "LUT entries": len(profile.entries)}


def validation_table(profile: HardwareProfile | None) -> pd.DataFrame:
    """The profile's validation figures, per candidate set, statistic and prediction."""
    return pd.DataFrame(validation_rows(profile) if profile is not None else [])


def selection_note(analysis: Analysis) -> str:
    """How the front was selected and, where the split sizes are known, how far validation can
    tell its models apart: a binomial standard error at the front's best accuracy."""
    images = analysis.run.config.split_images
    if not images or analysis.front.empty:
        return "Selected by validation accuracy; test accuracy measured once on the test split after the search."
    val = images["val"]
    best = min(float(analysis.front["accuracy"].max()), 1.0 - 1.0 / val)  # a perfect score still has an error
    points = 100.0 * math.sqrt(best * (1.0 - best) / val)
    return (f"Selected by validation accuracy ({val} images); test accuracy measured once on the test split "
            f"({images['test']} images) after the search. At the front's best validation accuracy one accuracy "
            f"on {val} images has a standard error of about {points:.1f} points: front models closer than about "
            f"{2 * points:.1f} points are not told apart by validation, and the most accurate of many such "
            "models tends to measure lower on test.")


def verify_note(analysis: Analysis) -> str:
    """What the verify table shows (and how to get it, before the run was verified)."""
    verification = analysis.run.verification
    if verification is None:
        return f"Not measured yet: run 'autocompress verify {analysis.run.path}'."
    tau = "n/a (fewer than 2 models)" if verification.kendall_tau is None else f"{verification.kendall_tau:.3f}"
    return (f"The front measured on {verification.device} ({verification.date}; {verification.timing}), "
            f"against the predicted {verification.latency_label}. Rank agreement of measured vs predicted "
            f"over the front (Kendall tau): {tau}. Flagged: {sum(bool(m.flags) for m in verification.front)} "
            "model(s) measured slower than one predicted slower, or than the float baseline. "
            + verification.offset_note())


def verify_table(analysis: Analysis) -> pd.DataFrame:
    """Measured vs predicted latency of each front model (and the float baseline), as verify measured them."""
    verification = analysis.run.verification
    if verification is None:
        return pd.DataFrame()
    statistic = verification.statistic
    members = list(verification.front)
    if verification.float_baseline and verification.float_baseline.trial not in {m.trial for m in members}:
        members.append(verification.float_baseline)
    return pd.DataFrame([{
        "trial": m.trial, "baseline": m.label,
        f"predicted {statistic} (ms)": round(m.predicted_ms[statistic], 4),
        "measured median (ms)": round(m.measured_ms["median"], 4), "measured min (ms)": round(m.measured_ms["min"], 4),
        "error %": round(m.error_pct(statistic), 1), "flags": "; ".join(m.flags),
    } for m in members])
