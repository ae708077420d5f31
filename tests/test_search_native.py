"""--native-only: the search space keeps only what the device has kernels for."""

from __future__ import annotations

from pathlib import Path

import pytest

from autocompress.errors import UserInputError
from autocompress.hw.profile import load_profile
from autocompress.search.setup import restrict_to_native
from tests.conftest import DEFAULT_SPACE, REPO

PROFILES = REPO / "hw_profiles"


@pytest.mark.parametrize(
    ("profile", "weight_bits", "activation_bits"),
    [("cpu-torch-fp32.json", [32], [32]), ("cpu-onnxruntime-int8.json", [8, 32], [8, 32]),
     ("bitfusion.json", [2, 4, 8, 32], [4, 8, 32])],
)
def test_native_only_keeps_the_device_bit_widths_and_sparsity(default_space, profile, weight_bits, activation_bits):
    restricted = restrict_to_native(default_space, load_profile(PROFILES / profile), DEFAULT_SPACE)
    layer = restricted.choices.layer
    assert layer.weight_bits == weight_bits and layer.activation_bits == activation_bits
    assert layer.sparsity_kind == ["channel"]
    assert layer.rank_ratio == default_space.choices.layer.rank_ratio
    assert restricted.choices.block == default_space.choices.block


def test_native_only_without_any_bit_width_left_is_an_error(default_space):
    layer = default_space.choices.layer.model_copy(update={"weight_bits": [3, 5]})
    space = default_space.model_copy(update={"choices": default_space.choices.model_copy(update={"layer": layer})})
    with pytest.raises(UserInputError, match="--native-only leaves no bit-width"):
        restrict_to_native(space, load_profile(PROFILES / "cpu-torch-fp32.json"), Path("s.yaml"))
