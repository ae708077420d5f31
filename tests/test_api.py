"""The Python API: the same run as the CLI's, a user's own task end to end, bad input as one line."""

from __future__ import annotations

import csv
import json
import sys
import threading
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import autocompress as ac
from autocompress.cli import app
from autocompress.errors import UserInputError
from autocompress.run.files import RunFiles

HERE = Path(__file__).parent
SPACE = HERE / "spaces" / "search_tiny.yaml"
EXAMPLE = HERE.parent / "examples" / "segmentation"
sys.path.insert(0, str(EXAMPLE))
import shapes  # noqa: E402  (the example's module: data, network, loss, metric)

SAME = ("number", "kind", "label", "state", "accuracy", "accuracy_before", "latency_ms", "size_kb", "candidate_hash")
"""Trial columns that the same settings must reproduce (times and durations differ)."""


@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("profiles") / "bitfusion.json"
    ac.profile(SPACE, "bitfusion-model", out=path)
    return path


def _table(folder: Path) -> list[dict]:
    with open(RunFiles(folder).trials) as handle:
        return [{column: row[column] for column in SAME} for row in csv.DictReader(handle)]


def _files(folder: Path) -> list[str]:
    """The run folder's files, but SQLite's transient ones (its write-ahead log while a connection is open)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(("-shm", "-wal")))


def test_the_cli_and_the_api_make_the_same_run(profile, tmp_path):
    settings = ["--trials", "3", "--workers", "1", "--sampler", "random", "--seed", "3", "--finetune-epochs", "1",
                "--no-sensitivity-baselines"]
    made = CliRunner().invoke(app, ["search", str(SPACE), "--profile", str(profile), "--run", "cli",
                                    "--results-dir", str(tmp_path), *settings])
    assert made.exit_code == 0, made.output
    run = ac.search(SPACE, profile, trials=3, workers=1, sampler="random", seed=3, finetune_epochs=1, run="api",
                    results_dir=tmp_path, sensitivity_baselines=False)
    assert _table(tmp_path / "cli") == _table(run.path) and len(_table(run.path)) == 8
    configs = [json.loads(RunFiles(tmp_path / name).config.read_text()) for name in ("cli", "api")]
    for config in configs:
        del config["run"], config["created"], config["base_path"]
    assert configs[0] == configs[1]
    assert _files(tmp_path / "cli") == _files(run.path)
    assert list(run.front.number) == [int(row["number"]) for row in csv.DictReader(open(RunFiles(run.path).pareto))]
    assert run.summary.complete == 8 and run.metric == "accuracy"


@pytest.fixture(scope="module")
def segmentation_space(tmp_path_factory) -> Path:
    """The example's space with a short base training and a one-epoch fine-tune."""
    data = yaml.safe_load((EXAMPLE / "space.yaml").read_text())
    data["training"].update(base_epochs=3, finetune_epochs=1)
    path = tmp_path_factory.mktemp("segmentation") / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_segmentation_task_is_searched_reported_exported_and_resumed(segmentation_space, tmp_path):
    profile = tmp_path / "bitfusion-shapes.json"
    ac.profile(segmentation_space, "bitfusion-model", out=profile, model=shapes.build)
    task = {"train_data": shapes.make_shapes(160, 0), "val_data": shapes.make_shapes(64, 1),
            "test_data": shapes.make_shapes(64, 2), "evaluate": shapes.iou, "metric": "IoU",
            "loss": shapes.mask_loss}
    run = ac.search(segmentation_space, profile, trials=2, workers=1, run="seg", results_dir=tmp_path,
                    model=shapes.build, **task)
    trials, front = run.trials, run.front
    assert {"IoU", "test_IoU"} <= set(front.columns) and "accuracy" not in front.columns
    assert (trials.state == "COMPLETE").sum() >= 5 and front.test_IoU.notna().all()
    assert 0.3 < trials.IoU.max() <= 1.0  # a mask overlap, not a class accuracy
    assert run.folder.files.task.is_file() and run.folder.files.user_model.is_file()
    exported = run.export(int(front.number.iloc[0]), tmp_path / "export")
    assert exported.metric == "IoU" and exported.agreement_with_search is None
    assert exported.test_accuracy["model.onnx"] == pytest.approx(exported.test_accuracy["weights.bin (torch)"],
                                                                 abs=0.02)
    assert "IoU" in run.report().read_text() and "accuracy" not in run.folder.files.report_summary.read_text()
    assert ", best IoU 0." in run.folder.files.log.read_text()  # the progress lines name the metric too
    resumed = ac.search(run="seg", resume=True, trials=3, results_dir=tmp_path)  # the task frozen in the run
    counted = (resumed.trials.kind == "search") & (resumed.trials.state != "PRUNED")  # those --trials counts
    assert counted.sum() == 3


def test_a_task_missing_a_split_or_unshippable_is_one_line_and_nothing_is_written(segmentation_space, tmp_path):
    data = shapes.make_shapes(8, 0)
    with pytest.raises(UserInputError, match="^val_data: needed"):
        ac.search(segmentation_space, tmp_path / "p.json", trials=1, results_dir=tmp_path, model=shapes.build,
                  train_data=data, test_data=data, evaluate=shapes.iou)
    lock = threading.Lock()

    def locked_iou(model, loader):
        with lock:
            return shapes.iou(model, loader)

    with pytest.raises(UserInputError, match="^your task .*: cannot be sent to the Ray workers"):
        ac.search(segmentation_space, tmp_path / "p.json", trials=1, results_dir=tmp_path, model=shapes.build,
                  train_data=data, val_data=data, test_data=data, evaluate=locked_iou)
    with pytest.raises(UserInputError, match="model= needs network.family: torch-model"):
        ac.search(SPACE, tmp_path / "p.json", trials=1, results_dir=tmp_path, model=shapes.build)
    assert list(tmp_path.iterdir()) == []
