"""``autocompress search``: start a run or resume one."""

from __future__ import annotations

import contextlib
import logging
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from autocompress.errors import UserInputError
from autocompress.progress import announce
from autocompress.run.config import MAX_SEED, Constraints
from autocompress.search.samplers import DEFAULT_SAMPLER, sampler_named, sampler_names
from autocompress.search.settings import RUN_NAME, parse_duration

if TYPE_CHECKING:
    from autocompress.hw.profile import HardwareProfile
    from autocompress.run.run import Run
    from autocompress.search.driver import Summary
    from autocompress.search.prior import PriorTrials

INTERRUPTED_EXIT = 130
FAILED_EXIT = 1


def _check_resume(run: str | None, **given: object) -> None:
    """A resumed run is named, and none of its frozen settings given."""
    if run is None:
        raise UserInputError("--resume needs --run NAME (the folder under results/)")
    named = [name for name, value in given.items() if value is not None]
    if named:
        raise UserInputError(f"--{named[0].replace('_', '-')} is frozen in the run's config; "
                             "drop it when resuming (only --trials, --time-budget, --workers, --threads, "
                             "--gpus-per-worker, --address may change)")


def _check_new_run(space: Path | None, profile: Path | None, trials: int | None, budget_s: float | None,
                   sampler: str | None, objective: list[str] | None, learn_from: list[Path] | None) -> None:
    """A new run's options that have no value to check alone."""
    if space is None or profile is None:
        raise UserInputError("search needs a SPACE file and --profile (or --run NAME --resume)")
    if trials is None and budget_s is None:
        raise UserInputError("give --trials N and/or --time-budget (e.g. 8h)")
    chosen = sampler_named(sampler or DEFAULT_SAMPLER)
    if any(name != "size" for name in objective or []):
        raise UserInputError(f"--objective: unknown {objective!r} (allowed: size)")
    if learn_from and not chosen.learns_from_earlier_runs:
        raise UserInputError(f"--learn-from: the {sampler!r} sampler does not learn from earlier runs")


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


def search_command(
    space: Annotated[Path | None, typer.Argument(help="search space YAML (not needed with --resume)")] = None,
    profile: Annotated[Path | None, typer.Option(help="hardware profile JSON, e.g. hw_profiles/<device>.json")] = None,
    trials: Annotated[int | None, typer.Option(min=1, help="search trials to run (baselines not counted)")] = None,
    time_budget: Annotated[str | None, typer.Option(help="wall-clock budget of this invocation: 8h, 90m, 600s")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="trials evaluated at once (default 2)")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help=(
        "torch threads (and Ray CPUs) per worker; default: the machine's cores / workers "
        "on a local Ray, 1 on a cluster"))] = None,
    gpus_per_worker: Annotated[float | None, typer.Option(help=(
        "Ray GPUs per worker (0.5: two workers share a GPU); > 0 fine-tunes trials and trains the base on "
        "CUDA; default 0, the CPU"))] = None,
    sampler: Annotated[str | None, typer.Option(
        help=f"{' | '.join(sampler_names())} (default {DEFAULT_SAMPLER})")] = None,
    run: Annotated[str | None, typer.Option(help="run name: results/<run>/ (default <space>-<time>)")] = None,
    resume: Annotated[bool, typer.Option(help="continue the run named by --run")] = False,
    address: Annotated[str | None, typer.Option(help="join this Ray cluster (host:port), not a local Ray")] = None,
    max_latency_ms: Annotated[float | None, typer.Option(help="reject candidates predicted slower")] = None,
    max_size_kb: Annotated[float | None, typer.Option(help="reject candidates larger than this")] = None,
    objective: Annotated[list[str] | None, typer.Option(help="extra objective: size")] = None,
    seed: Annotated[int | None, typer.Option(help="sampler and fine-tune seed (default 0)")] = None,
    finetune_epochs: Annotated[int | None, typer.Option(min=0, help="override the space's finetune_epochs")] = None,
    native_only: Annotated[bool, typer.Option(
        help="search only the bit-widths and sparsity kinds the device runs natively (plus float)")] = False,
    learn_from: Annotated[list[Path] | None, typer.Option(help=(
        "an earlier run on the same base network whose fine-tuned trials the accuracy predictor learns from "
        "(any device: accuracy does not depend on it); repeat for more runs"))] = None,
    results_dir: Annotated[Path, typer.Option(help="where run folders live")] = Path("results"),
    verify: Annotated[bool, typer.Option(help=(
        "at the end, measure every front model on the profile's device against its prediction "
        "(as 'autocompress verify'); needs a measured device"))] = False,
) -> None:
    """Search the space for the accuracy/latency Pareto front of compressed networks."""
    from autocompress.devices import check_gpus_per_worker

    budget_s = parse_duration(time_budget) if time_budget is not None else None
    if gpus_per_worker is not None:
        check_gpus_per_worker(gpus_per_worker, address)
    if resume:
        _check_resume(run, space=space, profile=profile, sampler=sampler, max_latency_ms=max_latency_ms,
                      max_size_kb=max_size_kb, objective=objective, seed=seed, finetune_epochs=finetune_epochs,
                      native_only=native_only or None, learn_from=learn_from or None)
    else:
        _check_new_run(space, profile, trials, budget_s, sampler, objective, learn_from)
    _check_values(run, results_dir, seed, address, {"max_latency_ms": max_latency_ms, "max_size_kb": max_size_kb})
    if resume:
        opened, summary = _resume(results_dir / run, address, verify, gpus_per_worker, trials=trials,
                                  time_budget_s=budget_s, workers=workers, threads=threads)
    else:
        opened, summary = _start(results_dir, run, space, profile, address, verify, {
            "objectives": ["accuracy", "latency_ms"] + (["size_kb"] if objective else []),
            "constraints": Constraints(max_latency_ms=max_latency_ms, max_size_kb=max_size_kb),
            "sampler": sampler or DEFAULT_SAMPLER, "trials": trials, "time_budget_s": budget_s,
            "workers": workers or 2, "threads": threads, "gpus_per_worker": gpus_per_worker or 0.0,
            "seed": seed or 0, "finetune_epochs": finetune_epochs, "native_only": native_only,
            "learn_from": [str(path) for path in learn_from or []]})
    _conclude(opened, summary, results_dir, verify)


