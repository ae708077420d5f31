"""The files of one run folder, named here and nowhere else; its lock and its Optuna storage."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import optuna
from sqlalchemy import event

from autocompress.errors import UserInputError
from autocompress.inputs import unreadable

CONFIG = "config.json"
TRIALS = "trials.csv"


class RunFiles:
    """Paths of one run's files; ``lock()`` keeps a second writer out while one runs."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.config = self.path / CONFIG
        self.profile = self.path / "profile.json"
        self.base = self.path / "base.pt"
        self.database = self.path / "study.db"
        self.trials = self.path / TRIALS
        self.pareto = self.path / "pareto.csv"
        self.models = self.path / "models"
        self.log = self.path / "search.log"
        self.session = self.path / "session.json"
        self.lock_file = self.path / ".lock"
        self.ray_processes = self.path / "ray_processes.json"
        self.test_accuracy = self.path / "test_accuracy.json"
        self.prior_trials = self.path / "prior_trials.csv"
        self.task = self.path / "task.pkl"
        self.user_model = self.path / "model.pkl"
        self.predictor_summary = self.path / "predictor.json"
        self.screened = self.path / "screened.csv"
        self.sensitivity = self.path / "sensitivity.json"
        self.verification = self.path / "verify.json"
        self.report = self.path / "report.html"
        self.report_summary = self.path / "summary.md"

    def model_path(self, number: int) -> Path:
        """The fine-tuned model of trial ``number`` as the search saved it."""
        return self.models / f"trial_{number}.pt"

    def predictor_model(self, name: str) -> Path:
        """A fitted predictor of the predictor-guided sampler (``predictor``, ``cheap_predictor``, ...)."""
        return self.path / f"{name}.pkl"

    def export_folder(self, number: int) -> Path:
        """Where ``autocompress export`` writes trial ``number`` by default."""
        return self.path / "export" / f"trial_{number}"

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
        with open(self.lock_file, "a+") as handle:
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

    def lock_holder(self) -> int | None:
        """The pid of the live process that holds the run's lock (a driver), or None.

        Probed with a shared lock taken and dropped at once: the kernel drops a lock with
        its process, so a pid left in the file by a killed driver does not count.
        """
        try:
            handle = open(self.lock_file)
        except FileNotFoundError:
            return None
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = handle.read().strip()
                return int(holder) if holder.isdigit() else -1
            fcntl.flock(handle, fcntl.LOCK_UN)
            return None
