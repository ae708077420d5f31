"""Pareto reports of a run: report.html, PNG plots and summary.md in the run folder."""

from __future__ import annotations

import re
from pathlib import Path

from autocompress.errors import UserInputError
from autocompress.files import write_atomic


def write_report(run_dir: Path) -> Path:
    """Write report.html, the PNG plots and summary.md into ``run_dir``; returns the HTML path.

    Works on a run still in progress: it reports the trials finished so far. A report already
    there is never replaced by one of no trials (the trial table gone or emptied).
    """
    # Imported here: torch, pandas and matplotlib take seconds, and every command imports this
    # package (through its command module) before it can print its first line.
    from autocompress.report import html, summary
    from autocompress.report.analysis import analyse
    from autocompress.report.plots import write_pngs
    from autocompress.run.run import Run

    run = Run.open(run_dir)
    page, markdown = run.files.report, run.files.report_summary
    if not run.trials and page.is_file():
        raise UserInputError(f"{run.files.trials}: no trials (missing or empty); {page} is left as it was")
    analysis = analyse(run)
    pngs = write_pngs(analysis, run.path)
    write_atomic(page, in_metric(html.render(analysis), analysis.metric))
    files = [page.name, *(p.name for p in pngs), markdown.name]
    write_atomic(markdown, in_metric(summary.render(analysis, files), analysis.metric))
    return page


def in_metric(text: str, metric: str) -> str:
    """The report's words for the score (``accuracy``) as the run's metric names it (``IoU``)."""
    return text if metric == "accuracy" else re.sub(r"\baccurac(y|ies)\b", metric, text)