def _resume(path: Path, address: str | None, verify: bool, gpus_per_worker: float | None,
            **changes: object) -> tuple[Run, Summary]:
    """The run in ``path`` searched on, with the settings a resume may change."""
    from autocompress.devices import check_gpus_per_worker
    from autocompress.search.setup import open_run
    from autocompress.verify.measure import measurable_profile

    opened, hw_profile, prior = open_run(path)  # every file checked before the lock is taken
    check_gpus_per_worker(opened.config.gpus_per_worker if gpus_per_worker is None else gpus_per_worker, address)
    if verify:
        measurable_profile(hw_profile, str(opened.files.profile))
    with opened.files.lock(), _logging_to(opened.files.log):
        announce(f"{opened.path}: resuming (log: {opened.files.log})")
        opened.change_settings(gpus_per_worker=gpus_per_worker, **changes)
        return opened, _run_search(opened, hw_profile, prior, address)


def _start(results_dir: Path, run: str | None, space: Path, profile: Path, address: str | None, verify: bool,
           settings: dict) -> tuple[Run, Summary]:
    """A new run, checked, created and searched."""
    from autocompress.run.files import RunFiles
    from autocompress.search.setup import create_run, plan_run
    from autocompress.verify.measure import measurable_profile

    plan = plan_run(results_dir, run, space, profile, settings)
    if verify:
        measurable_profile(plan.profile, str(profile))
    fresh = not plan.path.exists()
    files = RunFiles(plan.path)
    with files.lock(), _logging_to(files.log):
        announce(f"{plan.path}: inputs checked, setting up the run (log: {files.log}); the base network "
                 "is trained first unless one was trained for this space before")
        opened = create_run(plan, fresh)
        return opened, _run_search(opened, plan.profile, plan.prior, address)


def _conclude(run: Run, summary: Summary, results_dir: Path, verify: bool) -> None:
    """After the search: its front verified if asked, the report, and the summary lines."""
    from autocompress.report import write_report

    if summary.first_failure is not None:
        _stop_failed(summary, run)
    if verify and not summary.interrupted:
        _verify(run.path)
    typer.echo(f"report: {write_report(run.path)}")
    _print_summary(summary, results_dir)


def _stop_failed(summary: Summary, run: Run) -> None:
    """One line naming the first trial's error, and exit status 1."""
    first = summary.first_failure
    typer.echo(f"{run.path}: every trial failed ({summary.failed}), the baselines included; the first, trial "
               f"{first.number}: {first.error} (log: {run.files.log})", err=True)
    sys.exit(FAILED_EXIT)


def _verify(run_dir: Path) -> None:
    """``--verify``: the finished run's front measured on its device, kept in the run folder."""
    from autocompress.run.run import Run
    from autocompress.verify.command import print_verification, verify_front
    from autocompress.verify.measure import targets

    print_verification(verify_front(targets(Run.open(run_dir))))


def _run_search(run: Run, hw_profile: HardwareProfile, prior: PriorTrials | None, address: str | None) -> Summary:
    """The search, then (unless it was interrupted) its front and baselines measured once on the test split."""
    from autocompress.search.driver import SearchDriver
    from autocompress.search.holdout import measure_test_split

    summary = SearchDriver(run, hw_profile, prior).run(address)
    if not summary.interrupted and summary.first_failure is None:  # else measured on --resume
        measure_test_split(run)
    return summary


def _print_summary(summary: Summary, results_dir: Path) -> None:
    typer.echo(f"{summary.folder}: {summary.complete} complete, {summary.failed} failed, "
               f"{summary.rejected} rejected, {summary.pruned} pruned by the fine-tune gate; "
               f"{summary.front} on the Pareto front ({summary.front_table.name}); {summary.wall_s:.0f} s")
    if summary.interrupted:
        typer.echo(f"stopped. Resume with: autocompress search --run {summary.run} --resume"
                   + (f" --results-dir {results_dir}" if results_dir != Path("results") else ""))
        sys.exit(INTERRUPTED_EXIT)
