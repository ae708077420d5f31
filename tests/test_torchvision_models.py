"""torchvision's CNN classifiers as a user brings them (random weights, 10 classes, the
torch-model family): every op has a table entry, the ops computed from a candidate's policy
without building it are exactly those of the built, pruned network, and a small one is
profiled, searched and reported end to end."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.datasets import load_digits
from typer.testing import CliRunner

from autocompress.cli import app
from autocompress.hw.ops import BitsRule
from autocompress.models.family import family_of
from autocompress.models.space_file import load_space
from autocompress.run.run import Run
from autocompress.run.trial import State

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torchvision") is None,
                                reason="torchvision is not installed (the optional extra '.[torchvision]')")

MODELS = Path(__file__).with_name("zoo_models.py")


def _colour_digits(folder: Path) -> Path:
    """The first 400 of scikit-learn's digits as 3-channel images (each grey level in all three):
    enough to train and fine-tune for one epoch each in seconds."""
    digits = load_digits()
    path = folder / "digits3.npz"
    np.savez(path, x=np.repeat(digits.images[:400, None].astype(np.float32), 3, axis=1), y=digits.target[:400])
    return path


def _space(folder: Path, name: str, size: int = 32, **training) -> Path:
    data = {
        "name": f"zoo_{name}",
        "data": {"source": f"npz:{_colour_digits(folder)}", "image_size": size, "channels": 3, "num_classes": 10},
        "network": {"family": "torch-model", "model": f"{MODELS}:{name}"},
        "choices": {"layer": {"weight_bits": [4, 8, 32], "activation_bits": [8, 32], "sparsity_kind": ["channel"],
                              "sparsity": [0.0, 0.25, 0.5], "rank_ratio": [1.0, 0.5], "first_last_min_bits": 8}},
        "training": {"base_epochs": 1, "finetune_epochs": 1, "batch_size": 64, **training},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "shufflenet_v2_x0_5", "squeezenet1_0", "googlenet",
                                  "regnet_y_400mf"])
def test_candidate_ops_are_exactly_the_pruned_networks_ops_and_in_the_table(tmp_path, name):
    """Squeeze-excite multiplies (MobileNetV3), split, concat and channel shuffle (ShuffleNetV2),
    concat of pruned branches (SqueezeNet's fire modules, GoogLeNet's inception blocks),
    grouped convs pruned per group (RegNetY)."""
    family = family_of(load_space(_space(tmp_path, name)))
    rule = BitsRule(weight=(8, 32), activation=(8, 32), follow=True)
    every = set(family.space_ops(rule))
    rng = random.Random(0)
    pruned = 0
    for _ in range(3):
        candidate = family.random_candidate(rng)
        pruned += any(p.sparsity > 0 for p in candidate.policy.values())
        ops = family.candidate_ops(candidate, rule)
        assert ops == family.model_ops(family.build_compressed(candidate), rule)
        assert set(ops) <= every
    assert pruned


def test_a_torchvision_network_is_profiled_searched_and_reported(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    space = _space(tmp_path, "squeezenet1_0")
    profile = tmp_path / "profile.json"
    runner = CliRunner()
    done = runner.invoke(app, ["profile", str(space), "--runtime", "torch-fp32", "--out", str(profile),
                               "--validate", "5", "--batch-size", "2"])
    assert done.exit_code == 0, done.output
    entries = yaml.safe_load(profile.read_text())["entries"]
    assert any(key.startswith("fixed/") and "nn.MaxPool2d" in key for key in entries)
    assert any(key.startswith("fixed/") and "torch.cat" in key for key in entries)
    done = runner.invoke(app, ["search", str(space), "--profile", str(profile), "--trials", "2", "--workers", "1",
                               "--run", "zoo", "--sampler", "random", "--no-sensitivity-baselines"])
    assert done.exit_code == 0, done.output
    run = Run.open(tmp_path / "results" / "zoo")
    assert run.files.report.is_file()
    assert sum(trial.state is State.COMPLETE for trial in run.trials) >= 2, run.trials
    assert run.front


def test_a_module_that_reads_its_state_dict_version_inherits_and_reloads(tmp_path):
    """MNASNet's ``_load_from_state_dict`` refuses a state without its module version: weight
    inheritance and a trial's saved weights (a plain dict) load with the network's own."""
    import torch

    from autocompress.models.slicing import load_state
    from tests.zoo_models import mnasnet0_5

    family = family_of(load_space(_space(tmp_path, "mnasnet0_5")))
    base, subnet = family.build([]), family.build([])
    family.inherit_weights(subnet, base)
    torch.save({"state_dict": dict(base.state_dict())}, tmp_path / "trial.pt")
    reloaded = mnasnet0_5()
    load_state(reloaded, torch.load(tmp_path / "trial.pt", weights_only=True)["state_dict"])
    for model in (subnet, reloaded):
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), base.state_dict().values(),
                                                     strict=True))
