"""Reading a run folder (``results/<run>/``), finished or still in progress.

The search rewrites ``trials.csv`` as trials finish; a read that races a rewrite is
retried, and a run with no trials yet reads as an empty table.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from autocompress.errors import UserInputError
from autocompress.search.record import COLUMNS
from autocompress.space import SearchSpace, parse_space

RESULTS_DIR = Path("results")
TRIAL_COLUMNS = COLUMNS
NUMERIC_COLUMNS = ["accuracy", "test_accuracy", "accuracy_before", "latency_ms", "size_kb", "duration_s",
                   "finetune_s"]


def resolve_run(run: str | Path) -> Path:
    """A run folder given as a path, or as a name under ``results/``."""
    for candidate in (Path(run), RESULTS_DIR / str(run)):
        if (candidate / "config.json").is_file():
            return candidate
    raise UserInputError(f"{run}: not a run folder (no config.json there or under {RESULTS_DIR}/)")


def _read_csv(path: Path, attempts: int = 5) -> pd.DataFrame:
    """``path`` as a table; empty (with the contract's columns) if the run has none yet."""
    for attempt in range(attempts):
        if not path.is_file():
            return pd.DataFrame(columns=TRIAL_COLUMNS)
        try:
            table = pd.read_csv(path, keep_default_na=False, na_values=[""])
            break
        except pd.errors.EmptyDataError:
            return pd.DataFrame(columns=TRIAL_COLUMNS)
        except pd.errors.ParserError:
            if attempt == attempts - 1:
                raise UserInputError(f"{path}: unreadable CSV (is it being rewritten?)") from None
            time.sleep(0.2)
    for column in TRIAL_COLUMNS:
        if column not in table:
            table[column] = pd.NA
    for column in NUMERIC_COLUMNS:
        table[column] = pd.to_numeric(table[column], errors="coerce")
    table["label"] = table["label"].fillna("").astype(str)
    return table.sort_values("number").reset_index(drop=True)


@dataclass(frozen=True)
class Run:
    """One run folder: its frozen config, its trials so far, its device profile."""

    path: Path
    config: dict
    trials: pd.DataFrame
    profile: dict

    @classmethod
    def load(cls, run: str | Path) -> Run:
        path = resolve_run(run)
        try:
            config = json.loads((path / "config.json").read_text())
        except json.JSONDecodeError as error:
            raise UserInputError(f"{path / 'config.json'}: not valid JSON ({error})") from None
        profile_file = path / "profile.json"
        profile = json.loads(profile_file.read_text()) if profile_file.is_file() else {}
        return cls(path, config, _read_csv(path / "trials.csv"), profile)

    @property
    def name(self) -> str:
        return str(self.config.get("run", self.path.name))

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

