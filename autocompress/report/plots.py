"""The report's figures as PNG files (matplotlib, headless), for slides."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from autocompress.report.analysis import Analysis  # noqa: E402
from autocompress.report.policy import KNOBS, knob_matrix, short_layer  # noqa: E402

AXIS_LABELS = {"accuracy": "validation accuracy", "latency_ms": "latency (ms)", "size_kb": "size (KB)"}
FRONT_COLOUR = "#d62728"
BIT_TICKS = [2, 4, 8, 32]
LABEL_GAP = 5
"""Points between a baseline's marker and its name, and half of that between two names."""
PLAIN_NUMBER = FuncFormatter(lambda value, _: f"{value:g}")
"""Log-axis tick labels as plain numbers (0.02, not 2 x 10^-2)."""


def save_figure(fig, path: Path) -> Path:
    """Lay out, write and close a figure (pyplot keeps every open figure alive)."""
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _ranges(values: pd.Series, log: bool) -> tuple[float, float]:
    """Axis limits around ``values`` with a margin (a share of the range, or of the value when all equal)."""
    low, high = float(values.min()), float(values.max())
    if log:
        margin = max(high / low, 1.05) ** 0.12
        return low / margin, high * margin
    margin = 0.12 * (high - low) or 0.01 * max(abs(high), 1e-3)
    return low - margin, high + margin


def _draw_front(ax: Axes, analysis: Analysis, column: str) -> None:
    """The front on validation (a step line where it is the 2-objective front on ``column``)."""
    run, members = analysis.run, analysis.front.sort_values(column)
    if column in run.objectives and len(run.objectives) == 2:
        ax.step(members[column], members["accuracy"], where="post", color=FRONT_COLOUR, lw=1.2)
    ax.scatter(members[column], members["accuracy"], s=40, facecolors="none", edgecolors=FRONT_COLOUR,
               label="Pareto front (validation)", zorder=3)


def _draw_test(ax: Axes, table: pd.DataFrame, column: str, colour: str, marker: str, label: str) -> None:
    """``table``'s test accuracies, each joined to its validation point by a thin line."""
    tested = table.dropna(subset=["test_accuracy"])
    if tested.empty:
        return
    ax.vlines(tested[column], tested["accuracy"], tested["test_accuracy"], colors=colour, lw=0.6, alpha=0.5)
    ax.scatter(tested[column], tested["test_accuracy"], marker=marker, s=36, c=colour, label=label, zorder=3)


def _label_baselines(ax: Axes, baselines: pd.DataFrame, column: str) -> None:
    """Each baseline's name beside its marker (left of it near the right edge). Placed from the
    most accurate down, a name that would overlap one placed before goes below that one, joined
    to its marker by a line: baselines often lie almost on one point (float and 8-bit on a float
    runtime), and their names must stay apart."""
    renderer = ax.figure.canvas.get_renderer()
    pixels_per_point = ax.figure.dpi / 72
    right_edge = ax.get_window_extent(renderer).x1
    placed: list[Bbox] = []
    for row in baselines.sort_values(["accuracy", "number"], ascending=[False, True]).itertuples():
        point = (getattr(row, column), row.accuracy)
        probe = ax.annotate(row.label, point, xytext=(LABEL_GAP, 0), textcoords="offset points", fontsize=7,
                            va="center")
        box = probe.get_window_extent(renderer)
        left = box.x1 > right_edge
        if left:
            box = box.translated(-box.width - 2 * LABEL_GAP * pixels_per_point, 0)
        drop = 0.0
        while (hit := next((b for b in placed if b.overlaps(box.translated(0, -drop))), None)) is not None:
            drop = box.y1 - hit.y0 + LABEL_GAP * pixels_per_point / 2
        probe.remove()
        ax.annotate(row.label, point, xytext=(-LABEL_GAP if left else LABEL_GAP, -drop / pixels_per_point),
                    textcoords="offset points", fontsize=7, va="center", ha="right" if left else "left",
                    annotation_clip=False, arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.5} if drop else None)
        placed.append(box.translated(0, -drop))


def _overview(ax: Axes, analysis: Analysis, column: str) -> None:
    """Every finished trial."""
    done = analysis.complete
    search = done[done["kind"] != "baseline"]
    ax.scatter(search[column], search["accuracy"], s=18, c="#1f77b4", alpha=0.6, label="trials")
    _draw_front(ax, analysis, column)
    ax.scatter(analysis.baselines[column], analysis.baselines["accuracy"], marker="D", s=30, c="black",
               label="baselines (validation)", zorder=3)
    ax.set_title(f"{analysis.run.name}: {len(done)} finished trials", fontsize=9)


def _close_up(ax: Axes, analysis: Analysis, column: str) -> None:
    """The front and the baselines alone, on validation and test, the axes fitted to them."""
    shown = pd.concat([analysis.front, analysis.baselines])
    done = analysis.complete
    search = done[done["kind"] != "baseline"]
    ax.scatter(search[column], search["accuracy"], s=12, c="#1f77b4", alpha=0.25, label="trials")
    _draw_front(ax, analysis, column)
    _draw_test(ax, analysis.front, column, FRONT_COLOUR, "x", "Pareto front (test)")
    ax.scatter(analysis.baselines[column], analysis.baselines["accuracy"], marker="D", s=30, c="black",
               label="baselines (validation)", zorder=3)
    _draw_test(ax, analysis.baselines, column, "black", "d", "baselines (test)")
    ax.set_xlim(*_ranges(shown[column], log=True))
    ax.set_ylim(*_ranges(pd.concat([shown["accuracy"], shown["test_accuracy"]]).dropna(), log=False))
    ax.set_title("the front and the baselines: validation (o, D) and test (x, d)", fontsize=9)


def front_figure(analysis: Analysis, column: str) -> Figure:
    """Accuracy against ``column`` (latency or size, log scale): every finished trial on the left,
    and on the right the front and the baselines close up, each with its test accuracy (joined to
    its validation one) and the baselines named. Laid out, ready to save."""
    fig, (overview, close_up) = plt.subplots(1, 2, figsize=(12, 4.8), dpi=120)
    _overview(overview, analysis, column)
    overview.set_ylabel(f"validation {analysis.metric}")
    shown = len(analysis.front) + len(analysis.baselines) > 0
    if shown:
        _close_up(close_up, analysis, column)
    close_up.set_ylabel(f"validation and test {analysis.metric}")
    name = f"predicted {analysis.run.latency_label}" if column == "latency_ms" else AXIS_LABELS[column]
    for ax, has_points in ((overview, len(analysis.complete) > 0), (close_up, shown)):
        ax.grid(alpha=0.3, which="both")
        if not has_points:  # no trial finished yet: a log scale would have nothing to scale
            continue
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(PLAIN_NUMBER)
        ax.xaxis.set_minor_formatter(PLAIN_NUMBER)
        ax.tick_params(axis="x", which="both", labelsize=7)
        ax.set_xlabel(f"{name}, log scale", fontsize=8)
    # one legend below both panels, where it hides no point and no name
    fig.legend(*(close_up if shown else overview).get_legend_handles_labels(), loc="lower center", ncol=5,
               fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    if shown:
        _label_baselines(close_up, analysis.baselines, column)
    return fig


def _scatter(analysis: Analysis, column: str, path: Path) -> Path:
    fig = front_figure(analysis, column)
    fig.savefig(path)
    plt.close(fig)
    return path


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
    fig.suptitle(f"policy of the front's members (rows: trial, {analysis.metric} / latency, fastest first); "
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
