"""``verify.json`` in a run folder: each front model's measured vs predicted latency."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from autocompress.hw.profile import Statistic
from autocompress.inputs import load_json, validated

FILE = "verify.json"


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


def read(folder: Path) -> Verification | None:
    """The run folder's verify.json, checked (None if the run was not verified)."""
    path = Path(folder) / FILE
    return validated(Verification, load_json(path, "verify file"), path) if path.is_file() else None
