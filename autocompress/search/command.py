"""``autocompress search``: start a run or resume one (``autocompress.api.search`` does the work)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from autocompress.search.samplers import DEFAULT_SAMPLER, sampler_names

if TYPE_CHECKING:
    from autocompress.search.driver import Summary

INTERRUPTED_EXIT = 130
FAILED_EXIT = 1


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
    sensitivity_baselines: Annotated[bool, typer.Option(help=(
        "measure each search unit's sensitivity to each knob and add the allocator's candidates "
        "(sensitivity-ilp@<budget>) to the baselines"))] = True,
    results_dir: Annotated[Path, typer.Option(help="where run folders live")] = Path("results"),
    verify: Annotated[bool, typer.Option(help=(
        "at the end, measure every front model on the profile's device against its prediction "
        "(as 'autocompress verify'); needs a measured device"))] = False,
) -> None:
    """Search the space for the accuracy/latency Pareto front of compressed networks."""
    from autocompress.api import SearchFailed, search

    try:
        result = search(space, profile, trials=trials, time_budget=time_budget, workers=workers, threads=threads,
                        gpus_per_worker=gpus_per_worker, sampler=sampler, run=run, resume=resume, address=address,
                        max_latency_ms=max_latency_ms, max_size_kb=max_size_kb, objective=objective or (),
                        seed=seed, finetune_epochs=finetune_epochs, native_only=native_only,
                        learn_from=learn_from or (), results_dir=results_dir, verify=verify,
                        sensitivity_baselines=sensitivity_baselines)
    except SearchFailed as failure:
        typer.echo(str(failure), err=True)
        sys.exit(FAILED_EXIT)
    if result.folder.verification is not None and verify:
        from autocompress.verify.command import print_verification

        print_verification(result.folder.verification)
    typer.echo(f"report: {result.folder.files.report}")
    _print_summary(result.summary, results_dir)


def _print_summary(summary: Summary, results_dir: Path) -> None:
    typer.echo(f"{summary.folder}: {summary.complete} complete, {summary.failed} failed, "
               f"{summary.rejected} rejected, {summary.pruned} pruned by the fine-tune gate; "
               f"{summary.front} on the Pareto front ({summary.front_table.name}); {summary.wall_s:.0f} s")
    if summary.interrupted:
        typer.echo(f"stopped. Resume with: autocompress search --run {summary.run} --resume"
                   + (f" --results-dir {results_dir}" if results_dir != Path("results") else ""))
        sys.exit(INTERRUPTED_EXIT)
