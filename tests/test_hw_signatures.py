"""Op signatures: a space's enumeration covers every candidate, keys round-trip."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from autocompress.candidate import LayerPolicy
from autocompress.hw.accelerator import RULE as ACCELERATOR
from autocompress.hw.ops import BitsRule, OpSignature
from autocompress.hw.signatures import candidate_signatures, space_signatures
from autocompress.models.family import family_of
from autocompress.models.space_file import load_space

TINY = Path(__file__).parent / "spaces" / "tiny.yaml"
RULES = {"float": BitsRule(), "onnxruntime": BitsRule.of_runtime("onnxruntime"),
         "int8": BitsRule.of_runtime("onnxruntime-int8"),
         "accelerator": ACCELERATOR}


@pytest.fixture(scope="module")
def tiny():
    return load_space(TINY)


@pytest.mark.parametrize("rule", RULES.values(), ids=RULES.keys())
def test_enumeration_covers_every_candidate_and_nothing_more(tiny, rule):
    enumerated = set(space_signatures(tiny, rule))
    seen = set()
    rng = random.Random(0)
    for _ in range(60):
        signatures = candidate_signatures(tiny, family_of(tiny).random_candidate(rng), rule)
        assert set(signatures) <= enumerated
        seen.update(signatures)
    # the random candidates reach most of the table: the enumeration is not padded
    assert len(seen) >= 0.6 * len(enumerated)


def test_keys_round_trip(tiny):
    for rule in RULES.values():
        for signature in space_signatures(tiny, rule):
            assert OpSignature.from_key(signature.key) == signature


def test_fused_units_and_compressed_shapes(tiny):
    """A ConvBNAct is one kernel; pruning and low rank show in the shapes."""
    stages = family_of(tiny).largest_arch()
    plain = candidate_signatures(tiny, family_of(tiny).uniform_candidate(stages))
    squeezed = candidate_signatures(
        tiny, family_of(tiny).uniform_candidate(stages, sparsity=0.5, sparsity_kind="channel", rank_ratio=0.5))
    assert plain[0].key == "conv/1x8x8/o4/k3/s1/g1/bn+relu"
    # expand 8 -> 24 of the first block; with rank 0.5 it becomes 8 -> 4 then 4 -> 12 (pruned)
    assert plain[1].key == "conv/4x8x8/o12/k1/s1/g1/bn+relu"
    assert [s.key for s in squeezed[1:3]] == ["conv/4x8x8/o2/k1/s1/g1/none",
                                             "conv/2x8x8/o6/k1/s1/g1/bn+relu"]
    assert sum(s.op == "conv" for s in squeezed) > sum(s.op == "conv" for s in plain)


def test_bits_map_to_the_kernels_the_device_runs(tiny):
    stages = family_of(tiny).largest_arch()
    candidate = family_of(tiny).uniform_candidate(stages, weight_bits=2, activation_bits=8)
    int8 = candidate_signatures(tiny, candidate, RULES["int8"])
    accelerator = candidate_signatures(tiny, candidate, ACCELERATOR)
    assert {s.bits for s in int8 if s.op == "conv"} == {(8, 8)}
    assert {s.bits for s in accelerator if s.op == "conv"} == {(2, 8)}
    assert all(s.bits is None for s in candidate_signatures(tiny, candidate))
    float_layer = family_of(tiny).uniform_candidate(stages, **vars(LayerPolicy()))
    assert {s.bits for s in candidate_signatures(tiny, float_layer, RULES["int8"])
            if s.op == "conv"} == {(32, 32)}
