"""The shipped profiles: a modelled bit-serial accelerator credits low bit-widths, the
measured CPU profiles do not, so the same space gets a different best policy on each."""

from __future__ import annotations

from pathlib import Path

import pytest

from autocompress.hw.predict import predict
from autocompress.hw.profile import load_profile
from autocompress.models.family import family_of

PROFILES = Path(__file__).resolve().parents[1] / "hw_profiles"
BITS = (2, 4, 8)


def best_bits(profile, space) -> int:
    """Weight bit-width of the fastest uniform int8-able policy; ties go to more bits
    (more accuracy for the same latency), as a search would settle them."""
    stages = family_of(space).largest_arch()
    latency = {bits: predict(family_of(space).uniform_candidate(stages, weight_bits=bits, activation_bits=8),
                             profile, space) for bits in BITS}
    return min(BITS, key=lambda bits: (round(latency[bits], 9), -bits)), latency


@pytest.mark.parametrize("cpu", ["cpu-onnxruntime-int8", "cpu-torch-fp32"])
def test_accelerator_prefers_low_bits_where_the_cpu_does_not(default_space, cpu):
    accelerator = load_profile(PROFILES / "bitfusion.json")
    measured = load_profile(PROFILES / f"{cpu}.json")
    assert not accelerator.measured and measured.measured
    fast_bits, fast = best_bits(accelerator, default_space)
    cpu_bits, on_cpu = best_bits(measured, default_space)
    assert fast_bits == 2 and fast[2] < fast[4] < fast[8]
    assert cpu_bits == 8 and on_cpu[2] == on_cpu[4] == on_cpu[8]
