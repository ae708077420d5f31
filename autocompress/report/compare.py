"""Two runs side by side (e.g. one space searched for two devices): fronts and policies."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from autocompress.report.analysis import Analysis, analyse  # noqa: E402
from autocompress.report.plots import AXIS_LABELS, save_figure  # noqa: E402
from autocompress.report.policy import role_means  # noqa: E402
from autocompress.report.summary import markdown_table  # noqa: E402
from autocompress.run.run import Run  # noqa: E402

COLOURS = ("#1f77b4", "#d62728")
POLICY_CAPTION = "Mean policy of each front per layer role (w bits: over quantized layers only):"


@dataclass(frozen=True)
class Comparison:
    runs: tuple[Analysis, Analysis]
    names: tuple[str, str]
    hypervolumes: tuple[float, float]
    policies: pd.DataFrame


def _names(runs: tuple[Analysis, Analysis]) -> tuple[str, str]:
    first, second = (a.run.name for a in runs)
    return (first, second) if first != second else (f"{first} (A)", f"{second} (B)")


def _policy_table(runs: tuple[Analysis, Analysis], names: tuple[str, str]) -> pd.DataFrame:
    """Mean knob per layer role on each front, the two runs' columns side by side."""
    columns = {"weight_bits": "w bits", "quantized_share": "quantized", "activation_bits": "a bits",
               "sparsity": "sparsity", "rank_ratio": "rank"}
    tables = [role_means(a.policies)[list(columns)].rename(columns=columns) for a in runs]
    joined = pd.concat(tables, axis=1, keys=names).round(2)
    joined = joined.swaplevel(axis=1)[list(columns.values())]
    joined.columns = [f"{knob} {name}" for knob, name in joined.columns]
    return joined.reset_index().rename(columns={"role": "layer role"})


def compare_runs(first: Run, second: Run) -> Comparison:
    runs = (analyse(first), analyse(second))
    volumes = (runs[0].final_hypervolume, runs[1].final_hypervolume)
    names = _names(runs)
    return Comparison(runs, names, volumes, _policy_table(runs, names))


def latency_axis_label(comparison: Comparison) -> str:
    """The plot's latency axis, naming each run's predicted statistic (once if the runs share it)."""
    labels = [a.run.latency_label for a in comparison.runs]
    named = labels[0] if labels[0] == labels[1] else "; ".join(
        f"{name}: {label}" for name, label in zip(comparison.names, labels, strict=True))
    return f"predicted {named} on each run's device (log scale)"


def plot(comparison: Comparison, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for analysis, name, colour in zip(comparison.runs, comparison.names, COLOURS, strict=True):
        done = analysis.complete
        ax.scatter(done["latency_ms"], done["accuracy"], s=10, color=colour, alpha=0.25)
        members = analysis.front.sort_values("latency_ms")
        ax.step(members["latency_ms"], members["accuracy"], where="post", color=colour, lw=1.4)
        ax.scatter(members["latency_ms"], members["accuracy"], s=30, color=colour, label=f"{name} front")
    ax.set_xscale("log")
    ax.set_xlabel(latency_axis_label(comparison), fontsize=8)
    ax.set_ylabel(AXIS_LABELS["accuracy"])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, path)


def headline(comparison: Comparison) -> list[str]:
    """One line per run: front size, hypervolume against a shared reference, device."""
    return [f"{name}: {len(a.front)} front members of {len(a.complete)} finished trials, "
            f"hypervolume {volume:.4f} (against its own reference), device {a.run.config.profile_device}"
            for a, name, volume in zip(comparison.runs, comparison.names, comparison.hypervolumes, strict=True)]


def text(comparison: Comparison) -> str:
    """What ``compare`` prints: the headline and the policy means per layer role."""
    return "\n".join([*headline(comparison), "", POLICY_CAPTION, "", markdown_table(comparison.policies)])


def write_html(comparison: Comparison, png: Path, path: Path) -> Path:
    """A small self-contained page: the plot (inlined PNG) and the policy table."""
    image = base64.b64encode(png.read_bytes()).decode()
    table = comparison.policies.to_html(index=False, border=0)
    title = html.escape(" vs ".join(comparison.names))
    path.write_text(f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{title}</title>"
                    "<style>body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1000px}"
                    "td,th{border:1px solid #ddd;padding:3px 7px}table{border-collapse:collapse}</style></head>"
                    f"<body><h1>{title}</h1><img alt=\"fronts\" src=\"data:image/png;base64,{image}\">"
                    f"<pre>{html.escape(chr(10).join(headline(comparison)))}</pre>"
                    f"<p>{POLICY_CAPTION}</p>{table}</body></html>")
    return path
