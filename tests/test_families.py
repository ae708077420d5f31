"""The model-family seam: the MobileNet family behaves exactly as before the seam."""

from __future__ import annotations

import dataclasses
import random

import pytest

from autocompress.errors import UserInputError
from autocompress.hw.ops import BitsRule, OpSignature
from autocompress.hw.predict import predict
from autocompress.hw.profile import HardwareProfile, load_profile
from autocompress.hw.signatures import quantized_io_variants, runtime_precision
from autocompress.models.family import FAMILIES, family_names, family_of
from autocompress.models.space_file import parse_space
from autocompress.search.params import suggest_candidate
from tests.conftest import DEFAULT_SPACE, REPO, schema_1_profile

# Measured before the seam (commit 1e6aa96) with the same generating code: the candidates the
# search's parameters decode to and random per-layer ones, their hashes and predicted latencies
# on the profiles shipped then (the measured ones kept, gzipped, in tests/golden_profiles/ since
# hw_profiles/ was re-measured; read through today's schema-1 conversion).
GOLDEN = [
    ("047901a1db5cc4e0", {"cpu-torch-fp32": 11.872953, "bitfusion": 0.617034, "cpu-onnxruntime-int8": 6.805565}),
    ("0114f99390d5c59b", {"cpu-torch-fp32": 18.001024, "bitfusion": 1.087585, "cpu-onnxruntime-int8": 11.622564}),
    ("2c747d7714bd2f7d", {"cpu-torch-fp32": 12.874753, "bitfusion": 0.314431, "cpu-onnxruntime-int8": 5.448477}),
    ("70077dfd7f329507", {"cpu-torch-fp32": 12.784441, "bitfusion": 0.71377, "cpu-onnxruntime-int8": 5.332411}),
    ("c06b504ffed500eb", {"cpu-torch-fp32": 15.394336, "bitfusion": 0.677894, "cpu-onnxruntime-int8": 4.717141}),
]


def _golden_candidates(space):
    rng = random.Random(0)
    searched = [suggest_candidate(space, lambda _name, choices: rng.choice(choices)) for _ in range(3)]
    return searched + [family_of(space).random_candidate(random.Random(seed)) for seed in range(2)]


def _gates_keyed_as_today(profile: HardwareProfile) -> HardwareProfile:
    """``profile`` with each squeeze-excite entry of a runtime that now keys gates by their
    convs' precision (``BitsRule.quantized_se``) and by the tensors beside them
    (``BitsRule.se_quantized_io``) under every one of today's keys, so the other keys'
    predictions can still be compared with the golden ones."""
    rule = BitsRule.of(profile)
    if not rule.quantized_se:
        return profile
    entries = dict(profile.entries)
    for key, entry in profile.entries.items():
        if key.startswith("se/"):
            gates = {dataclasses.replace(OpSignature.from_key(key), bits=bits)
                     for bits in map(rule.kernel_bits, rule.weight, rule.weight)}
            entries.update({gate.key: entry for gate in quantized_io_variants(gates, rule)})
    return profile.model_copy(update={"entries": entries})


def _keyed_as_then(space, candidate, profile: HardwareProfile) -> bool:
    """Whether no layer of ``candidate`` is keyed at another precision than its own (a float
    conv between int8 convs, ``BitsRule.requantizes_between_int8``, a later keying)."""
    rule = BitsRule.of(profile)
    ops = family_of(space).candidate_ops(candidate, rule)
    return [op.bits for op in runtime_precision(ops, rule)] == [op.bits for op in ops]


def test_mobilenet_candidates_and_latencies_unchanged_by_the_seam(default_space, tmp_path):
    profiles = {name: _gates_keyed_as_today(load_profile(schema_1_profile(name, tmp_path)))
                for name in GOLDEN[0][1]}
    compared = 0
    for candidate, (digest, latencies) in zip(_golden_candidates(default_space), GOLDEN, strict=True):
        assert candidate.hash == digest
        for name, expected in latencies.items():
            if _keyed_as_then(default_space, candidate, profiles[name]):
                assert predict(candidate, profiles[name], default_space) == pytest.approx(expected, abs=1e-5)
                compared += 1
    assert compared == len(GOLDEN) * len(GOLDEN[0][1]) - 1  # one random candidate's int8 latency


def test_default_family_is_mobilenet_and_registered_by_name(default_space):
    assert default_space.network.family == "mobilenet"
    assert "mobilenet" in family_names()
    assert isinstance(family_of(default_space), FAMILIES["mobilenet"])


def test_unknown_family_is_one_line_naming_the_key():
    import yaml

    data = yaml.safe_load(DEFAULT_SPACE.read_text())
    data["network"]["family"] = "vgg"
    with pytest.raises(UserInputError, match=r"space\.yaml: network\.family: .*unknown model family 'vgg'"):
        parse_space(data, REPO / "space.yaml")


@pytest.mark.parametrize("seed", range(12))
def test_mobilenet_ops_from_choices_match_the_built_network(default_space, seed):
    """The screening fast path gives exactly the ops the built network's hooks find."""
    family = family_of(default_space)
    rng = random.Random(seed)
    candidate = (family.random_candidate(rng) if seed % 2 else
                 suggest_candidate(default_space, lambda _name, choices: rng.choice(choices)))
    model = family.build_compressed(candidate)
    for rule in (BitsRule(), BitsRule.of(load_profile(REPO / "hw_profiles" / "bitfusion.json")),
                 BitsRule.of_runtime("onnxruntime-int8")):
        assert family.candidate_ops(candidate, rule) == family.model_ops(model, rule)
