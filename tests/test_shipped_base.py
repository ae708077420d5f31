"""The demo space's trained base shipped in ``autocompress/weights``: still what
``autocompress train-base`` makes for that space, and taken instead of training.

A full training is 800 steps (minutes), and its weights cannot be reproduced on another
machine: a change of float rounding alone changes the losses more at every step
(docs/decisions.md). So the tests check what holds on any machine within seconds: the shipped file
is named after, and records, the fingerprint of the space as it is now (network, data,
training settings); the first steps of training, run again here from the recorded seed with
today's code, give the losses it recorded (the initial weights, the first batches and their
shifts, the subnets sampled, the loss and the optimiser's first steps); and it has the
validation accuracy it records.
"""

from __future__ import annotations

import pytest

from autocompress.base import (
    SHIPPED_BASE_DIR,
    base_path,
    ensure_base,
    initial_base,
    load_base,
    space_fingerprint,
    train_supernet,
)
from autocompress.train import accuracy

REMAKE = ("stale: make it again with `autocompress train-base search_spaces/mobilenet_digits.yaml --force "
          "--base-dir autocompress/weights` (and remove the old file)")
MAX_BYTES = 1 << 20
REPRODUCED_RTOL = (1e-4, 1e-3, 1e-2)
"""Relative tolerance of the first steps' losses: 30 times or more what a change of float rounding gave."""


@pytest.fixture(scope="module")
def shipped(default_space):
    path = base_path(default_space, SHIPPED_BASE_DIR)
    assert path.is_file(), f"none for the demo space (fingerprint {space_fingerprint(default_space)}): {REMAKE}"
    return path, *load_base(default_space, path)


def test_the_only_shipped_base_is_the_demo_space_s_as_it_is_now(default_space, shipped):
    path, _, info = shipped
    assert sorted(SHIPPED_BASE_DIR.glob("*.pt")) == [path], REMAKE
    assert info["fingerprint"] == space_fingerprint(default_space), REMAKE
    assert path.stat().st_size < MAX_BYTES


def test_the_shipped_base_has_the_accuracy_it_records(digits_splits, shipped):
    _, model, info = shipped
    measured = accuracy(model, digits_splits.val_x, digits_splits.val_y)
    assert abs(measured - info["accuracy"]) <= 1 / len(digits_splits.val_y)  # one image: another CPU's rounding
    assert measured >= 0.99


def test_the_shipped_base_s_first_epoch_is_what_training_gives_today(default_space, digits_splits, shipped):
    _, _, info = shipped
    model = initial_base(default_space, info["seed"])
    losses = train_supernet(model, default_space, digits_splits, info["seed"], stop_after_epochs=1)
    steps_per_epoch = -(-len(digits_splits.train_y) // default_space.training.batch_size)
    assert len(losses) == steps_per_epoch
    assert len(info["step_losses"]) == steps_per_epoch * default_space.training.base_epochs
    for step, rtol in enumerate(REPRODUCED_RTOL):
        assert losses[step] == pytest.approx(info["step_losses"][step], rel=rtol), f"step {step}: {REMAKE}"


def test_a_search_of_the_demo_space_starts_from_the_shipped_base_without_training(default_space, digits_splits,
                                                                                   shipped, tmp_path):
    path, _, info = shipped
    _, found = ensure_base(default_space, digits_splits, tmp_path)
    assert found == info
    assert base_path(default_space, tmp_path).read_bytes() == path.read_bytes()
