"""The trial table (one row per trial) as CSV text, written whole and read back checked."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from pathlib import Path

from autocompress.errors import UserInputError
from autocompress.inputs import read_text
from autocompress.run.trial import COLUMNS, FLOAT_COLUMNS, Kind, State, Trial


def csv_text(trials: Iterable[Trial]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(trial.row() for trial in trials)
    return buffer.getvalue()


def _float(text: str) -> float | None:
    """A measured value; empty or not a number: not measured (as a spreadsheet would read it)."""
    try:
        return float(text) if text != "" else None
    except ValueError:
        return None


def _number(path: Path, text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value.is_integer():
        raise UserInputError(f"{path}: column 'number' holds something other than trial numbers")
    return int(value)


def _enum(path: Path, enum: type[State] | type[Kind], values: set[str], what: str) -> None:
    unknown = values - {member.value for member in enum}
    if unknown:
        allowed = ", ".join(sorted(member.value for member in enum))
        raise UserInputError(f"{path}: unknown trial {what}(s) {sorted(unknown)} (allowed: {allowed})")


def read_trials(path: Path, objectives: list[str],
                parse_candidate: Callable[[str], object] | None = None) -> list[Trial]:
    """The trials in ``path`` by number; none if the run has none yet.

    Checked as read: the columns a reader needs, whole trial numbers, known states and kinds,
    and (with ``parse_candidate``, the run's family's parser) a candidate in every COMPLETE row.
    """
    if not path.is_file():
        return []
    text = read_text(path, "trial table")
    if not text.strip():
        return []
    reader = csv.DictReader(io.StringIO(text))
    absent = [column for column in ["number", "kind", "state", "candidate", *objectives]
              if column not in (reader.fieldnames or [])]
    if absent:
        raise UserInputError(f"{path}: not a trial table, missing columns {absent}")
    rows = list(reader)
    _enum(path, State, {row["state"] for row in rows}, "state")
    _enum(path, Kind, {row["kind"] for row in rows}, "kind")
    trials = []
    for row in rows:
        cells = {name: row.get(name) or "" for name in COLUMNS}
        values = {name: _float(cells[name]) for name in FLOAT_COLUMNS}
        trial = Trial(**cells | values | {"number": _number(path, cells["number"]), "kind": Kind(cells["kind"]),
                                          "state": State(cells["state"])})
        if parse_candidate is not None and trial.state is State.COMPLETE:
            try:
                parse_candidate(trial.candidate)
            except Exception:  # json, key and type errors all mean "not a candidate"
                raise UserInputError(f"{path}: trial {trial.number}: column 'candidate' is not a candidate's "
                                     "JSON") from None
        trials.append(trial)
    return sorted(trials, key=lambda trial: trial.number)
