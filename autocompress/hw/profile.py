"""Hardware profile: a device's latency lookup table, as versioned JSON in ``hw_profiles/``.

A profile says what the device runs natively (weight and activation bit-widths with real
kernels, which sparsity kind speeds anything up), holds one LUT entry per op signature
(median and minimum latency, spread, sample count) and the validation figures of the
``profile`` run that made it. It predicts two statistics of a network's latency, each with
its own correction fitted against whole networks timed the same way: the typical one
(``median``) and the best case (``min``); ``statistic`` names the one shown by default.
Reading one validates it (and brings a schema 1 file up to date); a bad file fails with one
line naming it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from autocompress.errors import UserInputError
from autocompress.files import write_atomic
from autocompress.hw.bundle_runner import clock_name, host_cpu
from autocompress.inputs import load_json, validated

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
Bits = Annotated[int, Field(ge=1, le=32)]
DEVICE_NAME = r"^[A-Za-z0-9_.-]+$"
Statistic = Literal["median", "min"]
STATISTICS: tuple[Statistic, ...] = ("median", "min")
MEANING = {"median": "typical", "min": "best case"}
"""What each statistic of repeated timed calls tells a user."""
DISTRIBUTIONS = {"search": "drawn as the search draws them (per-group policies, end layers held)",
                 "random": "random per-layer policies",
                 "uniform": "the search's baselines, then their policies on random architectures"}
"""The validation's candidate sets, by how their candidates were drawn."""


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
    """Latency of one op signature: median and minimum of ``samples`` timed runs, spread = IQR,
    and whether the kernel, timed alone, converted its input into and its output out of the
    runtime's blocked layout (ONNX Runtime's NCHWc ``ReorderInput`` / ``ReorderOutput``, read
    from the graph it optimised): between two kernels that both did, a whole network keeps
    the tensor blocked and runs neither conversion (``predict.elided_reorders``)."""

    median_ms: float = Field(gt=0.0)
    min_ms: float = Field(gt=0.0)
    spread_ms: float = Field(ge=0.0)
    samples: int = Field(ge=1)
    reorders_input: bool = False
    reorders_output: bool = False


TIMING_FIELDS = ("median_ms", "min_ms", "spread_ms", "samples")
"""The fields of an ``Entry`` a timing gives (the layout ones come from the optimised graph)."""


class Correction(_Strict):
    """Linear correction of the LUT sum:
    ms = intercept + per_lut_ms * sum + per_op * ops + per_transition * float<->int8 switches
    + per_elided_reorder * million elements whose layout reorders the entries timed and the
    network does not run + per_best_case_lut_ms * sum of the entries' minima.

    It absorbs what a sum of isolated op timings misses: each isolated op pays the
    runtime's per-call overhead once, a whole network pays it once in total; a kernel
    timed alone converts its tensors into and out of a blocked layout that a chain of
    such kernels keeps; and caches are warmer or colder in a network than alone.

    The best-case sum is a term of the typical (median) correction only (0 for the minimum's
    own): an op's median, timed alone for a few seconds, carries whatever slow spell the
    machine had then, its minimum does not, so the minima rank whole networks' medians
    better than the medians do. Refitted on the stored validation networks of seven CPU
    tables, weighing both sums changed the median's cross-validated Kendall tau on the
    search's candidates by -0.001 to +0.044 and never lowered the share within 10%.
    """

    WEIGHTS: ClassVar[tuple[str, ...]] = ("per_lut_ms", "per_op", "per_transition", "per_elided_reorder",
                                          "per_best_case_lut_ms")
    """The weights of a network's terms (``predict.correction_terms``), in their order."""

    intercept: float
    per_lut_ms: float
    per_op: float
    per_transition: float
    per_elided_reorder: float = 0.0
    per_best_case_lut_ms: float = 0.0

    def apply(self, terms: Sequence[float]) -> float:
        """The corrected latency of a network with ``terms`` (in ``WEIGHTS`` order), >= 0."""
        return max(0.0, self.intercept + sum(getattr(self, w) * t for w, t in zip(self.WEIGHTS, terms, strict=True)))


class Figures(_Strict):
    mape: float
    within_10: float
    kendall_tau: float


class StatisticFigures(_Strict):
    """One statistic's prediction vs measurement over one candidate set.

    ``corrected`` figures are cross-validated (each candidate predicted by a correction
    fitted without it); ``flops_tau`` is the rank correlation FLOPs alone would give.
    """

    raw: Figures
    corrected: Figures
    flops_tau: float
    measured_ms: list[float] = Field(default_factory=list, description="each candidate, end to end")
    lut_ms: list[float] = Field(default_factory=list, description="each candidate's raw LUT sum")
    corrected_ms: list[float] = Field(default_factory=list,
                                      description="each candidate's cross-validated corrected prediction")


