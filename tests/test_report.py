"""Reports of a run: Pareto front, hypervolume, report.html, PNGs, summary.md, compare."""

from __future__ import annotations

import math
import re
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from autocompress.cli import app
from autocompress.report import write_report
from autocompress.report.analysis import analyse
from autocompress.report.compare import compare_runs, latency_axis_label, plot, write_html
from autocompress.run.config import SearchConfig
from autocompress.run.files import RunFiles
from autocompress.run.front import hypervolume, hypervolume_history, pareto_mask
from autocompress.run.run import Run
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
    assert "Pareto front" in text and "uniform baselines" in text
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
