"""report.html: one self-contained page (plotly.js inlined, nothing fetched when opened)."""

from __future__ import annotations

import html
import json
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from autocompress.models.family import ModelFamily, family_of
from autocompress.report import tables
from autocompress.report.analysis import Analysis
from autocompress.report.claims import CLAIMS_NOTE, claims
from autocompress.report.plots import FRONT_COLOUR
from autocompress.report.policy import KNOBS, knob_matrix, policy_text, short_layer

_HOVER = ("trial %{customdata[0]}<br>accuracy %{y:.4f}<br>latency %{x:.3f} ms<br>size %{customdata[1]:.1f} KB"
          "<br>%{customdata[2]}<extra></extra>")

_SORT_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0];
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var ascending = th.dataset.order !== "asc";
    th.parentNode.querySelectorAll("th").forEach(function (h) { delete h.dataset.order; });
    th.dataset.order = ascending ? "asc" : "desc";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[index].textContent, y = b.cells[index].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var order = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } table.sortable th { cursor: pointer; }
th[data-order=asc]::after { content: " \\25B2"; } th[data-order=desc]::after { content: " \\25BC"; }
td.policy { font-family: monospace; font-size: 0.9em; white-space: pre-line; }
.note { color: #666; font-size: 0.85em; } .cols { display: flex; gap: 2em; flex-wrap: wrap; }
"""


def _customdata(table: pd.DataFrame, family: ModelFamily) -> list[list[Any]]:
    return [[int(row.number), float(row.size_kb), policy_text(family.parse_candidate(row.candidate))]
            for row in table.itertuples()]


def _add_baselines(figure: go.Figure, baselines: pd.DataFrame, family: ModelFamily) -> None:
    """One legend entry per baseline, named (names beside the markers would overlap where
    baselines lie close), its test accuracy an open diamond of its colour."""
    colours = qualitative.Dark2  # no red: red is the front
    for index, row in enumerate(baselines.sort_values("number").itertuples()):
        one = baselines[baselines["number"] == row.number]
        colour = colours[index % len(colours)]
        figure.add_scatter(x=one["latency_ms"], y=one["accuracy"], mode="markers", name=f"baseline {row.label}",
                           legendgroup=row.label, marker={"symbol": "diamond", "size": 11, "color": colour},
                           customdata=_customdata(one, family), hovertemplate=f"{row.label}<br>{_HOVER}")
        if pd.notna(row.test_accuracy):
            figure.add_scatter(x=one["latency_ms"], y=one["test_accuracy"], mode="markers",
                               name=f"baseline {row.label} (test)", legendgroup=row.label, showlegend=False,
                               marker={"symbol": "diamond-open", "size": 11, "color": colour},
                               customdata=_customdata(one, family),
                               hovertemplate=f"{row.label}<br>{_HOVER.replace('accuracy', 'test accuracy')}")


def _scatter(analysis: Analysis) -> go.Figure:
    family = family_of(analysis.run.space)
    done = analysis.complete
    search = done[done["kind"] != "baseline"]
    figure = go.Figure()
    figure.add_scatter(x=search["latency_ms"], y=search["accuracy"], mode="markers", name="trials (darker: later)",
                       marker={"color": search["number"], "colorscale": "Blues", "size": 8, "showscale": False,
                               "line": {"width": 0.5, "color": "#444"}},
                       customdata=_customdata(search, family), hovertemplate=_HOVER)
    members = analysis.front.sort_values("latency_ms")
    count = len(analysis.run.objectives)
    figure.add_scatter(x=members["latency_ms"], y=members["accuracy"],
                       mode="lines+markers" if count == 2 else "markers",
                       name="Pareto front" if count == 2 else f"Pareto front ({count} objectives)",
                       line={"shape": "hv", "color": FRONT_COLOUR},
                       marker={"size": 12, "symbol": "circle-open", "color": FRONT_COLOUR},
                       customdata=_customdata(members, family), hovertemplate=_HOVER)
    tested = members.dropna(subset=["test_accuracy"])
    if len(tested):
        figure.add_scatter(x=tested["latency_ms"], y=tested["test_accuracy"], mode="markers",
                           name="Pareto front on the test split",
                           marker={"symbol": "x", "size": 9, "color": FRONT_COLOUR},
                           customdata=_customdata(tested, family),
                           hovertemplate=_HOVER.replace("accuracy", "test accuracy"))
    _add_baselines(figure, analysis.baselines, family)
    figure.update_layout(title="accuracy against latency: every finished trial (drag to zoom, double-click to "
                         "see all again)", height=520, xaxis_type="log",
                         xaxis_title=f"predicted {analysis.run.latency_label}, log scale",
                         yaxis_title="accuracy (validation; test where marked)",
                         hoverlabel={"font": {"family": "monospace", "size": 11}}, template="plotly_white")
    return figure


def _hypervolume(analysis: Analysis) -> go.Figure:
    history = analysis.hypervolume
    figure = go.Figure(go.Scatter(x=history["number"], y=history["hypervolume"], mode="lines+markers",
                                  line={"shape": "hv", "color": "#2ca02c"}, name="hypervolume"))
    figure.update_layout(title="hypervolume of the front against trial number", height=320,
                         xaxis_title="trial number", yaxis_title="hypervolume", template="plotly_white")
    return figure


def _cell_labels(analysis: Analysis, knob: str, trials: list[int]) -> list[list[str]]:
    """Heat-map cell texts: the value, with c/u (channel/unstructured) after a sparsity."""
    values = knob_matrix(analysis.policies, knob, trials)
    kinds = knob_matrix(analysis.policies, "sparsity_kind", trials)
    return [["" if value != value else f"{value:g}" + (kind[0] if knob == "sparsity" and value > 0 else "")
             for value, kind in zip(row, kind_row, strict=True)]
            for row, kind_row in zip(values.to_numpy(dtype=float), kinds.to_numpy(), strict=True)]


def _policy(analysis: Analysis) -> go.Figure:
    trials = [int(n) for n in analysis.front["number"]]
    labels = [f"#{row.number} ({row.accuracy:.3f}, {row.latency_ms:.2f} ms)" for row in analysis.front.itertuples()]
    figure = make_subplots(rows=len(KNOBS), cols=1, subplot_titles=list(KNOBS.values()), vertical_spacing=0.14)
    for index, knob in enumerate(KNOBS, start=1):
        if not trials:
            break
        matrix = knob_matrix(analysis.policies, knob, trials)
        values = matrix.to_numpy(dtype=float)
        colour = np.log2(values) if knob.endswith("_bits") else values
        figure.add_heatmap(z=colour.tolist(), x=[short_layer(c) for c in matrix.columns], y=labels, row=index, col=1,
                           colorscale="Viridis", showscale=False, name=KNOBS[knob],
                           text=_cell_labels(analysis, knob, trials), texttemplate="%{text}",
                           hovertemplate=f"%{{y}}<br>%{{x}}<br>{KNOBS[knob]} %{{text}}<extra></extra>")
    figure.update_layout(title="per-layer policy of the front (blank: layer absent; bit colours on a log scale; "
                         "sparsity c: channel, u: unstructured)",
                         height=300 + 90 * len(KNOBS) * max(1, len(trials)) ** 0.7, template="plotly_white")
    return figure


def _figure_div(figure: go.Figure, div_id: str) -> str:
    return figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                          config={"displaylogo": False, "responsive": True})


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return html.escape(json.dumps(value))
    return html.escape(str(value))


def _table(table: pd.DataFrame, sortable: bool = False, policy_column: str | None = None) -> str:
    if table.empty:
        return '<p class="note">none yet</p>'
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    rows = []
    for _, row in table.iterrows():
        cells = "".join(
            f'<td class="policy">{_cell(v)}</td>' if c == policy_column else f"<td>{_cell(v)}</td>"
            for c, v in row.items()
        )
        rows.append(f"<tr>{cells}</tr>")
    kind = ' class="sortable"' if sortable else ""
    return f"<table{kind}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _claims(analysis: Analysis) -> str:
    sentences = [claim.sentence() for claim in claims(analysis)]
    if not sentences:
        return '<p class="note">no baseline finished yet</p>'
    return f'<p class="note">{html.escape(CLAIMS_NOTE)}</p><ul>' + "".join(
        f"<li>{html.escape(sentence)}</li>" for sentence in sentences) + "</ul>"


def _pairs(data: dict[str, Any]) -> str:
    if not data:
        return '<p class="note">not available</p>'
    return _table(pd.DataFrame({"setting": list(data), "value": list(data.values())}))


def render(analysis: Analysis) -> str:
    """The whole report page as one HTML string."""
    run = analysis.run
    device = tables.profile_summary(run.profile)
    timings = tables.timings(analysis)
    running = timings.get("trials RUNNING", 0)
    status = f" &middot; <b>in progress</b>: {running} trial(s) running" if running else ""
    sections = [
        f"<h1>autocompress run <code>{html.escape(run.name)}</code></h1>",
        f'<p class="note">{timings["trials"]} trials, {len(analysis.complete)} finished, '
        f"front of {len(analysis.front)}, objectives {html.escape(', '.join(run.objectives))}{status}</p>",
        "<h2>Against the baselines</h2>", _claims(analysis),
        "<h2>Accuracy and latency</h2>", _figure_div(_scatter(analysis), "scatter"),
        f"<h2>Pareto front</h2><p class=note>{html.escape(tables.selection_note(analysis))} "
        "Click a column header to sort.</p>",
        _table(tables.front_table(analysis, "\n"), sortable=True, policy_column="policy"),
        "<h2>Baselines: uniform policies and the sensitivity-based allocator</h2>",
        _table(tables.baseline_table(analysis)),
        "<h2>Front measured on the device</h2>", f'<p class="note">{html.escape(tables.verify_note(analysis))}</p>',
        _table(tables.verify_table(analysis), sortable=True) if run.verification else "",
        "<h2>Hypervolume</h2>",
        '<p class="note">Objectives normalised: error = 1 - accuracy; latency and size divided by 1.1 x '
        "the largest finished trial's; reference point (1, 1[, 1]).</p>",
        _figure_div(_hypervolume(analysis), "hypervolume"),
        "<h2>Per-layer policy of the front</h2>", _figure_div(_policy(analysis), "policy"),
        *([f"<h2>Accuracy predictor</h2><p class=note>{tables.predictor_note(lambda key: f'<i>{key}</i>')}</p>",
           _pairs(tables.flatten(run.predictor.model_dump()))] if run.predictor else []),
        '<div class="cols"><div><h2>Device profile</h2>', _pairs(device),
        "<h3>Validation of its latency predictions</h3>", _table(tables.validation_table(run.profile)), "</div>",
        "<div><h2>Run settings</h2>", _pairs(tables.settings(analysis)),
        "<h2>Timings</h2>", _pairs(timings), "</div></div>",
        "<h2>Search space</h2><details><summary>show</summary><pre>"
        f"{html.escape(json.dumps(run.config.space, indent=1))}</pre></details>",
    ]
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>autocompress: {html.escape(run.name)}</title>"
            f"<style>{_STYLE}</style><script>{get_plotlyjs()}</script></head><body>"
            f"{''.join(sections)}<script>{_SORT_SCRIPT}</script></body></html>")