class CandidateSet(_Strict):
    """The candidates of one distribution (``DISTRIBUTIONS``) and their figures per statistic."""

    candidates: int
    statistics: dict[Statistic, StatisticFigures]


class Validation(_Strict):
    """Prediction vs end-to-end measurement (interleaved rounds) of candidate networks, per
    candidate set (``DISTRIBUTIONS``; a profile made before the ``uniform`` set has the other
    two) and per statistic."""

    sets: dict[Literal["search", "random", "uniform"], CandidateSet]
    seconds: float


class HardwareProfile(_Strict):
    schema_version: Literal[2]
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
    statistic: Statistic = Field(description=(
        "the statistic predictions show by default: 'median' (typical, what a person timing the "
        "model sees) or 'min' (best case, the reproducible one on a machine shared with other work)"))
    corrections: dict[Statistic, Correction] = Field(
        default_factory=dict, description="per statistic, fitted against whole networks' figures of it")
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

    @model_validator(mode="after")
    def _default_is_predicted(self) -> HardwareProfile:
        if self.statistic not in self.predicts:
            raise ValueError(f"statistic is {self.statistic!r} but the profile has corrections for "
                             f"{', '.join(self.corrections)} only")
        return self

    @property
    def predicts(self) -> tuple[Statistic, ...]:
        """The statistics this profile can predict: those with a fitted correction, or every one
        when none is fitted (a modelled device, or a table not validated)."""
        return tuple(s for s in STATISTICS if s in self.corrections) if self.corrections else STATISTICS

    def latency(self, key: str, statistic: Statistic | None = None) -> float:
        """The table's latency for a signature key (ms), by ``statistic`` (default: the profile's)."""
        entry = self.entries[key]
        return entry.min_ms if (statistic or self.statistic) == "min" else entry.median_ms

    def latency_label(self, statistic: Statistic | None = None) -> str:
        """How a predicted latency is named wherever it is shown, e.g.
        ``median, ms per batch of 32``."""
        return f"{statistic or self.statistic}, ms per batch of {self.device.batch_size}"

    def deployment(self) -> dict[str, str]:
        """What a deployment must share with the profiling run to see the predicted latency."""
        device = self.device
        return {"device": f"{device.name} ({device.kind}, {device.runtime})",
                "threads": str(device.threads), "batch size": str(device.batch_size),
                "clock": device.clock, "host CPU": device.host_cpu, **device.settings}


def load_profile(path: str | Path) -> HardwareProfile:
    """Read and validate a profile; any problem is a one-line ``UserInputError``."""
    path = Path(path)
    data = load_json(path, "hardware profile")
    if not isinstance(data, dict):
        raise UserInputError(f"{path}: expected a JSON object, got {type(data).__name__}")
    version = data.get("schema_version")
    if version not in READABLE_VERSIONS:
        raise UserInputError(f"{path}: schema_version is {version!r}, this autocompress reads "
                             f"{', '.join(map(str, READABLE_VERSIONS))}: re-run 'autocompress profile' "
                             "to rebuild it")
    return validated(HardwareProfile, from_schema_1(data) if version == 1 else data, path)


def from_schema_1(data: dict) -> dict:
    """A schema 1 profile in schema 2's form, without re-measuring anything.

    Schema 1 fitted one correction, for its one ``statistic``, on random per-layer candidates
    only; it becomes that statistic's correction and the ``random`` candidate set, and stays
    the statistic shown by default (the other one has no correction until the device is
    profiled again).
    """
    old = dict(data)
    correction = old.pop("correction", None)
    validation = old.pop("validation", None)
    statistic = old.get("statistic")
    upgraded = old | {"schema_version": 2,
                      "corrections": {statistic: correction} if correction is not None else {}}
    if isinstance(validation, dict):
        figures = {key: validation[key] for key in ("raw", "corrected", "flops_tau", "measured_ms",
                                                    "lut_ms", "corrected_ms") if key in validation}
        upgraded["validation"] = {"seconds": validation.get("seconds"), "sets": {"random": {
            "candidates": validation.get("candidates"), "statistics": {statistic: figures}}}}
    return upgraded


def write_json_atomic(path: Path, data: object) -> None:
    """Write ``data`` as JSON so that ``path`` never holds a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def save_profile(profile: HardwareProfile, path: Path) -> None:
    write_json_atomic(path, profile.model_dump(mode="json"))
