"""Hardware profile: a device's latency lookup table, as versioned JSON in ``hw_profiles/``.

A profile says what the device runs natively (weight and activation bit-widths with real
kernels, which sparsity kind speeds anything up), holds one LUT entry per op signature
(median latency, spread, sample count) and the validation figures of the ``profile`` run
that made it. Reading one validates it; a bad file fails with one line naming it.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from autocompress.errors import UserInputError
from autocompress.hw.bundle_runner import clock_name, host_cpu
from autocompress.inputs import load_json, validated

SCHEMA_VERSION = 1
Bits = Annotated[int, Field(ge=1, le=32)]
DEVICE_NAME = r"^[A-Za-z0-9_.-]+$"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Device(_Strict):
    name: str = Field(pattern=DEVICE_NAME)
    kind: Literal["measured", "modelled"]
    runtime: str
    threads: int = Field(ge=1)
    clock: Literal["thread-cpu", "wall"] = Field(
        description="thread-cpu: CPU time of the calling thread (one thread), else wall time")
    batch_size: int = Field(ge=1)
    host_cpu: str
    host_threads: int = Field(ge=1)
    date: str
    settings: dict[str, str] = Field(default_factory=dict,
                                     description="runtime versions and settings (allocator, opset)")

    @classmethod
    def on_this_host(cls, name: str, kind: str, runtime: str, threads: int,
                     batch_size: int) -> Device:
        """A device record stamped with this machine's CPU model, thread count and date."""
        return cls(name=name, kind=kind, runtime=runtime, threads=threads,
                   clock=clock_name(threads), batch_size=batch_size, host_cpu=host_cpu(),
                   host_threads=os.cpu_count() or 1, date=utc_now())


class Entry(_Strict):
    """Latency of one op signature: median and minimum of ``samples`` timed runs, spread = IQR."""

    median_ms: float = Field(gt=0.0)
    min_ms: float = Field(gt=0.0)
    spread_ms: float = Field(ge=0.0)
    samples: int = Field(ge=1)


class Correction(_Strict):
    """Linear correction of the LUT sum:
    ms = intercept + per_lut_ms * sum + per_op * ops + per_transition * float<->int8 switches.

    It absorbs what a sum of isolated op timings misses: each isolated op pays the
    runtime's per-call overhead once, a whole network pays it once in total, and caches
    are warmer or colder in a network than alone.
    """

    intercept: float
    per_lut_ms: float
    per_op: float
    per_transition: float


class Figures(_Strict):
    mape: float
    within_10: float
    kendall_tau: float


class Validation(_Strict):
    """Prediction vs end-to-end measurement of random candidates.

    ``corrected`` figures are cross-validated (each candidate predicted by a correction
    fitted without it); ``flops_tau`` is the rank correlation FLOPs alone would give.
    """

    candidates: int
    raw: Figures
    corrected: Figures
    flops_tau: float
    seconds: float
    measured_ms: list[float] = Field(default_factory=list, description="each candidate, end to end")
    lut_ms: list[float] = Field(default_factory=list, description="each candidate's raw LUT sum")
    corrected_ms: list[float] = Field(default_factory=list,
                                      description="each candidate's cross-validated corrected prediction")


class HardwareProfile(_Strict):
    schema_version: Literal[1]
    device: Device
    space: str = Field(description="search space file the table was made for")
    native_weight_bits: list[Bits] = Field(min_length=1)
    native_activation_bits: list[Bits] = Field(min_length=1)
    activation_bits_follow_weights: bool = Field(
        description="a layer's activations run at its weights' kernel precision (CPU int8)")
    native_sparsity: list[Literal["channel", "unstructured"]]
    model: dict[str, float | str] = Field(default_factory=dict,
                                          description="formula and constants of a modelled device")
    entries: dict[str, Entry]
    statistic: Literal["median", "min"] = Field(description=(
        "which figure of an entry (and of a measured network) latency means: 'min' is the "
        "reproducible one on a machine shared with other work, 'median' the typical one"))
    correction: Correction | None = None
    validation: Validation | None = None
    profiling_seconds: float = 0.0

    @model_validator(mode="after")
    def _kind_matches_origin(self) -> HardwareProfile:
        """A modelled device has a modelled runtime and the formula's constants; a measured one neither."""
        from autocompress.hw.runtimes import runtime_named, runtime_names

        names = runtime_names()
        if self.device.runtime not in names:
            raise ValueError(f"device.runtime {self.device.runtime!r} is unknown (allowed: {', '.join(names)})")
        modelled = self.device.kind == "modelled"
        if modelled != runtime_named(self.device.runtime).modelled:
            raise ValueError(f"device.kind is {self.device.kind!r} but runtime {self.device.runtime!r} is "
                             f"{'not ' if modelled else ''}a modelled one")
        if modelled != bool(self.model):
            raise ValueError(f"device.kind is {self.device.kind!r} but the profile "
                             f"{'has no' if modelled else 'has a'} model formula ('model')")
        return self

    @property
    def measured(self) -> bool:
        return self.device.kind == "measured"

    def latency(self, key: str) -> float:
        """The table's latency for a signature key, by the profile's statistic (ms)."""
        entry = self.entries[key]
        return entry.min_ms if self.statistic == "min" else entry.median_ms


def load_profile(path: str | Path) -> HardwareProfile:
    """Read and validate a profile; any problem is a one-line ``UserInputError``."""
    path = Path(path)
    data = load_json(path, "hardware profile")
    if not isinstance(data, dict):
        raise UserInputError(f"{path}: expected a JSON object, got {type(data).__name__}")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UserInputError(f"{path}: schema_version is {version!r}, this autocompress reads "
                             f"{SCHEMA_VERSION}: re-run 'autocompress profile' to rebuild it")
    return validated(HardwareProfile, data, path)


def write_json_atomic(path: Path, data: object) -> None:
    """Write ``data`` as JSON so that ``path`` never holds a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


def save_profile(profile: HardwareProfile, path: Path) -> None:
    write_json_atomic(path, profile.model_dump(mode="json"))
