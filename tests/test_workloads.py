"""Real workloads: workers open their own data, the front is measured on the test split,
GPUs are asked for plainly, and base training shows its progress."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from autocompress.base import build_base, train_base
from autocompress.cli import app
from autocompress.data import LazyImages, load_splits
from autocompress.hw.profile import load_profile
from autocompress.models.family import family_of
from autocompress.models.space_file import load_space, parse_space
from autocompress.report import write_report
from autocompress.run.config import Constraints
from autocompress.run.run import Run
from autocompress.run.table import read_trials
from autocompress.run.trial import Kind
from autocompress.search import holdout
from autocompress.search.worker import TrialEvaluator
from autocompress.tasks.classification import ClassificationTask
from tests.conftest import REPO, bitfusion_profile
from tests.report_run import finished_run  # noqa: F401

TINY = REPO / "tests" / "spaces" / "search_tiny.yaml"
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")


def _npz_space(tmp_path: Path):
    x = np.random.default_rng(0).random((60, 8, 8), dtype=np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=np.arange(60) % 10)
    data = yaml.safe_load(TINY.read_text())
    data["data"]["source"] = f"npz:{tmp_path / 'data.npz'}"
    return parse_space(data, TINY)


def test_a_worker_opens_its_data_itself_from_the_space(tmp_path):
    space = _npz_space(tmp_path)
    base = build_base(space).state_dict()
    profile = load_profile(bitfusion_profile(TINY, tmp_path)).model_dump_json()
    shipped = pickle.loads(pickle.dumps(ClassificationTask(space, load_splits(space.data))))  # as Ray ships it
    evaluator = TrialEvaluator(space, profile, shipped, base, Constraints(), seed=0, finetune_epochs=1, threads=1)
    assert isinstance(evaluator.task.splits.train_x, LazyImages)
    assert isinstance(evaluator.task.splits.train_x.source.array, np.memmap)  # mapped from the file, not shipped
    family = family_of(space)
    outcome = evaluator.evaluate(family.uniform_candidate(family.largest_arch(), weight_bits=8).to_json())
    assert outcome.state == "COMPLETE", outcome.error


def _copied_run(source: Path, target: Path) -> Run:
    """A copy of ``source`` as the driver leaves it: no test accuracy measured yet."""
    shutil.copytree(source, target)
    run = Run.open(target)
    run.files.test_accuracy.unlink()
    run.write_tables(run.trials)
    return Run.open(target)


def test_the_front_and_the_baselines_alone_are_measured_once_on_the_test_split(finished_run, tmp_path,  # noqa: F811
                                                                              monkeypatch):
    run = _copied_run(finished_run, tmp_path / "run")
    assert all(t.test_accuracy is None for t in run.trials)
    task = ClassificationTask(run.space)
    measured = holdout.measure_test_split(run, task)
    run = Run.open(run.path)
    front = run.front()
    baselines = {t.number for t in run.trials if t.kind is Kind.BASELINE}
    assert len(baselines) == 5 and {t.number for t in run.test_split_trials()} == {t.number for t in front} | baselines
    assert set(measured) == {t.number for t in front} | baselines == {t.number for t in run.trials
                                                                      if t.test_accuracy is not None}
    assert len(measured) < len(run.trials)  # the other searched trials are not measured on test
    assert all(t.test_accuracy is not None for t in read_trials(run.files.pareto, run.objectives))
    assert any(t.test_accuracy != t.accuracy for t in front)  # test and validation are different images
    assert run.test_accuracy() == measured
    calls = []
    monkeypatch.setattr(task, "score", lambda *args: calls.append(args))
    assert holdout.measure_test_split(run, task) == measured and not calls  # measured once
    missing = {max(baselines), front[0].number}  # as a search stopped while measuring leaves it
    run.write_test_accuracy({n: v for n, v in measured.items() if n not in missing})
    monkeypatch.setattr(task, "score", lambda *args: calls.append(args) or 0.5)
    resumed = holdout.measure_test_split(run, task)
    assert len(calls) == len(missing) and resumed == measured | dict.fromkeys(missing, 0.5)  # the missing ones only
    write_report(run.path)
    assert "| validation accuracy | test accuracy |" in run.files.report_summary.read_text()
    assert "test accuracy" in run.files.report.read_text()


def _one_line_exit_2(args: list[str], tmp_path: Path, option: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0], lines
    assert not list(tmp_path.iterdir())


def _search(tmp_path: Path, *extra: str) -> list[str]:
    return ["search", str(TINY), "--profile", str(REPO / "hw_profiles" / "cpu-torch-fp32.json"), "--trials", "1",
            "--results-dir", str(tmp_path), *extra]


@pytest.mark.parametrize("value", ["-1", "nan", "1.5"])
def test_a_bad_gpus_per_worker_is_one_line_before_anything_is_created(tmp_path, value):
    _one_line_exit_2(_search(tmp_path, f"--gpus-per-worker={value}"), tmp_path, "--gpus-per-worker")


@NO_GPU
def test_gpus_per_worker_on_a_machine_without_gpus_is_one_line(tmp_path):
    _one_line_exit_2(_search(tmp_path, "--gpus-per-worker", "0.5"), tmp_path, "no CUDA GPU")


@NO_GPU
@pytest.mark.parametrize("device", ["cuda", "tpu"])
def test_base_training_on_a_missing_device_is_one_line(tmp_path, device):
    _one_line_exit_2(["train-base", str(TINY), "--base-dir", str(tmp_path / "base"), "--device", device], tmp_path,
                     "--device")


def test_base_training_shows_epoch_loss_accuracy_and_time_left(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AUTOCOMPRESS_PROGRESS", "1")  # a terminal would show it; pytest's pipes do not
    space = load_space(TINY)
    train_base(space, ClassificationTask(space), tmp_path / "base.pt")
    bar = capsys.readouterr().err
    assert "base network (cpu)" in bar and "epoch=1/1" in bar and "loss=" in bar and "accuracy=" in bar
    assert "<" in bar  # tqdm's elapsed<remaining
