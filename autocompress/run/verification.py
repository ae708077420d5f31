"""A run's front measured on its device: each front model's measured vs predicted latency."""

from __future__ import annotations

import statistics

from pydantic import BaseModel, ConfigDict, Field

from autocompress.hw.profile import Statistic


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class MeasuredModel(_Strict):
    """One model's latency (ms per batch), predicted and measured, by statistic."""

    trial: int
    label: str = Field(description="baseline label, empty for a searched candidate")
    predicted_ms: dict[Statistic, float]
    measured_ms: dict[Statistic, float]
    flags: list[str] = Field(default_factory=list,
                             description="measured slower than a model it was predicted to beat, or than float")

    def error_pct(self, statistic: Statistic) -> float:
        """Prediction error of ``statistic`` in % of the measurement (negative: predicted too fast)."""
        measured = self.measured_ms[statistic]
        return 100.0 * (self.predicted_ms[statistic] - measured) / measured


class Verification(_Strict):
    """The front of a run measured on its profile's runtime, as validation measures networks."""

    run: str
    date: str
    device: str
    statistic: Statistic = Field(description="the statistic compared (the profile's default)")
    latency_label: str
    deployment: dict[str, str]
    timing: str
    front: list[MeasuredModel]
    float_baseline: MeasuredModel | None
    kendall_tau: float | None = Field(description="rank agreement of measured vs predicted over the front")

    def measured_models(self) -> list[MeasuredModel]:
        """The front's models, then the float baseline (if measured)."""
        return [*self.front, *([self.float_baseline] if self.float_baseline else [])]

    def measured_over_predicted(self) -> tuple[float, float, float]:
        """Median, lowest and highest ratio of measured to predicted latency (the compared
        statistic) over every measured model, the float baseline included."""
        ratios = [m.measured_ms[self.statistic] / m.predicted_ms[self.statistic] for m in self.measured_models()]
        return statistics.median(ratios), min(ratios), max(ratios)

    def offset_note(self) -> str:
        """One sentence on the offset the models share: a machine measured faster or slower than
        when (or where) its profile was measured shifts every model alike, which moves no
        ranking but every absolute figure."""
        median, low, high = self.measured_over_predicted()
        return (f"Measured / predicted {self.statistic} latency over {len(self.measured_models())} model(s): "
                f"median {median:.2f}, range {low:.2f}-{high:.2f}. An offset all models share moves no ranking; "
                "it is this machine now against the table (its load, clock, or a table measured at another "
                "time): re-measure with 'autocompress profile' before quoting absolute latencies.")

