"""Reports of a run: Pareto front, hypervolume, report.html, PNGs, summary.md, compare."""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.text import Text
from typer.testing import CliRunner

from autocompress.cli import app
from autocompress.report import write_report
from autocompress.report.analysis import analyse
from autocompress.report.claims import Split, claims
from autocompress.report.compare import compare_runs, latency_axis_label, plot, write_html
from autocompress.report.plots import front_figure
from autocompress.run.config import SearchConfig
from autocompress.run.files import RunFiles
from autocompress.run.front import hypervolume, hypervolume_history, pareto_mask
from autocompress.run.run import Run
from autocompress.run.trial import Kind
from tests.report_run import finished_run, in_progress_copy  # noqa: F401

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_hypervolume_2d_hand_computed():
    # Staircase (1,3), (2,2), (3,1) under reference (4,4): columns of height 1, 2 and 3.
    points = np.array([[1, 3], [2, 2], [3, 1]], dtype=float)
    assert hypervolume(points, np.array([4.0, 4.0])) == pytest.approx(6.0)
    # A dominated point and one outside the reference box add nothing.
    extra = np.vstack([points, [[3, 3], [5, 0]]])
    assert hypervolume(extra, np.array([4.0, 4.0])) == pytest.approx(6.0)


def test_hypervolume_3d_hand_computed():
    # Boxes [0,3]x[0,3]x[2,3] (9) and [2,3]x[2,3]x[0,3] (3) overlap in a unit cube: 11.
    points = np.array([[0, 0, 2], [2, 2, 0]], dtype=float)
    assert hypervolume(points, np.ones(3) * 3) == pytest.approx(11.0)
    assert hypervolume(np.array([[1, 2, 3]], dtype=float), np.ones(3) * 4) == pytest.approx(6.0)
    assert hypervolume(np.empty((0, 3)), np.ones(3)) == 0.0


def test_hypervolume_history_never_falls():
    rng = np.random.default_rng(0)
    history = hypervolume_history(rng.uniform(0, 1, size=(40, 2)))
    assert np.all(np.diff(history) >= -1e-12)
    assert history[-1] > 0


def test_pareto_mask_keeps_equal_points():
    assert pareto_mask(np.array([[1.0, 1.0], [1.0, 1.0]])).all()


def test_report_of_a_finished_run(finished_run):  # noqa: F811
    page = write_report(finished_run)
    text = page.read_text()
    assert "Pareto front" in text and "baseline uniform-8bit" in text and "Against the baselines" in text
    # Self-contained: no external script or stylesheet (plotly.js's own source mentions URLs
    # of map tiles, which plots of this kind never load).
    assert not re.search(r"<script[^>]*\ssrc=", text) and not re.search(r"<link[^>]*\shref=", text)
    for name in ("pareto.png", "size.png", "hypervolume.png", "policy.png"):
        assert (finished_run / name).read_bytes()[:8] == PNG_MAGIC
    summary = RunFiles(finished_run).report_summary.read_text()
    members = Run.open(finished_run).front()
    assert len(members) >= 2
    for trial in members:
        assert f"\n| {trial.number} |" in summary
    assert "<b>in progress</b>" not in text


def test_report_says_how_far_validation_tells_front_models_apart(finished_run, tmp_path):  # noqa: F811
    run = Run.open(finished_run)
    images = run.config.split_images
    best = max(trial.accuracy for trial in run.front())
    best = min(best, 1 - 1 / images["val"])
    points = 100 * math.sqrt(best * (1 - best) / images["val"])
    write_report(finished_run)
    summary = RunFiles(finished_run).report_summary.read_text()
    assert f"Selected by validation accuracy ({images['val']} images)" in summary
    assert f"standard error of about {points:.1f} points" in summary
    assert f"closer than about {2 * points:.1f} points are not told apart" in summary
    # a run made before the split sizes were recorded: the plain sentence, no made-up figure
    older = shutil.copytree(finished_run, tmp_path / "older")
    config = RunFiles(older).config
    SearchConfig.read(config).model_copy(update={"split_images": None}).write(config)
    write_report(older)
    summary = RunFiles(older).report_summary.read_text()
    assert "Selected by validation accuracy; test accuracy measured once" in summary
    assert "standard error" not in summary


def _expected_rival(baseline, front, column):
    """The fastest other front trial at least as accurate as ``baseline`` on ``column``."""
    faster = [t for t in front if t.number != baseline.number and getattr(t, column) >= getattr(baseline, column)]
    return min(faster, key=lambda t: (t.latency_ms, t.number), default=None)


