"""The report's figures as PNG files (matplotlib, headless), for slides."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402

from autocompress.report.analysis import Analysis  # noqa: E402
from autocompress.report.policy import KNOBS, knob_matrix, short_layer  # noqa: E402

AXIS_LABELS = {"accuracy": "validation accuracy", "latency_ms": "latency (ms)", "size_kb": "size (KB)"}
FRONT_COLOUR = "#d62728"
BIT_TICKS = [2, 4, 8, 32]


def save_figure(fig, path: Path) -> Path:
    """Lay out, write and close a figure (pyplot keeps every open figure alive)."""
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _scatter(analysis: Analysis, column: str, path: Path) -> Path:
    run = analysis.run
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    done = analysis.complete
    search = done[done["kind"] != "baseline"]
    ax.scatter(search[column], search["accuracy"], s=18, c="#1f77b4", alpha=0.6, label="trials")
    if column in run.objectives and len(analysis.front):
        members = analysis.front.sort_values(column)
        if len(run.objectives) == 2:
            ax.step(members[column], members["accuracy"], where="post", color=FRONT_COLOUR, lw=1.2)
        ax.scatter(members[column], members["accuracy"], s=40, facecolors="none", edgecolors=FRONT_COLOUR,
                   label="Pareto front")
    for row in analysis.baselines.itertuples():
        ax.scatter(getattr(row, column), row.accuracy, marker="D", s=40, c="black")
        ax.annotate(row.label, (getattr(row, column), row.accuracy), fontsize=7, xytext=(4, 4),
                    textcoords="offset points")
    ax.set_xlabel(f"predicted {run.latency_label}" if column == "latency_ms" else AXIS_LABELS[column])
    ax.set_ylabel(AXIS_LABELS["accuracy"])
    ax.set_title(f"{run.name}: {len(done)} finished trials (diamonds: uniform baselines)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, path)


def _hypervolume(analysis: Analysis, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3), dpi=120)
    history = analysis.hypervolume
    ax.step(history["number"], history["hypervolume"], where="post", color="#2ca02c")
    ax.set_xlabel("trial number")
    ax.set_ylabel("hypervolume")
    ax.set_title("hypervolume of the front so far (normalised objectives)", fontsize=9)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def _policy(analysis: Analysis, path: Path) -> Path:
    trials = [int(n) for n in analysis.front["number"]]
    labels = [f"#{row.number} {row.accuracy:.3f} / {row.latency_ms:.2f} ms" for row in analysis.front.itertuples()]
    fig, axes = plt.subplots(len(KNOBS), 1, figsize=(10, 1.2 + 1.9 * len(KNOBS)), dpi=110, squeeze=False)
    for ax, (knob, title) in zip(axes[:, 0], KNOBS.items(), strict=True):
        if not trials:
            ax.set_axis_off()
            continue
        matrix = knob_matrix(analysis.policies, knob, trials)
        bits = knob.endswith("_bits")
        image = ax.imshow(np.ma.masked_invalid(matrix.to_numpy(dtype=float)), aspect="auto", cmap="viridis",
                          norm=LogNorm(2, 32) if bits else None)
        ax.set_yticks(range(len(trials)), labels, fontsize=7)
        ax.set_xticks(range(matrix.shape[1]), [short_layer(c) for c in matrix.columns], rotation=90, fontsize=6)
        ax.set_title(title, fontsize=9)
        bar = fig.colorbar(image, ax=ax, fraction=0.02)
        if bits:
            bar.set_ticks(BIT_TICKS, labels=[str(b) for b in BIT_TICKS])
            bar.minorticks_off()
    fig.suptitle("policy of the front's members (rows: trial, accuracy / latency, fastest first); "
                 "blank: layer absent", fontsize=9)
    return save_figure(fig, path)


def write_pngs(analysis: Analysis, directory: Path) -> list[Path]:
    """pareto.png (accuracy/latency), size.png, hypervolume.png, policy.png."""
    return [
        _scatter(analysis, "latency_ms", directory / "pareto.png"),
        _scatter(analysis, "size_kb", directory / "size.png"),
        _hypervolume(analysis, directory / "hypervolume.png"),
        _policy(analysis, directory / "policy.png"),
    ]
