"""The Python API: ``import autocompress as ac``. The ``autocompress`` CLI is a thin layer over it.

    space = ac.load_space("search_spaces/mobilenet_digits.yaml")
    run = ac.search("search_spaces/mobilenet_digits.yaml", "hw_profiles/cpu-torch-fp32.json", trials=20)
    run.front            # pandas DataFrame: the accuracy/latency Pareto front
    run.export(run.front.number.iloc[0])

Your own network, data, training and metric (see ``tasks/custom.py`` for what each is):

    run = ac.search("space.yaml", "hw_profiles/cpu-torch-fp32.json", trials=20, model=build_net,
                    train_data=train, val_data=val, test_data=test, evaluate=mean_iou, metric="IoU",
                    loss=dice_loss)

Bad input raises ``UserInputError`` (one line naming the option and what is wrong) before
anything is written; a search whose every trial failed raises ``SearchFailed``.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import sysconfig
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle

from autocompress.errors import UserInputError
from autocompress.progress import announce, lines_on_stderr
from autocompress.run.config import MAX_SEED, Constraints
from autocompress.search.samplers import DEFAULT_SAMPLER, sampler_named
from autocompress.search.settings import RUN_NAME, parse_duration

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

    from autocompress.export.exporter import Export
    from autocompress.hw.profile import HardwareProfile
    from autocompress.run import run as run_folder
    from autocompress.run.verification import Verification
    from autocompress.search.driver import Summary
    from autocompress.space import SearchSpace
    from autocompress.tasks import Task


class SearchFailed(RuntimeError):
    """Every trial of the search failed, the baselines included (the message names the first error)."""


def load_space(path: str | Path) -> SearchSpace:
    """A search-space YAML, validated (its family's settings class)."""
    from autocompress.models.space_file import load_space as load

    return load(path)


def load_profile(path: str | Path) -> HardwareProfile:
    """A device profile (latency lookup table), validated."""
    from autocompress.hw.profile import load_profile as load

    return load(Path(path))


class Run:
    """A run folder: its trials and front as DataFrames, and what can be done with them.

    The score column is named by the run's metric (``accuracy`` for classification, the
    user's name for their own ``evaluate``); ``test_<metric>`` holds the held-out figure."""

    def __init__(self, path: str | Path, summary: Summary | None = None) -> None:
        from autocompress.run.run import Run as RunFolder
        from autocompress.run.run import resolve

        self.folder: run_folder.Run = RunFolder.open(resolve(path))
        self.path: Path = self.folder.path
        self.summary = summary
        """The figures of the search this object's ``search`` call ran (None for an opened run)."""

    @property
    def metric(self) -> str:
        return self.folder.config.metric

    def _table(self, path: Path) -> pd.DataFrame:
        import pandas as pd

        table = pd.read_csv(path) if path.is_file() else pd.DataFrame()
        if self.metric != "accuracy":
            table = table.rename(columns=lambda c: c.replace("accuracy", self.metric))
        return table

    @property
    def trials(self) -> pd.DataFrame:
        """Every trial: number, state, kind, label, score, latency, size, candidate, ..."""
        return self._table(self.folder.files.trials)

    @property
    def front(self) -> pd.DataFrame:
        """The Pareto front (the trials no other trial beats on every objective)."""
        return self._table(self.folder.files.pareto)

    def report(self) -> Path:
        """Write the HTML report, plots and summary into the run folder; returns the page."""
        from autocompress.report import write_report

        return write_report(self.path)

    def export(self, trial: int, directory: str | Path | None = None) -> Export:
        """Write trial ``trial``'s model to ship (weights, candidate, ONNX) and check it."""
        from autocompress.export.exporter import export_trial

        return export_trial(self.folder, int(trial), None if directory is None else Path(directory))

    def verify(self) -> Verification:
        """Measure every front model on the profile's device against its predicted latency."""
        from autocompress.verify.command import verify_front
        from autocompress.verify.measure import targets

        plan = targets(self.folder)
        with self.folder.files.lock():
            return verify_front(plan)


def open_run(path: str | Path) -> Run:
    """An existing run folder (a path, or a run name under ``results/``)."""
    return Run(path)


def custom_task(*, train_data: Any = None, val_data: Any = None, test_data: Any = None,
                evaluate: Callable | None = None, metric: str | None = None, finetune: Callable | None = None,
                loss: Callable | None = None, calibration_data: Any = None, batch_size: int = 32,
                inputs_of: Callable | None = None) -> Task | None:
    """The user's task from the API's keyword arguments (None: the space's classification)."""
    pieces = {"train_data": train_data, "val_data": val_data, "test_data": test_data, "evaluate": evaluate}
    if all(value is None for value in (*pieces.values(), metric, finetune, loss, calibration_data)):
        return None
    missing = [name for name, value in pieces.items() if value is None]
    if missing:
        raise UserInputError(f"{missing[0]}: needed with your own task (train_data, val_data, test_data, evaluate)")
    if metric is not None and not RUN_NAME.match(metric):
        raise UserInputError(f"metric: {metric!r} is not a column name (letters, digits, '_', '.', '-')")
    for name, value in (("evaluate", evaluate), ("finetune", finetune), ("loss", loss), ("inputs_of", inputs_of)):
        if value is not None and not callable(value):
            raise UserInputError(f"{name}: must be a function, got {type(value).__name__}")
    if batch_size < 1:
        raise UserInputError(f"batch_size: must be >= 1, got {batch_size}")
    from autocompress.tasks.custom import CustomTask

    extra = {} if inputs_of is None else {"inputs_of": inputs_of}
    return CustomTask(train_data=train_data, val_data=val_data, test_data=test_data, evaluate=evaluate,
                      metric=metric or "score", finetune=finetune, loss=loss, calibration_data=calibration_data,
                      batch_size=batch_size, **extra)


def _ship_by_value(values: Sequence[object]) -> None:
    """Pickle the user's own modules (those not installed as packages) by value, so that Ray
    workers, which may not have the user's folders on their import path, and a resumed run
    receive their functions and classes without importing them."""
    from ray import cloudpickle as ray_cloudpickle

    installed = {Path(path).resolve() for path in sysconfig.get_paths().values()}
    for value in values:
        if value is None:
            continue
        module = inspect.getmodule(value if inspect.isfunction(value) or inspect.isclass(value) else type(value))
        file = getattr(module, "__file__", None)
        if module is None or file is None or module.__name__.split(".")[0] in ("autocompress", "torch"):
            continue
        if not any(parent in installed for parent in Path(file).resolve().parents):
            for pickler in (cloudpickle, ray_cloudpickle):  # the run folder's, and Ray's own copy
                pickler.register_pickle_by_value(module)


def _check_shippable(value: object, what: str) -> None:
    """``value`` must survive pickling (how Ray workers receive it); else one line, before any search."""
    try:
        cloudpickle.loads(cloudpickle.dumps(value))
    except Exception as error:  # noqa: BLE001 - anything unpicklable, whatever the reason
        raise UserInputError(f"{what}: cannot be sent to the Ray workers ({type(error).__name__}: {error}); "
                             "define it at a module's top level, or in the script you run") from None


def _shippable_task(model: object, **pieces: Any) -> Task | None:
    """The user's task (``custom_task``), it and ``model`` checked to reach the Ray workers."""
    task = custom_task(**pieces)
    _ship_by_value([model, *pieces.values()])
    for value, what in ((task, "your task (data and functions)"), (model, "model")):
        if value is not None:
            _check_shippable(value, what)
    return task


def _check_resume(run: str | None, **given: object) -> None:
    """A resumed run is named, and none of its frozen settings given."""
    if run is None:
        raise UserInputError("--resume needs --run NAME (the folder under results/)")
    named = [name for name, value in given.items() if value is not None]
    if named:
        raise UserInputError(f"--{named[0].replace('_', '-')} is frozen in the run's config; "
                             "drop it when resuming (only --trials, --time-budget, --workers, --threads, "
                             "--gpus-per-worker, --address may change)")


def _check_new_run(space: object, profile: object, trials: int | None, budget_s: float | None,
                   sampler: str | None, objective: Sequence[str], learn_from: Sequence[Path],
                   sensitivity_baselines: bool) -> None:
    """A new run's options that have no value to check alone."""
    if space is None or profile is None:
        raise UserInputError("search needs a SPACE file and --profile (or --run NAME --resume)")
    chosen = sampler_named(sampler or DEFAULT_SAMPLER)
    if trials is None and budget_s is None and chosen.proposes_search_trials:
        raise UserInputError("give --trials N and/or --time-budget (e.g. 8h)")
    if any(name != "size" for name in objective):
        raise UserInputError(f"--objective: unknown {list(objective)!r} (allowed: size)")
    if learn_from and not chosen.learns_from_earlier_runs:
        raise UserInputError(f"--learn-from: the {sampler!r} sampler does not learn from earlier runs")
    if not chosen.proposes_search_trials and not sensitivity_baselines:
        raise UserInputError(f"--no-sensitivity-baselines: the {sampler!r} sampler runs only the baselines, "
                             "the allocator's among them; drop the option")


def _check_values(run: str | None, results_dir: Path, seed: int | None, address: str | None,
                  limits: dict[str, float | None]) -> None:
    """The options' values, before anything is read or written."""
    for option, value in limits.items():
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UserInputError(f"--{option.replace('_', '-')}: must be a finite number > 0, got {value}")
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise UserInputError(f"--seed: must lie in 0..{MAX_SEED}, got {seed}")
    if run is not None and not RUN_NAME.match(run):
        raise UserInputError(f"--run: {run!r} is not a run name: one folder inside --results-dir, of letters, "
                             "digits, '_', '.', '-', starting with a letter or digit")
    if results_dir.exists() and not results_dir.is_dir():
        raise UserInputError(f"--results-dir {results_dir}: is a file, not a folder")
    if address is not None:
        from autocompress.search.cluster import check_address

        check_address(address)


@contextlib.contextmanager
def _logging_to(path: Path) -> Iterator[None]:
    """The project's and Optuna's log, progress lines included, into the run's ``search.log``."""
    import optuna

    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("autocompress", "optuna"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    optuna.logging.disable_default_handler()
    try:
        yield
    finally:
        for name in ("autocompress", "optuna"):
            logging.getLogger(name).removeHandler(handler)
        handler.close()


@dataclass(frozen=True)
class _Launch:
    """Where and how the search runs; none of it is frozen into the run."""

    address: str | None
    verify: bool


def search(space: str | Path | None = None, profile: str | Path | None = None, *, trials: int | None = None,
           time_budget: str | float | None = None, workers: int | None = None, threads: int | None = None,
           gpus_per_worker: float | None = None, sampler: str | None = None, run: str | None = None,
           resume: bool = False, address: str | None = None, max_latency_ms: float | None = None,
           max_size_kb: float | None = None, objective: Sequence[str] = (), seed: int | None = None,
           finetune_epochs: int | None = None, native_only: bool = False, learn_from: Sequence[str | Path] = (),
           results_dir: str | Path = "results", verify: bool = False, model: nn.Module | Callable | None = None,
           train_data: Any = None, val_data: Any = None, test_data: Any = None, evaluate: Callable | None = None,
           metric: str | None = None, finetune: Callable | None = None, loss: Callable | None = None,
           calibration_data: Any = None, batch_size: int = 32, inputs_of: Callable | None = None,
           sensitivity_baselines: bool = True) -> Run:
    """Search ``space`` (a YAML file) for the accuracy/latency Pareto front on ``profile``'s device.

    The options are the CLI's (``autocompress search --help``; ``time_budget`` also in seconds).
    ``model``: a ``torch-model`` space's network as an ``nn.Module`` (taken as trained) or a
    zero-argument builder. ``train_data`` ... ``inputs_of``: your own task (``tasks/custom.py``);
    without them, the space's data are classified. With ``resume``, the run's frozen task and
    model are used unless given again. Returns the run, with the search's ``summary``.
    """
    from autocompress.devices import check_gpus_per_worker

    lines_on_stderr()
    results = Path(results_dir)
    budget_s = _budget_s(time_budget)
    task = _shippable_task(model, train_data=train_data, val_data=val_data, test_data=test_data, evaluate=evaluate,
                           metric=metric, finetune=finetune, loss=loss, calibration_data=calibration_data,
                           batch_size=batch_size, inputs_of=inputs_of)
    if gpus_per_worker is not None:
        check_gpus_per_worker(gpus_per_worker, address)
    if resume:
        _check_resume(run, space=space, profile=profile, sampler=sampler, max_latency_ms=max_latency_ms,
                      max_size_kb=max_size_kb, objective=list(objective) or None, seed=seed,
                      finetune_epochs=finetune_epochs, native_only=native_only or None,
                      learn_from=list(learn_from) or None, model=model,
                      sensitivity_baselines=None if sensitivity_baselines else False)
    else:
        _check_new_run(space, profile, trials, budget_s, sampler, objective, [Path(p) for p in learn_from],
                       sensitivity_baselines)
    _check_values(run, results, seed, address, {"max_latency_ms": max_latency_ms, "max_size_kb": max_size_kb})
    launch = _Launch(address, verify)
    if resume:
        opened, summary = _resume(results / run, launch, task, gpus_per_worker, trials=trials, time_budget_s=budget_s,
                                  workers=workers, threads=threads)
    else:
        settings = _frozen_settings(objective, Constraints(max_latency_ms=max_latency_ms, max_size_kb=max_size_kb),
                                    sampler=sampler or DEFAULT_SAMPLER, trials=trials, time_budget_s=budget_s,
                                    workers=workers or 2, threads=threads, gpus_per_worker=gpus_per_worker or 0.0,
                                    seed=seed or 0, finetune_epochs=finetune_epochs, native_only=native_only,
                                    learn_from=[str(path) for path in learn_from],
                                    sensitivity_baselines=sensitivity_baselines)
        opened, summary = _start(results, run, Path(space), Path(profile), launch, settings, task, model)
    if summary.first_failure is not None:
        raise SearchFailed(_hopeless(opened, summary))
    if verify and not summary.interrupted:
        Run(opened.path).verify()
    result = Run(opened.path, summary)
    result.report()
    return result


def _budget_s(time_budget: str | float | None) -> float | None:
    """``time_budget`` (``8h``, ``90m``, or seconds) in seconds, checked."""
    budget_s = parse_duration(time_budget) if isinstance(time_budget, str) else time_budget
    if budget_s is not None and not (math.isfinite(budget_s) and budget_s > 0):
        raise UserInputError(f"--time-budget: must be a positive duration, got {time_budget!r}")
    return budget_s


def _hopeless(run: run_folder.Run, summary: Summary) -> str:
    """The line that says every trial of ``run`` failed, naming the first error."""
    first = summary.first_failure
    return (f"{run.path}: every trial failed ({summary.failed}), the baselines included; the first, trial "
            f"{first.number}: {first.error} (log: {run.files.log})")


def _frozen_settings(objective: Sequence[str], constraints: Constraints, **settings: object) -> dict:
    """A new run's ``SearchConfig`` fields beyond its files: the objectives, constraints and options."""
    return {"objectives": ["accuracy", "latency_ms"] + (["size_kb"] if objective else []),
            "constraints": constraints, **settings}


def _resume(path: Path, launch: _Launch, task: Task | None, gpus_per_worker: float | None,
            **changes: object) -> tuple[run_folder.Run, Summary]:
    """The run in ``path`` searched on, with the settings a resume may change."""
    from autocompress.devices import check_gpus_per_worker
    from autocompress.search.setup import open_run as open_existing
    from autocompress.verify.measure import measurable_profile

    opened, hw_profile, run_task, prior = open_existing(path, task)  # every file checked before the lock
    check_gpus_per_worker(opened.config.gpus_per_worker if gpus_per_worker is None else gpus_per_worker,
                          launch.address)
    if launch.verify:
        measurable_profile(hw_profile, str(opened.files.profile))
    with opened.files.lock(), _logging_to(opened.files.log):
        announce(f"{opened.path}: resuming (log: {opened.files.log})")
        opened.change_settings(gpus_per_worker=gpus_per_worker, **changes)
        return opened, _run_search(opened, hw_profile, run_task, prior, launch.address)


def _start(results_dir: Path, run: str | None, space: Path, profile: Path, launch: _Launch, settings: dict,
           task: Task | None, model: object | None) -> tuple[run_folder.Run, Summary]:
    """A new run, checked, created and searched."""
    from autocompress.run.files import RunFiles
    from autocompress.search.setup import create_run, plan_run
    from autocompress.verify.measure import measurable_profile

    plan = plan_run(results_dir, run, space, profile, settings, task, model)
    if launch.verify:
        measurable_profile(plan.profile, str(profile))
    fresh = not plan.path.exists()
    files = RunFiles(plan.path)
    with files.lock(), _logging_to(files.log):
        announce(f"{plan.path}: inputs checked, setting up the run (log: {files.log}); the base network "
                 "is trained first unless one was trained (or shipped) for this space before")
        opened = create_run(plan, fresh)
        return opened, _run_search(opened, plan.profile, plan.task, plan.prior, launch.address)


def _run_search(run: run_folder.Run, hw_profile: HardwareProfile, task: Task, prior: Any,
                address: str | None) -> Summary:
    """The search, then (unless it was interrupted) its front and baselines measured once on the test split."""
    from autocompress.search.driver import SearchDriver
    from autocompress.search.holdout import measure_test_split

    summary = SearchDriver(run, hw_profile, task, prior).run(address)
    if not summary.interrupted and summary.first_failure is None:  # else measured on --resume
        measure_test_split(run, task)
    return summary


def profile(space: str | Path, runtime: str, *, device: str | None = None, out: str | Path | None = None,
            validate: int = 30, threads: int = 1, batch_size: int = 32, statistic: str = "median",
            model: nn.Module | Callable | None = None) -> HardwareProfile:
    """Measure (or model) a device's latency lookup table for ``space`` on ``runtime`` and validate
    it end to end (``autocompress profile``); ``model``: a ``torch-model`` space's network."""
    from autocompress.hw.cli import checked_request, make_profile

    lines_on_stderr()
    return make_profile(checked_request(Path(space), runtime, device, None if out is None else Path(out), validate,
                                        threads, batch_size, statistic, model=model))
