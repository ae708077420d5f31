"""``Run``: one run folder read (by everyone) and written (by the search driver only).

Every file is checked as it is read (the config against the run's settings, the trial table
against its columns, states and kinds, the profile, predictor summary and verification
against their schemas), and a broken one is one line naming it. The trial table and the
front are rewritten whole, atomically, so a reader never sees half of one.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import replace
from functools import cached_property
from pathlib import Path

import cloudpickle
import optuna
import torch
from optuna.trial import FrozenTrial

from autocompress.errors import UserInputError
from autocompress.files import write_atomic
from autocompress.hw.profile import HardwareProfile, load_profile, write_json_atomic
from autocompress.inputs import load_json, validated
from autocompress.models.family import family_of
from autocompress.models.space_file import parse_space
from autocompress.models.torch_model import TorchModelSpace
from autocompress.run.config import SearchConfig, TaskKind
from autocompress.run.files import RunFiles
from autocompress.run.front import front
from autocompress.run.predictor import PredictorSummary, SamplerOutput
from autocompress.run.status import Session
from autocompress.run.table import csv_text, read_trials
from autocompress.run.trial import Kind, Trial
from autocompress.run.verification import Verification
from autocompress.space import SearchSpace
from autocompress.tasks import Task
from autocompress.tasks.classification import ClassificationTask

RESULTS_DIR = Path("results")


def task_kind(task: Task) -> TaskKind:
    return TaskKind.CLASSIFICATION if isinstance(task, ClassificationTask) else TaskKind.CUSTOM


def resolve(run: str | Path) -> Path:
    """A run folder given as a path, or as a name under ``results/``."""
    for candidate in (Path(run), RESULTS_DIR / str(run)):
        if Run.exists(candidate):
            return candidate
    raise UserInputError(f"{run}: not a run folder (no {RunFiles(run).config.name} there or under {RESULTS_DIR}/)")


class Run:
    """One run folder: its frozen config and space, its device profile, its trials so far, and
    what a predictor-guided sampler and ``autocompress verify`` wrote into it."""

    def __init__(self, path: Path) -> None:
        self.files = RunFiles(path)
        self.path = self.files.path
        self.config = SearchConfig.read(self.files.config)

    @staticmethod
    def exists(path: str | Path) -> bool:
        """Whether ``path`` holds a run (its config is written last, when the run is complete)."""
        return RunFiles(Path(path)).config.is_file()

    @staticmethod
    def being_set_up(run: str | Path) -> tuple[Path, int] | None:
        """(folder, driver pid) if ``run`` (a path, or a name under ``results/``) is a run whose
        driver is still setting it up (its config not written yet), else None."""
        for candidate in (Path(run), RESULTS_DIR / str(run)):
            pid = None if Run.exists(candidate) else RunFiles(candidate).lock_holder()
            if pid is not None:
                return candidate, pid
        return None

    @staticmethod
    def log_of(path: str | Path) -> Path:
        """The search log of the run at ``path``."""
        return RunFiles(Path(path)).log

    @classmethod
    def open(cls, path: str | Path) -> Run:
        return cls(Path(path))

    @classmethod
    def create(cls, path: Path, config: SearchConfig, profile: Path, write_base: Callable[[Path], None],
               write_prior: Callable[[Path], None] | None, fresh: bool, task: object | None = None,
               model: object | None = None) -> Run:
        """Copy the profile, freeze a custom ``task`` and the ``model`` given to the Python API
        (cloudpickle: by reference where importable, else by value), write the base network and
        the earlier runs' trials, then freeze the config. On any failure, Ctrl-C included, what
        was written is removed again: the whole folder if it is ``fresh`` (made for this run),
        else those files."""
        files = RunFiles(path)
        try:
            shutil.copyfile(profile, files.profile)
            for frozen, target in ((task, files.task), (model, files.user_model)):
                if frozen is not None:
                    target.write_bytes(cloudpickle.dumps(frozen))
            write_base(files.base)
            if write_prior is not None:
                write_prior(files.prior_trials)
            config.write(files.config)
        except BaseException:
            if fresh:
                shutil.rmtree(files.path, ignore_errors=True)
            else:
                for written in (files.config, files.profile, files.task, files.user_model, files.base,
                                files.prior_trials):
                    written.unlink(missing_ok=True)
            raise
        return cls(path)

    # -- what it holds ----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.config.run

    @property
    def objectives(self) -> list[str]:
        return list(self.config.objectives)

    @cached_property
    def space(self) -> SearchSpace:
        """Its frozen space, with the model the Python API was given, if it was."""
        space = parse_space(self.config.space, self.files.config)
        if isinstance(space, TorchModelSpace) and self.files.user_model.is_file():
            space = space.with_model(self._unpickled(self.files.user_model, "model"))
        return space

    @cached_property
    def profile(self) -> HardwareProfile | None:
        """The device profile its latencies were predicted with (None if the file is absent)."""
        return load_profile(self.files.profile) if self.files.profile.is_file() else None

    def task(self, given: Task | None = None) -> Task:
        """The run's task: ``given`` (of the run's kind: the Python API passing it again), else
        the one the run froze (a custom task's pickle, or classification of its space's data)."""
        kind = self.config.task
        if given is not None:
            if task_kind(given) is not kind:
                raise UserInputError(f"{self.path}: the run's task is {kind.value}, not {task_kind(given).value}")
            return given
        if kind is TaskKind.CUSTOM:
            return self._unpickled(self.files.task, "task")
        return ClassificationTask(self.space, progress=True)

    @staticmethod
    def _unpickled(path: Path, what: str) -> object:
        try:
            return pickle.loads(path.read_bytes())
        except (OSError, pickle.UnpicklingError, AttributeError, ImportError, EOFError) as error:
            raise UserInputError(f"{path}: the run's {what} cannot be loaded ({type(error).__name__}: {error}); "
                                 "is the module that defines it importable here?") from None

    @property
    def latency_label(self) -> str:
        """The latency column's name where it is shown, e.g. ``latency_ms (median, ms per batch of 32)``."""
        return f"latency_ms ({self.profile.latency_label()})" if self.profile else "latency_ms (ms)"

    @cached_property
    def trials(self) -> list[Trial]:
        """Its trials by number, every COMPLETE one's candidate checked against the run's family."""
        return read_trials(self.files.trials, self.objectives, family_of(self.space).parse_candidate)

    @property
    def complete(self) -> list[Trial]:
        """Finished trials with every objective measured."""
        return [trial for trial in self.trials if trial.measured(self.objectives)]

    @property
    def feasible(self) -> list[Trial]:
        """Finished trials that satisfy the run's constraints."""
        return [trial for trial in self.complete if trial.feasible(self.config.constraints)]

    def front(self) -> list[Trial]:
        """Its Pareto front (``run.front.front``): what the front table, the report and verify list."""
        return front(self.trials, self.objectives, self.config.constraints)

    def test_split_trials(self) -> list[Trial]:
        """The trials measured once on the test split after the search, by number: the front's and
        every completed baseline (what the report's claims against the baselines compare)."""
        baselines = [trial for trial in self.complete if trial.kind is Kind.BASELINE]
        chosen = {trial.number: trial for trial in [*self.front(), *baselines]}
        return [chosen[number] for number in sorted(chosen)]

    def stored_trials(self) -> list[FrozenTrial]:
        """Every trial as the run's Optuna storage keeps it (with the parameters its sampler chose)."""
        self.files.check_storage()
        study = optuna.load_study(study_name=self.name, storage=self.files.storage_url)
        return study.get_trials(deepcopy=False)

    def trial(self, number: int) -> Trial | None:
        return next((trial for trial in self.trials if trial.number == number), None)

    def model_path(self, trial: Trial | int) -> Path:
        """Where the search saved the fine-tuned model of ``trial`` (a Trial or its number)."""
        return self.files.model_path(trial.number if isinstance(trial, Trial) else trial)

    @cached_property
    def predictor(self) -> PredictorSummary | None:
        """A predictor-guided run's predictor quality (None for other samplers)."""
        path = self.files.predictor_summary
        return PredictorSummary.read(path) if path.is_file() else None

    @cached_property
    def verification(self) -> Verification | None:
        """Its front measured on the device, once ``autocompress verify`` ran (else None)."""
        path = self.files.verification
        return validated(Verification, load_json(path, "verify file"), path) if path.is_file() else None

    @property
    def session(self) -> Session | None:
        """The search driver's last invocation (None before its search first started)."""
        path = self.files.session
        return validated(Session, load_json(path, "driver session file"), path) if path.is_file() else None

    @property
    def driver_pid(self) -> int | None:
        """The pid of the driver running on it now (-1 if its pid is unknown), or None."""
        return self.files.lock_holder()

    def test_accuracy(self) -> dict[int, float]:
        """Test-split accuracy by trial number of the trials measured so far (``test_split_trials``)."""
        path = self.files.test_accuracy
        if not path.is_file():
            return {}
        data = load_json(path, "test accuracy file")  # UTF-8, finite numbers
        try:
            return {int(number): float(value) for number, value in data.items()}
        except (ValueError, TypeError, AttributeError) as error:
            raise UserInputError(f"{path}: not a JSON object of trial number -> accuracy ({error})") from None

    # -- what the driver (or verify, holding the lock) writes -------------------------------------------
    def change_settings(self, **changes: object) -> None:
        """Freeze the settings a resumed search may change (those given and not None)."""
        self.config = self.config.model_copy(update={k: v for k, v in changes.items() if v is not None})
        self.config.write(self.files.config)

    def write_tables(self, trials: list[Trial]) -> int:
        """Rewrite the trial table and the front from all trials, with the test accuracies
        measured so far; returns the size of the front."""
        measured = self.test_accuracy()
        ordered = [replace(trial, test_accuracy=measured.get(trial.number))
                   for trial in sorted(trials, key=lambda t: t.number)]
        members = front(ordered, self.objectives, self.config.constraints)
        write_atomic(self.files.trials, csv_text(ordered))
        write_atomic(self.files.pareto, csv_text(members))
        self.__dict__.pop("trials", None)
        return len(members)

    def keep_sampler_output(self, output: SamplerOutput) -> None:
        output.write(self.files)
        if output.summary is not None:
            self.__dict__["predictor"] = output.summary

    def write_session(self, session: Session) -> None:
        write_json_atomic(self.files.session, session.model_dump(mode="json"))

    def write_test_accuracy(self, measured: dict[int, float]) -> None:
        write_atomic(self.files.test_accuracy,
                     json.dumps({str(k): v for k, v in sorted(measured.items())}, indent=1))

    def save_model(self, number: int, state_dict: dict, candidate: str, cached_from: int | None = None) -> None:
        """Trial ``number``'s model: its weights, or (``cached_from``) a hard link to that trial's."""
        target = self.files.model_path(number)
        target.parent.mkdir(exist_ok=True)
        tmp = target.with_suffix(".tmp")
        if cached_from is None:
            torch.save({"state_dict": state_dict, "candidate": candidate}, tmp)
        else:
            tmp.unlink(missing_ok=True)
            os.link(self.files.model_path(cached_from), tmp)
        tmp.replace(target)

    def write_verification(self, verification: Verification) -> None:
        write_json_atomic(self.files.verification, verification.model_dump(mode="json"))
        self.__dict__["verification"] = verification
