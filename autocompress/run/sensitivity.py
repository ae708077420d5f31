"""A run's sensitivity table: the validation loss and accuracy of the base network with one
search unit compressed by one knob value, as the sensitivity-based allocator reads it."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from autocompress.hw.profile import write_json_atomic
from autocompress.inputs import load_json, validated

ALLOCATOR_LABEL_PREFIX = "sensitivity-ilp@"
"""The label of a trial the sensitivity-based allocator proposed, before its budget (``sensitivity-ilp@0.6``)."""


class Probe(BaseModel):
    """One knob value on one unit, every other unit and knob uncompressed. ``value`` is the
    knob's choice as text (``4``, ``0.5``; sparsity as ``channel:0.5``)."""

    model_config = ConfigDict(frozen=True)

    unit: str
    knob: str
    value: str

    @property
    def key(self) -> tuple[str, str, str]:
        return self.unit, self.knob, self.value


class ProbeResult(Probe):
    loss: float | None
    """None where the task has no loss (a custom task's score alone)."""
    accuracy: float


class SensitivityTable(BaseModel):
    """Measured with inherited weights, recalibrated batch norm and calibrated activations, no
    fine-tune, on the validation split; ``base_sha256`` is the base network file's digest, so a
    run on the same base (``--learn-from``) can reuse the probes."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    base_sha256: str
    float_loss: float | None
    float_accuracy: float
    probes: list[ProbeResult]
    seconds: float = Field(description="wall seconds this run spent measuring its probes")
    reused: int = Field(0, description="probes taken from an earlier run on the same base")

    def loss_increases(self) -> dict[tuple[str, str, str], float]:
        """Each probe's validation loss above the uncompressed network's, by (unit, knob, value);
        for a task without a loss, its score below the uncompressed network's."""
        if self.float_loss is None:
            return {result.key: self.float_accuracy - result.accuracy for result in self.probes}
        return {result.key: result.loss - self.float_loss for result in self.probes}

    def write(self, path: Path) -> None:
        write_json_atomic(path, self.model_dump(mode="json"))

    @classmethod
    def read(cls, path: Path) -> SensitivityTable:
        """A sensitivity file; a broken one is one line naming it."""
        return validated(cls, load_json(path, "sensitivity table"), path)
