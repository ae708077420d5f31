"""Per-unit sensitivity: how much the base network suffers with one search unit compressed.

For each search unit (a layer group, or a layer with ``search.granularity: layer``) and each
value of each of its knobs (weight bits, activation bits, sparsity, rank) that can lower the
unit's latency on the device (``unit_choices.py``), every other knob and unit uncompressed,
the validation loss and accuracy of the candidate built from the base as a trial's cheap
fidelity is (inherited weights, batch norm recalibrated, activations calibrated, no
fine-tune). The sensitivity-based allocator (``allocator.py``) adds these up,
as HAWQ-V3 and AIMET's mixed precision do, to choose per unit under a latency budget.

Measured once per run and kept in its folder (``sensitivity.json``); a run that learns from
earlier runs on the same base network takes their probes instead of measuring them again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from autocompress.candidate import Candidate
from autocompress.run.files import RunFiles
from autocompress.run.run import Run
from autocompress.run.sensitivity import ProbeResult, SensitivityTable
from autocompress.search.params import decode
from autocompress.search.unit_choices import UnitChoices
from autocompress.space import SearchSpace

log = logging.getLogger(__name__)

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


def measure(space: SearchSpace, choices: UnitChoices, probe: Probes, base_sha256: str,
            earlier: list[SensitivityTable] = ()) -> SensitivityTable:
    """The sensitivity table of the settings that pay on the device (``choices.paying``), its
    probes taken from ``earlier`` tables (same base) where they hold them and measured with
    ``probe`` otherwise; candidates that decode alike are measured once."""
    float_params = choices.float_params
    known = {result.key: result for table in earlier for result in table.probes}
    clock = time.perf_counter()
    settings = choices.paying
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


def run_table(run: Run, choices: UnitChoices, probe: Probes) -> SensitivityTable:
    """The run's sensitivity table: read from its folder, or measured (reusing the probes of the
    runs it learns from, where they share its base network) and written there."""
    path = run.files.sensitivity
    if path.is_file():
        return SensitivityTable.read(path)
    digest = file_digest(run.files.base)
    table = measure(run.space, choices, probe, digest, earlier_tables(map(Path, run.config.learn_from), digest))
    table.write(path)
    return table
