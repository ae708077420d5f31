"""Earlier runs' fine-tuned trials, for a new run's accuracy predictor to learn from (``--learn-from``).

A candidate's fine-tuned accuracy depends on the base network, the data and the fine-tune,
not on the device: a search for a second device (or a second search for the first) can start
from everything the earlier runs on the same base measured, as Once-for-All and APQ fit their
accuracy predictors once per supernet on thousands of its subnets. Within one run the
predictor is fitted on 30-60 trials crowded near the front, and ranks a sample of the space
with Kendall tau 0.1-0.4; fitted on some 900-1,500 trials of other runs (random search and
NSGA-II, same base), it ranks that sample at about 0.7 (see ``predictor.PriorInformed``).

The earlier runs are read once, when the run is created: their search and baseline trials
that were fine-tuned, with parameters this run's space can take (a ``--native-only`` run
skips those with other bit-widths), each given its latency under *this* run's profile. They
are frozen into the run folder, so a resumed run learns from exactly
what it started with, whatever became of the earlier folders.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from autocompress.errors import MissingSignaturesError, UserInputError
from autocompress.files import write_atomic
from autocompress.hw.predict import predict
from autocompress.hw.profile import HardwareProfile
from autocompress.inputs import read_text
from autocompress.run.files import RunFiles
from autocompress.run.run import Run
from autocompress.run.trial import Kind, State
from autocompress.search.params import search_params, suggest_candidate
from autocompress.space import SearchSpace

COLUMNS = ["run", "number", "params", "latency_ms", "accuracy"]
LEARNED_KINDS = (Kind.SEARCH, Kind.BASELINE)
"""Trial kinds whose fine-tuned accuracy is learnt from (a ``duplicate`` repeats another trial)."""


@dataclass(frozen=True)
class PriorTrials:
    """One row per fine-tuned trial of an earlier run: its parameters, its latency under this
    run's profile, its fine-tuned validation accuracy and where it comes from."""

    runs: list[str]
    numbers: list[int]
    params: list[dict[str, Any]]
    latency_ms: list[float]
    accuracy: list[float]

    @classmethod
    def of(cls, rows: Sequence[tuple[str, int, dict[str, Any], float, float]]) -> PriorTrials:
        """From rows of (run, number, params, latency_ms, accuracy)."""
        runs, numbers, params, latency_ms, accuracy = ([row[i] for row in rows] for i in range(len(COLUMNS)))
        return cls(runs, numbers, params, latency_ms, accuracy)

    def write(self, path: Path) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in zip(self.runs, self.numbers, self.params, self.latency_ms, self.accuracy, strict=True):
            run, number, params, latency, accuracy = row
            writer.writerow([run, number, json.dumps(params, sort_keys=True), repr(latency), repr(accuracy)])
        write_atomic(path, buffer.getvalue())

    @classmethod
    def read(cls, path: Path, choices: dict[str, list]) -> PriorTrials:
        """The frozen table of a run folder; a broken row is one line naming the file and row."""
        rows = list(csv.DictReader(io.StringIO(read_text(path, "table of earlier runs' trials"))))
        read = []
        for line, row in enumerate(rows, start=2):
            try:
                params = json.loads(row["params"])
                latency, accuracy = float(row["latency_ms"]), float(row["accuracy"])
                if not isinstance(params, dict) or set(params) != set(choices) or any(
                        value not in choices[name] for name, value in params.items()):
                    raise ValueError("params are not this run's search parameters")
                if not (math.isfinite(latency) and latency > 0 and 0 <= accuracy <= 1):
                    raise ValueError("latency_ms must be > 0 and accuracy within 0..1")
                read.append((row["run"], int(row["number"]), params, latency, accuracy))
            except (KeyError, TypeError, ValueError) as error:
                raise UserInputError(f"{path}: line {line}: {error}") from None
        return cls.of(read)


def collect(folders: Sequence[Path], space: SearchSpace, profile: HardwareProfile, base: Path,
            finetune_epochs: int) -> PriorTrials:
    """The fine-tuned trials of the runs in ``folders`` that a run of ``space`` on ``profile``,
    with base network file ``base`` and ``finetune_epochs``, can learn from. Each folder must
    be a run on the same base with the same fine-tune and search parameters (one line naming
    ``--learn-from`` and the folder otherwise); nothing is written to it."""
    choices = search_params(space)
    base_bytes = base.read_bytes() if base.is_file() else None
    collected = []
    for folder in folders:
        usable = 0
        for number, params, accuracy in _fine_tuned_trials(folder, choices, base_bytes, finetune_epochs):
            if any(value not in choices[name] for name, value in params.items()):
                continue  # a bit-width or kind this run's space does not offer (--native-only)
            try:
                latency = predict(suggest_candidate(space, lambda name, _choices, chosen=params: chosen[name]),
                                  profile, space)
            except MissingSignaturesError:
                continue
            collected.append((folder.name, number, params, latency, accuracy))
            usable += 1
        if not usable:
            raise UserInputError(f"--learn-from {folder}: no fine-tuned trial with parameters this run's space "
                                 "takes (and ops the profile has entries for)")
    return PriorTrials.of(collected)


def _fine_tuned_trials(folder: Path, choices: dict[str, list], base_bytes: bytes | None,
                       finetune_epochs: int) -> list[tuple[int, dict[str, Any], float]]:
    """(number, params, fine-tuned accuracy) of the run in ``folder``, once it is checked to
    share this run's base network, fine-tune and search parameters."""
    where = f"--learn-from {folder}"
    files = RunFiles(folder)
    if not files.config.is_file() or not files.database.is_file():
        raise UserInputError(f"{where}: not a search run folder ({files.config.name} or {files.database.name} "
                             "missing)")
    run = Run.open(folder)
    base_file = run.files.base
    if base_bytes is None or not base_file.is_file() or base_file.read_bytes() != base_bytes:
        raise UserInputError(f"{where}: searched another base network than this run's (its {base_file.name} "
                             "differs, or this space's base is not trained yet); only runs on the same base can be "
                             "learnt from")
    config = run.config
    epochs = run.space.training.finetune_epochs if config.finetune_epochs is None else config.finetune_epochs
    if epochs != finetune_epochs:
        raise UserInputError(f"{where}: fine-tuned its trials for {epochs} epochs, this run for {finetune_epochs}")
    trials = [t for t in run.stored_trials() if t.state == TrialState.COMPLETE
              and t.user_attrs.get("state") == State.COMPLETE and t.user_attrs.get("kind") in LEARNED_KINDS]
    if trials and set(trials[0].params) != set(choices):
        raise UserInputError(f"{where}: its search parameters are not this space's (another network or layer "
                             "grouping)")
    return [(t.number, dict(t.params), float(t.user_attrs["accuracy"])) for t in trials]


def read_prior(run: Run) -> PriorTrials | None:
    """The earlier runs' trials frozen into the run folder, if the run learns from any."""
    if not run.config.learn_from:
        return None
    path = run.files.prior_trials
    if not path.is_file():
        raise UserInputError(f"{path}: missing; the run learns from earlier runs "
                             f"({', '.join(run.config.learn_from)}) and keeps their trials there")
    return PriorTrials.read(path, search_params(run.space))
