"""``autocompress report`` and ``autocompress compare``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autocompress.errors import UserInputError

RunArg = Annotated[str, typer.Argument(help="run folder, or a run name under results/")]


def report_command(run: RunArg) -> None:
    """Write report.html, PNG plots and summary.md into the run folder (also mid-run)."""
    from autocompress.report import write_report
    from autocompress.run.run import resolve

    page = write_report(resolve(run))
    typer.echo(f"wrote {page} and the plots and summary.md beside it")


def compare_command(
    run_a: RunArg,
    run_b: RunArg,
    out: Annotated[Path | None, typer.Option(help="folder for compare.png and compare.html "
                                                  "(default: results/compare_<A>_vs_<B>)")] = None,
) -> None:
    """Both runs' fronts on one plot, and how their policies differ per layer role."""
    from autocompress.report.compare import compare_runs, plot, text, write_html
    from autocompress.run.run import RESULTS_DIR, Run, resolve

    if out is not None and out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out}: is a file; give a folder for compare.png and compare.html")
    comparison = compare_runs(Run.open(resolve(run_a)), Run.open(resolve(run_b)))
    folder = out or RESULTS_DIR / f"compare_{comparison.runs[0].run.name}_vs_{comparison.runs[1].run.name}"
    folder.mkdir(parents=True, exist_ok=True)
    png = plot(comparison, folder / "compare.png")
    page = write_html(comparison, png, folder / "compare.html")
    typer.echo(text(comparison))
    typer.echo(f"\nwrote {png} and {page}")
