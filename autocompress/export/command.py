"""``autocompress export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autocompress.errors import UserInputError


def export_command(
    run: Annotated[str, typer.Argument(help="run folder, or a run name under results/")],
    trial: Annotated[int, typer.Option(help="trial number (see the report's front table)")],
    out: Annotated[Path | None, typer.Option(help="output folder (default: <run>/export/trial_<N>)")] = None,
) -> None:
    """Write a trial's model to ship: weights at their bit-widths, candidate, float and int8 ONNX."""
    from autocompress.export.exporter import export_trial
    from autocompress.run.run import Run, resolve

    if out is not None and out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out}: is a file; give a folder for the exported files")
    result = export_trial(Run.open(resolve(run)), trial, out)
    typer.echo(f"exported trial {trial} to {result.directory}")
    for name, size in result.files.items():
        typer.echo(f"  {name:<16} {size:>10,} bytes")
    typer.echo(f"weights at their bit-widths: weights.bin {result.weights_bytes:,} bytes; the search reported "
               f"{result.reported_bytes:,.0f} ({result.size_ratio:.4f}x); candidate.json and space.yaml "
               "describe the structure, the ONNX files are runtime formats")
    typer.echo(f"validation {result.metric}: search {result.search_accuracy:.4f}; "
               + ", ".join(f"{name} {value:.4f}" for name, value in result.accuracy.items()))
    searched = ("not measured (neither on the front nor a baseline)" if result.search_test_accuracy is None
                else f"{result.search_test_accuracy:.4f}")
    typer.echo(f"test {result.metric}: the search's measurement {searched}; "
               + ", ".join(f"{name} {value:.4f}" for name, value in result.test_accuracy.items()))
    if result.agreement_with_search is not None:
        typer.echo(f"predictions: exported vs search-time model agree on {result.agreement_with_search:.2%}; "
                   f"model.onnx vs torch on {result.onnx_agreement_with_torch:.2%}")
    typer.echo(f"latency: measured {result.measured_ms:.3f} ms ({result.statistic} of the calls, IQR "
               f"{result.measured_spread_ms:.3f}) on {result.runtime} here ({result.clock} clock); "
               f"the search predicted {result.predicted_ms:.3f} ms as {result.predicted_label} "
               f"for {result.device}")
