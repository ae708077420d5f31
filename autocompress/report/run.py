"""Reading a run folder (``results/<run>/``), finished or still in progress.

The search rewrites ``trials.csv`` as trials finish; a read that races a rewrite is
retried, and a run with no trials yet reads as an empty table. Every file is checked as
it is read (config.json against the run's settings, trials.csv against the trial table's
columns and states, profile.json and verify.json against their schemas), and a broken one is
one line naming it.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from autocompress.candidate import Candidate
from autocompress.errors import UserInputError
from autocompress.hw.profile import HardwareProfile, load_profile
from autocompress.inputs import load_json, read_text
from autocompress.models.family import family_of
from autocompress.search.record import COLUMNS as TRIAL_COLUMNS
from autocompress.search.settings import SearchConfig
from autocompress.space import SearchSpace, parse_space
from autocompress.verify import record as verify_record

RESULTS_DIR = Path("results")
STATES = {"COMPLETE", "REJECTED", "PRUNED", "FAIL", "RUNNING"}
NUMERIC_COLUMNS = ["accuracy", "test_accuracy", "accuracy_before", "accuracy_first_epoch", "latency_ms", "size_kb",
                   "duration_s", "finetune_s"]


def resolve_run(run: str | Path) -> Path:
    """A run folder given as a path, or as a name under ``results/``."""
    for candidate in (Path(run), RESULTS_DIR / str(run)):
        if (candidate / "config.json").is_file():
            return candidate
    raise UserInputError(f"{run}: not a run folder (no config.json there or under {RESULTS_DIR}/)")


def _read_csv(path: Path, objectives: list[str], parse_candidate: Callable[[str], Candidate] = Candidate.from_json,
              attempts: int = 5) -> pd.DataFrame:
    """``path`` as a trial table; empty (with the contract's columns) if the run has none yet;
    ``parse_candidate``: the run's model family's (its stages are the family's)."""
    for attempt in range(attempts):
        if not path.is_file():
            return pd.DataFrame(columns=TRIAL_COLUMNS)
        try:
            table = pd.read_csv(io.StringIO(read_text(path, "trial table")), keep_default_na=False, na_values=[""])
            break
        except pd.errors.EmptyDataError:
            return pd.DataFrame(columns=TRIAL_COLUMNS)
        except pd.errors.ParserError:
            if attempt == attempts - 1:
                raise UserInputError(f"{path}: unreadable CSV (is it being rewritten?)") from None
            time.sleep(0.2)
    _check_trials(path, table, objectives, parse_candidate)
    for column in TRIAL_COLUMNS:
        if column not in table:
            table[column] = pd.NA
    for column in NUMERIC_COLUMNS:
        table[column] = pd.to_numeric(table[column], errors="coerce")
    table["label"] = table["label"].fillna("").astype(str)
    return table.sort_values("number").reset_index(drop=True)


def _check_trials(path: Path, table: pd.DataFrame, objectives: list[str],
                  parse_candidate: Callable[[str], Candidate]) -> None:
    """A trial table: the columns a report needs, whole trial numbers, known states, and a
    candidate's JSON in every finished row."""
    needed = ["number", "kind", "state", "candidate", *objectives]
    absent = [column for column in needed if column not in table]
    if absent:
        raise UserInputError(f"{path}: not a trial table, missing columns {absent}")
    numbers = pd.to_numeric(table["number"], errors="coerce")
    if numbers.isna().any() or (numbers % 1 != 0).any():
        raise UserInputError(f"{path}: column 'number' holds something other than trial numbers")
    unknown = set(table["state"].astype(str)) - STATES
    if unknown:
        raise UserInputError(f"{path}: unknown trial state(s) {sorted(unknown)} (allowed: {', '.join(sorted(STATES))})")
    for number, state, text in zip(numbers, table["state"], table["candidate"], strict=True):
        if state != "COMPLETE":
            continue
        try:
            parse_candidate(str(text))
        except Exception:  # json, key and type errors all mean "not a candidate"
            raise UserInputError(f"{path}: trial {int(number)}: column 'candidate' is not a candidate's JSON") from None


@dataclass(frozen=True)
class Run:
    """One run folder: its frozen config, its trials so far, its device profile, for a
    predictor-guided run the accuracy predictor's quality (``predictor.json``) and, once
    ``autocompress verify`` ran, its front measured on the device (``verify.json``)."""

    path: Path
    config: dict
    trials: pd.DataFrame
    profile: HardwareProfile | None
    predictor: dict
    verification: verify_record.Verification | None

    @classmethod
    def load(cls, run: str | Path) -> Run:
        path = resolve_run(run)
        config = SearchConfig.read(path / "config.json")
        profile_file = path / "profile.json"
        profile = load_profile(profile_file) if profile_file.is_file() else None
        predictor_file = path / "predictor.json"
        predictor = load_json(predictor_file, "predictor summary") if predictor_file.is_file() else {}
        if not isinstance(predictor, dict):
            raise UserInputError(f"{predictor_file}: expected a JSON object, got {type(predictor).__name__}")
        family = family_of(parse_space(config.space, path / "config.json"))
        trials = _read_csv(path / "trials.csv", list(config.objectives), family.parse_candidate)
        return cls(path, config.model_dump(), trials, profile, predictor, verify_record.read(path))

    @property
    def name(self) -> str:
        return str(self.config.get("run", self.path.name))

    @property
    def latency_label(self) -> str:
        """The latency column's name where it is shown, e.g. ``latency_ms (median, ms per batch of 32)``."""
        return f"latency_ms ({self.profile.latency_label()})" if self.profile else "latency_ms (ms)"

    @property
    def objectives(self) -> list[str]:
        return list(self.config.get("objectives") or ["accuracy", "latency_ms"])

    @property
    def constraints(self) -> dict[str, float]:
        """Set constraints only, as column -> upper bound."""
        raw = self.config.get("constraints") or {}
        columns = {"max_latency_ms": "latency_ms", "max_size_kb": "size_kb"}
        return {columns[key]: float(value) for key, value in raw.items() if value is not None and key in columns}

    @cached_property
    def space(self) -> SearchSpace:
        return parse_space(self.config["space"], self.path / "config.json")

    @property
    def complete(self) -> pd.DataFrame:
        """Finished trials with every objective measured."""
        done = self.trials[self.trials["state"] == "COMPLETE"]
        return done.dropna(subset=self.objectives)

    @property
    def feasible(self) -> pd.DataFrame:
        """Finished trials that satisfy the run's constraints."""
        table = self.complete
        for column, bound in self.constraints.items():
            table = table[table[column] <= bound]
        return table

