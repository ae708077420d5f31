"""Family torch-model: a user's own network (FILE.py:FUNCTION) profiled, searched with 2 Ray
workers, reported and exported; an op no profile can time is one line and exit 2."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from autocompress.base import space_fingerprint, train_base
from autocompress.cli import app
from autocompress.errors import UserInputError
from autocompress.models.family import family_of
from autocompress.models.space_file import load_space
from autocompress.run.files import RunFiles
from autocompress.run.run import Run
from autocompress.run.trial import State
from autocompress.tasks.classification import ClassificationTask
from tests.user_models import tiny_residual

MODELS = Path(__file__).with_name("user_models.py")


def _space(folder: Path, function: str, **network) -> Path:
    data = {
        "name": f"byo_{function}",
        "data": {"source": "digits", "image_size": 8, "channels": 1, "num_classes": 10},
        "network": {"family": "torch-model", "model": f"{MODELS}:{function}", **network},
        "choices": {"layer": {"weight_bits": [4, 8, 32], "activation_bits": [8, 32], "sparsity_kind": ["channel"],
                              "sparsity": [0.0, 0.5], "rank_ratio": [1.0, 0.5], "first_last_min_bits": None}},
        "training": {"base_epochs": 1, "finetune_epochs": 0, "batch_size": 64},
    }
    path = folder / f"{function}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_layers_and_groups_of_a_user_model(tmp_path):
    space = load_space(_space(tmp_path, "tiny_residual"))
    family = family_of(space)
    specs = {spec.name: spec for spec in family.compressible_layers([])}
    assert list(specs) == ["stem.0", "conv1", "conv2", "fc"]
    assert specs["conv2"].channel_prunable and not specs["fc"].channel_prunable
    assert family.layer_group("conv2") == family.layer_group("stem.0") == "stem.0"  # coupled at the add
    assert family.layer_group("conv1") == "conv1"
    assert family.largest_arch() == [] and family.random_candidate(random.Random(0)).stages == ()


def test_a_bad_model_spec_is_one_line(tmp_path):
    space = load_space(_space(tmp_path, "no_such_function"))
    with pytest.raises(UserInputError, match=r"user_models.py has no function 'no_such_function'"):
        family_of(space).compressible_layers([])


def test_an_op_that_cannot_be_timed_alone_is_one_line_and_exit_2(tmp_path):
    space = _space(tmp_path, "with_local_function")
    result = CliRunner().invoke(app, ["profile", str(space), "--runtime", "bitfusion-model",
                                      "--out", str(tmp_path / "p.json")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, lines
    assert ("user_models.py:with_local_function: op 'clamp_to_unit': function clamp_to_unit cannot be imported "
            "by its name, so it cannot be timed alone") in lines[0]
    assert not (tmp_path / "p.json").exists()


def test_a_gelu_is_a_fixed_op_of_the_table(tmp_path):
    space = _space(tmp_path, "with_gelu")
    result = CliRunner().invoke(app, ["profile", str(space), "--runtime", "bitfusion-model",
                                      "--out", str(tmp_path / "p.json")])
    assert result.exit_code == 0, result.output
    keys = json.loads((tmp_path / "p.json").read_text())["entries"]
    gelu = 'nn.GELU//{"approximate":"none"}'
    assert {f"fixed/8x8x8/{gelu}", f"fixed/4x8x8/{gelu}"} <= set(keys)  # conv1 unpruned and half pruned


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_user_model_searched_end_to_end_with_two_workers_reported_and_exported(tmp_path):
    space = _space(tmp_path, "tiny_residual")
    profile = tmp_path / "bitfusion.json"
    _invoke("profile", str(space), "--runtime", "bitfusion-model", "--out", str(profile))
    results = tmp_path / "results"
    _invoke("search", str(space), "--profile", str(profile), "--trials", "2", "--workers", "2",
            "--run", "byo", "--results-dir", str(results))
    run = results / "byo"
    rows = Run.open(run).trials
    allocated = [row for row in rows if row.label.startswith("sensitivity-ilp@")]  # the allocator works here too
    assert allocated and len(rows) == 7 + len(allocated) and all(row.state is State.COMPLETE for row in rows)
    assert all(json.loads(row.candidate)["stages"] == [] for row in rows)
    channel = next(row for row in rows if row.label == "channel-50")
    assert channel.latency_ms < rows[0].latency_ms  # coupled pruning pays on the table
    _invoke("report", str(run))
    assert RunFiles(run).report.is_file()
    exported = _invoke("export", str(run), "--trial", "3", "--out", str(tmp_path / "export"))
    assert "accuracy" in exported
    assert {"weights.bin", "candidate.json", "model.onnx"} <= {p.name for p in (tmp_path / "export").rglob("*")}


def test_given_weights_are_the_base_untrained_and_part_of_its_fingerprint(tmp_path):
    torch.manual_seed(5)
    weights = tmp_path / "weights.pt"
    torch.save(tiny_residual().state_dict(), weights)
    space = load_space(_space(tmp_path, "tiny_residual", weights=str(weights)))
    base, _ = train_base(space, ClassificationTask(space), tmp_path / "base.pt")
    assert all(torch.equal(base.state_dict()[k], v) for k, v in torch.load(weights).items())
    before = space_fingerprint(space)
    torch.save(tiny_residual().state_dict(), weights)
    assert space_fingerprint(load_space(_space(tmp_path, "tiny_residual", weights=str(weights)))) != before
    weights.write_text("not a state dict")
    with pytest.raises(UserInputError, match=r"network\.weights: .*weights\.pt: not a torch state dict"):
        family_of(load_space(_space(tmp_path, "tiny_residual", weights=str(weights)))).base_weights()
