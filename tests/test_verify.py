"""``autocompress verify`` and the statistic a profile predicts, end to end.

The run is the tiny finished run of ``report_run`` (no Ray); its device is this CPU, profiled
for the tiny space (torch-fp32, batch 4, no validation) in a few seconds.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autocompress.cli import app
from autocompress.errors import UserInputError
from autocompress.hw.accelerator import modelled_profile
from autocompress.hw.predict import predict
from autocompress.hw.profile import load_profile, save_profile
from autocompress.hw.profiler import measure_profile
from autocompress.models.family import family_of
from autocompress.models.space_file import load_space
from autocompress.report import write_report
from autocompress.run.config import Constraints, SearchConfig
from autocompress.run.files import RunFiles
from autocompress.run.run import Run
from tests.conftest import schema_1_profile
from tests.report_run import SPACE, finished_run  # noqa: F401


@pytest.fixture(scope="module")
def profiled(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("profiles") / "cpu-torch-fp32.json"
    measure_profile(load_space(SPACE), str(SPACE), "torch-fp32", "cpu-torch-fp32", out, threads=1, batch_size=4,
                    validate_count=0)
    return out


@pytest.fixture
def run_copy(finished_run, profiled, tmp_path) -> Path:  # noqa: F811
    """The finished run, profiled for this CPU."""
    run = shutil.copytree(finished_run, tmp_path / "run")
    shutil.copy(profiled, RunFiles(run).profile)
    return run


def _files(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*")}


def test_verify_measures_every_front_model_and_the_report_shows_it(run_copy):
    result = CliRunner().invoke(app, ["verify", str(run_copy)])
    assert result.exit_code == 0, result.output
    run = Run.open(run_copy)
    verification = run.verification
    assert [m.trial for m in verification.front] == [t.number for t in run.front()]
    for model in verification.front:
        assert set(model.predicted_ms) == set(model.measured_ms) == {"median", "min"}
        assert 0 < model.measured_ms["min"] <= model.measured_ms["median"]
    assert verification.float_baseline is not None and verification.float_baseline.label == "float"
    assert verification.statistic == "median" and verification.deployment["batch size"] == "4"
    assert "Kendall tau" in result.output
    median, low, high = verification.measured_over_predicted()
    models = [*verification.front, verification.float_baseline]
    ratios = sorted(m.measured_ms["median"] / m.predicted_ms["median"] for m in models)
    assert (low, high) == (ratios[0], ratios[-1]) and low <= median <= high
    assert f"Measured / predicted median latency over {len(models)} model(s): median {median:.2f}" in result.output
    summary = RunFiles(run_copy).report_summary.read_text()
    page = RunFiles(run_copy).report.read_text()
    assert "Front measured on the device" in summary and "Front measured on the device" in page
    assert "| measured median (ms) | measured min (ms) |" in summary
    assert verification.offset_note() in summary
    for model in verification.front:
        assert f"\n| {model.trial} |" in summary.split("## Front measured on the device")[1]


def _no_trials(run: Path) -> None:
    RunFiles(run).trials.write_text("")


def _no_front(run: Path) -> None:
    config = RunFiles(run).config
    settings = SearchConfig.read(config)
    settings.model_copy(update={"constraints": Constraints(max_latency_ms=1e-9)}).write(config)


def _modelled(run: Path) -> None:
    save_profile(modelled_profile(load_space(SPACE), str(SPACE), "bitfusion", 4), RunFiles(run).profile)


@pytest.mark.parametrize("spoil, message", [
    (_no_trials, "no finished trials"),
    (_no_front, "no Pareto front"),
    (_modelled, "modelled"),
    (lambda run: shutil.rmtree(run), "not a run folder"),
])
def test_verify_of_a_bad_run_is_one_line_exit_2_and_writes_nothing(run_copy, spoil, message):
    spoil(run_copy)
    before = _files(run_copy) if run_copy.exists() else None
    result = CliRunner().invoke(app, ["verify", str(run_copy)])
    assert result.exit_code == 2
    assert message in result.output and result.output.count("\n") == 1
    assert (_files(run_copy) if run_copy.exists() else None) == before


def test_search_verify_on_a_modelled_device_stops_before_the_run_is_made(tmp_path):
    profile = tmp_path / "bitfusion.json"
    save_profile(modelled_profile(load_space(SPACE), str(SPACE), "bitfusion", 4), profile)
    results = tmp_path / "results"
    result = CliRunner().invoke(app, ["search", str(SPACE), "--profile", str(profile), "--trials", "1",
                                      "--verify", "--results-dir", str(results)])
    assert result.exit_code == 2 and "modelled" in result.output and result.output.count("\n") == 1
    assert not results.exists() or not any(results.iterdir())


def test_the_profile_statistic_is_honoured_end_to_end(profiled, run_copy):
    space = load_space(SPACE)
    profile = load_profile(profiled)
    # a best-case table at half the typical one: the two statistics predict differently
    halved = profile.model_copy(update={"entries": {key: entry.model_copy(update={"min_ms": entry.median_ms / 2})
                                                    for key, entry in profile.entries.items()}})
    candidate = family_of(space).random_candidate(random.Random(1))
    median = predict(candidate, halved, space)
    assert median == predict(candidate, halved, space, "median")
    assert predict(candidate, halved, space, "min") == pytest.approx(median / 2)

    as_min = halved.model_copy(update={"statistic": "min"})
    save_profile(as_min, RunFiles(run_copy).profile)
    write_report(run_copy)
    summary = RunFiles(run_copy).report_summary.read_text()
    assert "predicted latency_ms (min, ms per batch of 4)" in summary  # the front table's column
    assert "the predicted min (best case) latency" in summary and "deploy with: threads: 1" in summary
    assert CliRunner().invoke(app, ["verify", str(run_copy)]).exit_code == 0
    verification = Run.open(run_copy).verification
    assert verification.statistic == "min"
    first = verification.front[0]
    assert first.predicted_ms["min"] == pytest.approx(first.predicted_ms["median"] / 2)


def test_a_schema_1_profile_loads_and_predicts_only_the_statistic_it_was_fitted_for(default_space, tmp_path):
    profile = load_profile(schema_1_profile("cpu-torch-fp32", tmp_path))  # as shipped in schema 1
    assert profile.schema_version == 2 and profile.statistic == "min" and profile.predicts == ("min",)
    assert set(profile.validation.sets) == {"random"}
    candidate = family_of(default_space).random_candidate(random.Random(0))
    assert predict(candidate, profile, default_space) > 0
    with pytest.raises(UserInputError, match="predicts min only"):
        predict(candidate, profile, default_space, "median")


def test_verify_on_an_onnx_runtime_profile_with_fused_kernels(finished_run, tmp_path):  # noqa: F811
    """The float ONNX Runtime table has fused conv+add kernels; validation and verify use them."""
    run = shutil.copytree(finished_run, tmp_path / "run")
    measure_profile(load_space(SPACE), str(SPACE), "onnxruntime", "cpu-onnxruntime", RunFiles(run).profile,
                    threads=1, batch_size=4, validate_count=5)
    profile = load_profile(RunFiles(run).profile)
    assert any(">add/" in key for key in profile.entries)
    assert set(profile.validation.sets) == {"search", "random", "uniform"}
    assert set(profile.corrections) == {"median", "min"}
    result = CliRunner().invoke(app, ["verify", str(run)])
    assert result.exit_code == 0, result.output
    verification = Run.open(run).verification
    assert verification.device == "cpu-onnxruntime (onnxruntime)" and verification.front
    for model in verification.front:
        assert 0 < model.measured_ms["min"] <= model.measured_ms["median"]
