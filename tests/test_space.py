"""Search-space validation and the candidate contract."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
import torch
import yaml

from autocompress.base import space_fingerprint
from autocompress.errors import UserInputError
from autocompress.models.family import family_of
from autocompress.models.space_file import load_space
from tests.conftest import DEFAULT_SPACE, REPO


def _write_mutated(tmp_path, path_keys, value):
    data = yaml.safe_load(DEFAULT_SPACE.read_text())
    target = data
    for key in path_keys[:-1]:
        target = target[key]
    target[path_keys[-1]] = value
    out = tmp_path / "bad.yaml"
    out.write_text(yaml.safe_dump(data))
    return out


@pytest.mark.parametrize(
    ("keys", "value", "expected"),
    [
        (["choices", "block", "kernel"], [3], ["choices.block.kernel", "unknown key", "kernel_size"]),
        (["choices", "block", "kernel_size"], [3, 4], ["choices.block.kernel_size.1", "3, 5 or 7"]),
        (["choices", "layer", "sparsity"], [0.0, 0.9], ["choices.layer.sparsity", "0.0..0.75"]),
        (["network", "stem_channels"], "wide", ["network.stem_channels", "valid integer"]),
        (["choices", "layer", "weight_bits"], [1], ["choices.layer.weight_bits.0", "32"]),
    ],
)
def test_bad_space_names_file_key_path_and_allowed(tmp_path, keys, value, expected):
    bad = _write_mutated(tmp_path, keys, value)
    with pytest.raises(UserInputError) as info:
        load_space(bad)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(bad))
    for part in expected:
        assert part in message


def test_bad_space_exits_2_with_one_line(tmp_path):
    bad = _write_mutated(tmp_path, ["choices", "block", "expand_ratio"], [5])
    result = subprocess.run(
        [sys.executable, "-m", "autocompress", "train-base", str(bad), "--base-dir", str(tmp_path / "b")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "choices.block.expand_ratio.0" in lines[0] and str(bad) in lines[0]
    assert not (tmp_path / "b").exists()


def test_candidate_json_round_trip_and_stable_hash(default_space):
    candidate = family_of(default_space).random_candidate(random.Random(3))
    again = family_of(default_space).parse_candidate(candidate.to_json(indent=2))
    assert again == candidate
    assert again.hash == candidate.hash
    other = family_of(default_space).random_candidate(random.Random(4))
    assert other.hash != candidate.hash
    module_paths = dict(family_of(default_space).build_compressed(candidate).named_modules())
    assert all(name in module_paths for name in candidate.policy)


@pytest.mark.parametrize("seed", range(6))
def test_random_candidates_build_and_run(default_space, seed):
    family = family_of(default_space)
    model = family.build_compressed(family.random_candidate(random.Random(seed))).eval()
    size = default_space.data.image_size
    assert model(torch.randn(2, 1, size, size)).shape == (2, 10)


@pytest.mark.parametrize(("space", "fingerprint"), [("mobilenet_digits", "5f12ba18096e"),
                                                    ("resnet_digits", "2df859a175de")])
def test_the_shipped_spaces_keep_their_base_file_names(space, fingerprint):
    """``results/_base`` files are named by this digest: were it to change, every trained base
    would be trained again."""
    assert space_fingerprint(load_space(REPO / "search_spaces" / f"{space}.yaml")) == fingerprint
