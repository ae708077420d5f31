"""Report and export of a run written by the real search (Ray, 2 workers, tiny space)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from autocompress.cli import app
from autocompress.export.exporter import export_trial
from autocompress.report import write_report
from autocompress.run.files import RunFiles
from autocompress.run.run import Run
from autocompress.run.trial import Kind

SPACE = Path(__file__).parent / "spaces" / "search_tiny.yaml"


@pytest.fixture(scope="module")
def searched_run(tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("results")
    profile = results / "bitfusion.json"
    runner = CliRunner()
    made = runner.invoke(app, ["profile", str(SPACE), "--runtime", "bitfusion-model", "--out", str(profile)])
    assert made.exit_code == 0, made.output
    searched = runner.invoke(app, ["search", str(SPACE), "--profile", str(profile), "--trials", "3",
                                   "--workers", "2", "--sampler", "random", "--finetune-epochs", "0",
                                   "--run", "real", "--results-dir", str(results), "--no-sensitivity-baselines"])
    assert searched.exit_code == 0, searched.output
    return results / "real"


def test_report_and_export_of_a_real_search(searched_run, tmp_path):
    run = Run.open(searched_run)
    assert len(run.complete) == 3 + 5  # search trials and the five uniform baselines
    text = write_report(searched_run).read_text()
    assert "Pareto front" in text and "bitfusion" in text
    named = "latency_ms (median, ms per batch of 32)"  # the statistic a latency is, wherever it is shown
    assert named in text and named in RunFiles(searched_run).report_summary.read_text()
    assert named in run.files.log.read_text()
    number = next(t.number for t in run.complete if t.kind is Kind.SEARCH)
    result = export_trial(run, number, tmp_path / "export")
    assert abs(result.size_ratio - 1) <= 0.05
    assert result.agreement_with_search >= 0.99
    assert result.onnx_agreement_with_torch >= 0.99
    assert result.runtime == "onnxruntime"  # a modelled device is timed on onnxruntime here
