"""Shared fixtures: the default space, its digits splits and its trained base network.

The base network is trained once per test session (20 epochs, about a minute on one core).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from autocompress.base import train_base
from autocompress.cli import app
from autocompress.data import load_splits
from autocompress.models.space_file import load_space
from autocompress.tasks.classification import ClassificationTask

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SPACE = REPO / "search_spaces" / "mobilenet_digits.yaml"


def schema_1_profile(name: str, folder: Path) -> Path:
    """``hw_profiles/<name>.json`` as shipped in schema 1 (before the re-measurement of
    2026-11-29), unpacked into ``folder`` from ``tests/golden_profiles/``; a modelled profile
    (a formula, unchanged since) is the shipped file itself."""
    packed = REPO / "tests" / "golden_profiles" / f"{name}.json.gz"
    if not packed.is_file():
        return REPO / "hw_profiles" / f"{name}.json"
    path = folder / f"{name}.json"
    path.write_bytes(gzip.decompress(packed.read_bytes()))
    return path


def bitfusion_profile(space: Path, folder: Path) -> Path:
    """``folder/bitfusion.json``: the modelled bit-serial accelerator's profile of ``space``
    (bits change latency there), made by ``autocompress profile``."""
    path = folder / "bitfusion.json"
    made = CliRunner().invoke(app, ["profile", str(space), "--runtime", "bitfusion-model", "--out", str(path)])
    assert made.exit_code == 0, made.output
    return path


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def default_space():
    return load_space(DEFAULT_SPACE)


@pytest.fixture(scope="session")
def digits_splits(default_space):
    return load_splits(default_space.data)


@pytest.fixture(scope="session")
def digits_task(default_space, digits_splits):
    """Classification of the default space's digits (the splits loaded once per session)."""
    return ClassificationTask(default_space, digits_splits)


TEST_BASE_EPOCHS = 20
"""The default space trains its base 100 epochs (several minutes on one core); the tests
check what training, inheritance and distillation do, which 20 epochs already show."""


@pytest.fixture(scope="session")
def trained_base(default_space, digits_splits, tmp_path_factory):
    """(model, info) of the default space's base network trained ``TEST_BASE_EPOCHS`` epochs, in this session."""
    path = tmp_path_factory.mktemp("base") / "base.pt"
    training = default_space.training.model_copy(update={"base_epochs": TEST_BASE_EPOCHS})
    space = default_space.model_copy(update={"training": training})
    return train_base(space, ClassificationTask(space, digits_splits), path)
