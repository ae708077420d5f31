"""Profiling for real on a tiny space: the command, resuming, and the remote bundle."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autocompress.cli import app
from autocompress.hw.bundle import export_bundle, import_csv
from autocompress.hw.ops import BitsRule
from autocompress.hw.predict import predict
from autocompress.hw.profile import DISTRIBUTIONS, load_profile
from autocompress.hw.profiler import partial_path
from autocompress.hw.signatures import space_signatures
from autocompress.models.family import family_of
from autocompress.models.space_file import load_space

TINY = Path(__file__).parent / "spaces" / "tiny.yaml"


@pytest.fixture(scope="module")
def tiny():
    return load_space(TINY)


def test_profile_command_measures_validates_and_resumes(tiny, tmp_path):
    out = tmp_path / "cpu.json"
    first = space_signatures(tiny, BitsRule())[0]
    # an interrupted run left one measurement behind: it is kept, not measured again
    settings = {"runtime": "torch-fp32", "threads": 1, "batch_size": 8,
                "space": tiny.model_dump(mode="json")}
    partial_path(out).write_text(json.dumps({"settings": settings, "entries": {
        first.key: {"median_ms": 123.0, "min_ms": 120.0, "spread_ms": 1.0,
                    "samples": 3}}}))
    result = CliRunner().invoke(app, ["profile", str(TINY), "--runtime", "torch-fp32",
                                      "--batch-size", "8", "--validate", "6", "--out", str(out)])
    assert result.exit_code == 0, result.output
    profile = load_profile(out)
    assert not partial_path(out).exists()
    assert profile.entries[first.key].median_ms == 123.0 and profile.latency(first.key, "min") == 120.0
    assert profile.statistic == "median" and profile.latency(first.key) == 123.0
    assert len(profile.entries) == len(space_signatures(tiny, BitsRule()))
    assert profile.device.batch_size == 8 and profile.device.clock == "thread-cpu"
    assert {name: s.candidates for name, s in profile.validation.sets.items()} == dict.fromkeys(DISTRIBUTIONS, 6)
    assert set(profile.corrections) == {"median", "min"}
    assert "Kendall tau" in result.output


@pytest.mark.parametrize("args, message", [
    (["--runtime", "tpu"], "--runtime: unknown runtime 'tpu' (allowed: "),
    (["--runtime", "torch-fp32", "--validate", "3"], "--validate: needs 0 or at least 5"),
    (["--runtime", "onnxruntime", "--import", "nowhere.csv"], "nowhere.csv: runner CSV not found"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = CliRunner().invoke(app, ["profile", str(TINY), *args])
    assert result.exit_code == 2
    assert message in result.output and result.output.count("\n") == 1


@pytest.mark.parametrize("runtime", ["onnxruntime-int8", "onnxruntime"])  # the float one has fused kernels
def test_bundle_export_run_import_round_trip(tiny, tmp_path, runtime):
    bundle = tmp_path / "bundle"
    export_bundle(tiny, runtime, bundle, batch_size=8, threads=1, validate_count=3)
    runner = (bundle / "runner.py").read_text()
    assert "autocompress" not in runner.split('"""')[2]  # the code itself needs no autocompress
    csv_path = tmp_path / "latency.csv"
    subprocess.run([sys.executable, "-I", "runner.py", "--out", str(csv_path)], cwd=bundle,
                   check=True, capture_output=True)
    profile = import_csv(tiny, str(TINY), csv_path, "remote")
    expected = space_signatures(tiny, BitsRule.of_runtime(runtime))
    assert sorted(profile.entries) == sorted(s.key for s in expected)
    assert profile.device.runtime == runtime and profile.measured
    assert profile.native_weight_bits == ([8, 32] if runtime == "onnxruntime-int8" else [32])
    assert any(s.fused for s in expected) == (runtime == "onnxruntime")
    assert {name: s.candidates for name, s in profile.validation.sets.items()} == dict.fromkeys(DISTRIBUTIONS, 3)
    candidate = family_of(tiny).random_candidate(random.Random(3))
    assert predict(candidate, profile, tiny) > 0
