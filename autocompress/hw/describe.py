"""A profile's prediction in words: which statistic it predicts, the settings a deployment
must share to see it, and its validation figures as rows (for ``profile``'s output and the
report)."""

from __future__ import annotations

from autocompress.hw.profile import DISTRIBUTIONS, MEANING, HardwareProfile


def prediction_line(profile: HardwareProfile) -> str:
    """E.g. ``latency_ms is the predicted median (typical) latency, ms per batch of 32; also
    predicted: min (best case)``."""
    others = [f"{s} ({MEANING[s]})" for s in profile.predicts if s != profile.statistic]
    also = f"; also predicted: {', '.join(others)}" if others else ""
    return (f"latency_ms is the predicted {profile.statistic} ({MEANING[profile.statistic]}) latency, "
            f"ms per batch of {profile.device.batch_size}{also}")


def deployment_line(profile: HardwareProfile) -> str:
    """The settings a deployment must share with the profiling run, on one line."""
    return "to see it, deploy with the same " + "; ".join(f"{k}: {v}" for k, v in profile.deployment().items())


def validation_rows(profile: HardwareProfile) -> list[dict[str, object]]:
    """One row per candidate set, statistic and predictor (raw LUT sum, corrected), plus the
    rank correlation FLOPs alone would give; empty if the profile was not validated."""
    if profile.validation is None:
        return []
    rows: list[dict[str, object]] = []
    for name in (n for n in DISTRIBUTIONS if n in profile.validation.sets):
        candidate_set = profile.validation.sets[name]
        for statistic, stats in candidate_set.statistics.items():
            for predictor, figures in (("raw LUT sum", stats.raw), ("corrected", stats.corrected)):
                rows.append({"candidates": f"{name} ({candidate_set.candidates}: {DISTRIBUTIONS[name]})",
                             "statistic": statistic, "prediction": predictor,
                             "MAPE %": round(figures.mape, 2), "within +-10 %": round(100 * figures.within_10, 1),
                             "Kendall tau": round(figures.kendall_tau, 3),
                             "FLOPs tau": round(stats.flops_tau, 3)})
    return rows