def test_claims_against_the_baselines_are_made_on_the_test_split(finished_run, tmp_path):  # noqa: F811
    run = Run.open(finished_run)
    made = claims(analyse(run))
    baselines = [t for t in run.trials if t.kind is Kind.BASELINE]
    assert [c.baseline for c in made] == [t.label for t in baselines]
    assert all(c.split is Split.TEST for c in made)
    for claim, baseline in zip(made, baselines, strict=True):
        rival = _expected_rival(baseline, run.front(), "test_accuracy")
        assert claim.baseline_accuracy == baseline.test_accuracy
        assert claim.rival == (rival.number if rival else None)
        if rival is not None and rival.latency_ms < baseline.latency_ms:
            assert claim.speedup == pytest.approx(baseline.latency_ms / rival.latency_ms)
            assert f"trial {rival.number} is as accurate on the test split" in claim.sentence()
        else:
            assert "no faster front model is as accurate on the test split" in claim.sentence()
    write_report(finished_run)
    summary = RunFiles(finished_run).report_summary.read_text()
    assert "## Against the baselines" in summary and all(f"- {c.sentence()}" in summary for c in made)
    # a run stopped before its test measurement: the claims say they are made on validation
    stopped = shutil.copytree(finished_run, tmp_path / "stopped")
    RunFiles(stopped).test_accuracy.unlink()
    Run.open(stopped).write_tables(Run.open(stopped).trials)
    on_validation = claims(analyse(Run.open(stopped)))
    assert all(c.split is Split.VALIDATION and "on the validation split" in c.sentence() for c in on_validation)
    assert [c.baseline_accuracy for c in on_validation] == [t.accuracy for t in baselines]


def test_front_plot_has_log_axes_test_points_and_baseline_labels_apart(finished_run, tmp_path):  # noqa: F811
    crowded = shutil.copytree(finished_run, tmp_path / "crowded")
    run = Run.open(crowded)
    trials = run.trials
    first = trials[0]
    # every baseline, and one more labelled as a budgeted baseline is, at almost one point
    piled = [replace(t, latency_ms=first.latency_ms * (1 + 0.001 * t.number),
                     accuracy=first.accuracy - 0.001 * t.number) for t in trials[:5]]
    extra = replace(trials[5], kind=Kind.BASELINE, label="sensitivity-ilp@0.6", latency_ms=first.latency_ms,
                    accuracy=first.accuracy)
    run.write_tables([*piled, extra, *trials[6:]])
    analysis = analyse(Run.open(crowded))
    figure = front_figure(analysis, "latency_ms")
    overview, close_up = figure.axes
    assert overview.get_xscale() == close_up.get_xscale() == "log"
    legend = {text.get_text() for text in figure.legends[0].get_texts()}
    assert {"Pareto front (test)", "baselines (test)"} <= legend
    labels = close_up.texts
    assert sorted(t.get_text() for t in labels) == sorted([*(t.label for t in piled), extra.label])
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    boxes = [Text.get_window_extent(t, renderer) for t in labels]  # the name alone, not its line to the marker
    overlapping = [(a.get_text(), b.get_text()) for i, (a, box) in enumerate(zip(labels, boxes, strict=True))
                   for b, other in zip(labels[:i], boxes[:i], strict=True) if box.overlaps(other)]
    assert overlapping == []
    plt.close(figure)


def test_report_of_a_run_in_progress(finished_run, tmp_path):  # noqa: F811
    running = in_progress_copy(finished_run, tmp_path / "running")
    page = write_report(running)
    assert "<b>in progress</b>: 3 trial(s) running" in page.read_text()
    assert "- trials RUNNING: 3" in RunFiles(running).report_summary.read_text()


def test_report_of_a_run_with_no_trials_yet(finished_run, tmp_path):  # noqa: F811
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copy(RunFiles(finished_run).config, RunFiles(fresh).config)
    assert "front of 0" in write_report(fresh).read_text()


def test_report_command_and_its_user_errors(finished_run, tmp_path):  # noqa: F811
    runner = CliRunner()
    assert runner.invoke(app, ["report", str(finished_run)]).exit_code == 0
    missing = runner.invoke(app, ["report", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "not a run folder" in missing.output


def test_compare_two_runs(finished_run, tmp_path):  # noqa: F811
    other = in_progress_copy(finished_run, tmp_path / "other")
    Run.open(other).change_settings(run="other")
    comparison = compare_runs(Run.open(finished_run), Run.open(other))
    assert comparison.names == ("tiny", "other")
    assert {"stem", "expand", "head", "classifier"} <= set(comparison.policies["layer role"])
    assert comparison.hypervolumes == tuple(analyse(Run.open(p)).final_hypervolume for p in (finished_run, other))
    assert all(0 < volume < 1 for volume in comparison.hypervolumes)
    statistic = Run.open(finished_run).profile.latency_label()  # e.g. "median, ms per batch of 32"
    assert latency_axis_label(comparison).startswith(f"predicted latency_ms ({statistic})")
    png = plot(comparison, tmp_path / "compare.png")
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert "data:image/png;base64," in write_html(comparison, png, tmp_path / "compare.html").read_text()
    result = CliRunner().invoke(app, ["compare", str(finished_run), str(other), "--out", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert "layer role" in result.output and (tmp_path / "c" / "compare.html").is_file()
