"""Per-unit sensitivity: how much the base network suffers with one search unit compressed.

For each search unit (a layer group, or a layer with ``search.granularity: layer``) and each
value of each of its knobs (weight bits, activation bits, sparsity, rank), every other knob
and unit uncompressed, the validation loss and accuracy of the candidate built from the base
as a trial's cheap fidelity is (inherited weights, batch norm recalibrated, activations
calibrated, no fine-tune). The sensitivity-based allocator (``allocator.py``) adds these up,
as HAWQ-V3 and AIMET's mixed precision do, to choose per unit under a latency budget.

Measured once per run and kept in its folder (``sensitivity.json``); a run that learns from
earlier runs on the same base network takes their probes instead of measuring them again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autocompress.candidate import FLOAT_BITS, Candidate
from autocompress.run.files import RunFiles
from autocompress.run.run import Run
from autocompress.run.sensitivity import Probe, ProbeResult, SensitivityTable
from autocompress.search.params import baseline_params, decode, unit_knobs
from autocompress.space import SearchSpace

log = logging.getLogger(__name__)

SPARSITY = "sparsity"
"""The knob name of a sparsity probe: its value is ``kind:amount`` (the two parameters together)."""


@dataclass(frozen=True)
class UnitSetting:
    """A probe and the unit's search parameters that set it."""

    probe: Probe
    params: dict[str, Any]


def uncompressed_params(space: SearchSpace) -> dict[str, Any] | None:
    """The search parameters of the base network uncompressed (None if the space has no float choice)."""
    return baseline_params(space, "float")


def knob_settings(unit: str, knobs: dict[str, list]) -> list[UnitSetting]:
    """Every compressing value of every knob of ``unit`` alone, as probes with their parameters."""
    settings = [UnitSetting(Probe(unit=unit, knob=knob, value=str(value)), {f"{unit}.{knob}": value})
                for knob, uncompressed in (("wbits", FLOAT_BITS), ("abits", FLOAT_BITS), ("rank", 1.0))
                for value in knobs.get(knob, []) if value != uncompressed]
    settings += [UnitSetting(Probe(unit=unit, knob=SPARSITY, value=f"{kind}:{amount}"),
                             {f"{unit}.sparsity_kind": kind, f"{unit}.sparsity": amount})
                 for kind in knobs.get("sparsity_kind", []) for amount in knobs.get("sparsity", []) if amount > 0]
    return settings


def probe_settings(space: SearchSpace) -> list[UnitSetting]:
    """Every probe of the space, unit by unit."""
    return [setting for unit, knobs in unit_knobs(space).items() for setting in knob_settings(unit, knobs)]


Probes = Callable[[list[Candidate]], list[tuple[float | None, float]]]
"""Candidates -> their validation loss (None for a task without one) and score before any fine-tune
(the search's workers)."""


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def earlier_tables(folders: Iterable[Path], base_sha256: str) -> list[SensitivityTable]:
    """The sensitivity tables of earlier runs measured on the same base network."""
    tables = []
    for folder in folders:
        path = RunFiles(Path(folder)).sensitivity
        if path.is_file():
            table = SensitivityTable.read(path)
            if table.base_sha256 == base_sha256:
                tables.append(table)
    return tables


def measure(space: SearchSpace, probe: Probes, base_sha256: str,
            earlier: list[SensitivityTable] = ()) -> SensitivityTable:
    """The space's sensitivity table, its probes taken from ``earlier`` tables (same base) where
    they hold them and measured with ``probe`` otherwise; candidates that decode alike are
    measured once."""
    float_params = uncompressed_params(space)
    if float_params is None:
        raise ValueError("the space offers no uncompressed (32-bit) choice to measure sensitivity against")
    known = {result.key: result for table in earlier for result in table.probes}
    clock = time.perf_counter()
    settings = probe_settings(space)
    to_measure = {s.probe.key: decode(space, float_params | s.params) for s in settings if s.probe.key not in known}
    uncompressed = decode(space, float_params)
    candidates = {c.hash: c for c in [*to_measure.values(), *([] if earlier else [uncompressed])]}
    measured = dict(zip(candidates, probe(list(candidates.values())), strict=True))
    float_loss, float_accuracy = ((earlier[0].float_loss, earlier[0].float_accuracy) if earlier
                                  else measured[uncompressed.hash])
    results = [known[key] if key in known else ProbeResult(unit=key[0], knob=key[1], value=key[2],
                                                           loss=measured[to_measure[key].hash][0],
                                                           accuracy=measured[to_measure[key].hash][1])
               for key in (setting.probe.key for setting in settings)]
    reused = len(settings) - len(to_measure)
    seconds = time.perf_counter() - clock
    log.info("sensitivity: %d probes, %d measured in %.1f s, %d from earlier runs; uncompressed loss %s, "
             "score %.4f", len(results), len(measured), seconds, reused, float_loss, float_accuracy)
    return SensitivityTable(base_sha256=base_sha256, float_loss=float_loss, float_accuracy=float_accuracy,
                            probes=results, seconds=round(seconds, 3), reused=reused)


def run_table(run: Run, probe: Probes) -> SensitivityTable:
    """The run's sensitivity table: read from its folder, or measured (reusing the probes of the
    runs it learns from, where they share its base network) and written there."""
    path = run.files.sensitivity
    if path.is_file():
        return SensitivityTable.read(path)
    digest = file_digest(run.files.base)
    table = measure(run.space, probe, digest, earlier_tables(map(Path, run.config.learn_from), digest))
    table.write(path)
    return table
