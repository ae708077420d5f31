"""The run folder ``results/<run>/``: its files, its lock, and atomic table writes."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import optuna
from sqlalchemy import event

from autocompress.errors import UserInputError
from autocompress.files import write_atomic
from autocompress.inputs import load_json, unreadable
from autocompress.report.pareto import pareto_mask
from autocompress.search.record import COLUMNS
from autocompress.search.settings import Constraints


def _csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def front_rows(rows: list[dict], objectives: list[str], constraints: Constraints) -> list[dict]:
    """Feasible COMPLETE rows on the Pareto front; one row per candidate (the first tried).

    A reference baseline is measured even if it breaks a constraint; then it is not feasible.
    """
    first_of: dict[str, dict] = {}
    for row in sorted(rows, key=lambda r: r["number"]):
        feasible = all(v <= 0 for v in constraints.violations(float(row["latency_ms"] or 0),
                                                               float(row["size_kb"] or 0)).values())
        if row["state"] == "COMPLETE" and feasible:
            first_of.setdefault(row["candidate_hash"], row)
    unique = list(first_of.values())
    if not unique:
        return []
    points = np.array([[-float(row[name]) if name == "accuracy" else float(row[name]) for name in objectives]
                       for row in unique])
    mask = pareto_mask(points)
    return [row for row, keep in zip(unique, mask, strict=True) if keep]


class RunFolder:
    """Paths of one run's files; ``lock()`` keeps a second driver out while one runs."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.config = self.path / "config.json"
        self.space = self.path / "space.yaml"
        self.profile = self.path / "profile.json"
        self.base = self.path / "base.pt"
        self.database = self.path / "study.db"
        self.trials_csv = self.path / "trials.csv"
        self.pareto_csv = self.path / "pareto.csv"
        self.models = self.path / "models"
        self.log = self.path / "search.log"
        self.ray_processes = self.path / "ray_processes.json"
        self.test_accuracy = self.path / "test_accuracy.json"
        self.prior_trials = self.path / "prior_trials.csv"

    @property
    def storage_url(self) -> str:
        return f"sqlite:///{self.database.resolve()}"

    def open_storage(self) -> optuna.storages.RDBStorage:
        """The run's Optuna storage: study.db in SQLite's WAL mode with ``synchronous=NORMAL``.

        Why: a trial takes some 70 small transactions (its parameters, attributes, result),
        and with SQLite's defaults each waits for the disk; measured here, asking and
        sampling one trial took 0.35 s of the driver's time, a worker idle all along, and
        0.12 s in WAL mode. WAL with NORMAL keeps every commit through a crash or ``kill -9``
        of the driver; only a crash of the machine itself may roll back the last ones,
        and a trial rolled back to RUNNING is re-run on ``--resume``.
        """
        storage = optuna.storages.RDBStorage(self.storage_url)

        @event.listens_for(storage.engine, "connect")
        def _fast_commits(connection, _record) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        storage.engine.dispose()  # connections opened while creating the tables lack the pragmas
        return storage

    def model_path(self, number: int) -> Path:
        return self.models / f"trial_{number}.pt"

    def check_storage(self) -> None:
        """Fail with one line if study.db (when there is one) is not an SQLite database with
        Optuna's tables, or another process holds its write lock."""
        if not self.database.is_file():
            return
        try:
            with contextlib.closing(sqlite3.connect(self.database, timeout=1.0)) as db:
                tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                db.execute("BEGIN IMMEDIATE")  # the write lock the driver will need
                db.rollback()
        except sqlite3.OperationalError as error:
            if "locked" in str(error):
                raise UserInputError(f"{self.database}: locked by another process (a search on this run, or "
                                     "a program writing to it?); retry when it is done") from None
            raise unreadable(self.database, "Optuna SQLite storage", error) from None
        except sqlite3.DatabaseError as error:
            raise unreadable(self.database, "Optuna SQLite storage", error) from None
        if "studies" not in tables:
            raise UserInputError(f"{self.database}: not an Optuna storage (no 'studies' table); "
                                 "move it away to start the search over")

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive lock on the run, released by the kernel even after ``kill -9``.

        The file is opened without truncating it, so a second driver that is refused leaves the
        running one's pid in it.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "?"
                raise UserInputError(f"{self.path}: another search (pid {holder}) is running on this run") from None
            handle.truncate(0)
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield

    def read_test_accuracy(self) -> dict[int, float]:
        """Test-split accuracy by trial number of the front's trials measured so far (``search.holdout``)."""
        if not self.test_accuracy.is_file():
            return {}
        data = load_json(self.test_accuracy, "test accuracy file")  # UTF-8, finite numbers
        try:
            return {int(number): float(value) for number, value in data.items()}
        except (ValueError, TypeError, AttributeError) as error:
            raise UserInputError(f"{self.test_accuracy}: not a JSON object of trial number -> accuracy "
                                 f"({error})") from None

    def write_test_accuracy(self, measured: dict[int, float]) -> None:
        write_atomic(self.test_accuracy, json.dumps({str(k): v for k, v in sorted(measured.items())}, indent=1))

    def read_rows(self) -> list[dict]:
        """The rows of trials.csv as ``write_tables`` takes them (empty before the first trial)."""
        if not self.trials_csv.is_file():
            return []
        with open(self.trials_csv, newline="") as handle:
            return [row | {"number": int(row["number"])} for row in csv.DictReader(handle)]

    def write_tables(self, rows: list[dict], objectives: list[str], constraints: Constraints) -> int:
        """Rewrite trials.csv and pareto.csv from all rows, with the test accuracies measured so
        far; returns the size of the front."""
        measured = self.read_test_accuracy()
        ordered = [row | {"test_accuracy": measured.get(row["number"], "")}
                   for row in sorted(rows, key=lambda r: r["number"])]
        front = front_rows(ordered, objectives, constraints)
        write_atomic(self.trials_csv, _csv_text(ordered))
        write_atomic(self.pareto_csv, _csv_text(front))
        return len(front)
