"""summary.md: the run in a page of Markdown (for a pull request, a chat, a notebook)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from autocompress.report import tables
from autocompress.report.analysis import Analysis
from autocompress.report.claims import CLAIMS_NOTE, claims


def markdown_table(table: pd.DataFrame) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "" if value != value else f"{value:.4g}"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def _pairs(data: dict[str, Any]) -> str:
    return "\n".join(f"- {key}: {value}" for key, value in data.items() if value is not None) or "- not available"


def render(analysis: Analysis, files: list[str]) -> str:
    run = analysis.run
    device = tables.profile_summary(run.profile)
    validation = tables.validation_table(run.profile)
    verified = tables.verify_table(analysis)
    front = tables.front_table(analysis).drop(columns=["policy"])
    constraints = ", ".join(f"{k} <= {v:g}" for k, v in run.config.constraints.bounds().items()) or "none"
    return "\n\n".join([
        f"# autocompress run `{run.name}`",
        f"Objectives: {', '.join(run.objectives)}; constraints: {constraints}.",
        "## Against the baselines\n\n" + CLAIMS_NOTE + "\n\n"
        + ("\n".join(f"- {claim.sentence()}" for claim in claims(analysis)) or "- no baseline finished yet"),
        "## Timings\n\n" + _pairs(tables.timings(analysis)),
        "## Pareto front\n\n" + tables.selection_note(analysis) + "\n\n"
        + (markdown_table(front) if len(front) else "No finished trial yet."),
        "## Baselines: uniform policies and the sensitivity-based allocator\n\n"
        + markdown_table(tables.baseline_table(analysis)),
        "## Front measured on the device\n\n" + tables.verify_note(analysis)
        + ("\n\n" + markdown_table(verified) if len(verified) else ""),
        *(["## Accuracy predictor\n\n" + tables.predictor_note() + "\n\n"
           + _pairs(tables.flatten(run.predictor.model_dump()))] if run.predictor else []),
        "## Device profile\n\n" + _pairs(device) + "\n\nValidation of its latency predictions:\n\n"
        + (markdown_table(validation) if len(validation) else "- not available"),
        "## Files\n\n" + "\n".join(f"- `{name}`" for name in files),
    ]) + "\n"
