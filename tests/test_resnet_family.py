"""The ResNet-style family, and the traced-graph ops every family without its own enumeration uses."""

from __future__ import annotations

import json
import random
import re

import pytest
import torch
import yaml
from typer.testing import CliRunner

from autocompress.base import subnet_logits
from autocompress.candidate import Candidate
from autocompress.cli import app
from autocompress.errors import UserInputError
from autocompress.hw.ops import BitsRule
from autocompress.models.family import family_of
from autocompress.models.graph_ops import graph_ops
from autocompress.models.mobilenet_space import StageArch
from autocompress.models.resnet import ResNetStage
from autocompress.models.space_file import load_space, parse_space
from autocompress.run.run import Run
from autocompress.run.trial import State
from autocompress.search.params import search_params, suggest_candidate
from tests.conftest import REPO

RESNET = REPO / "search_spaces" / "resnet_digits.yaml"
RULES = (BitsRule(), BitsRule.of_runtime("onnxruntime-int8"))


@pytest.fixture(scope="module")
def space():
    return load_space(RESNET)


@pytest.fixture(scope="module")
def base(space):
    torch.manual_seed(0)
    family = family_of(space)
    return family.build(family.largest_arch()).eval()


def test_search_parameters_are_depth_and_width_per_stage_and_one_policy_per_stage(space):
    params = search_params(space)
    assert params["s0.depth"] == [1, 2] and params["s2.width"] == [0.5, 0.75, 1.0]
    assert {name.rsplit(".", 1)[0] for name in params if not re.match(r"s\d+\.", name)} == {
        "stem", "stages.0", "stages.1", "stages.2", "classifier"}


def test_the_largest_subnet_inherits_the_base_exactly(space, base):
    family = family_of(space)
    child = family.inherit_weights(family.build(family.largest_arch()), base).eval()
    x = torch.randn(3, 1, 16, 16)
    assert torch.equal(child(x), base(x))


def test_a_smaller_subnet_takes_the_stage_channels_the_coupled_pruning_ranks_first(space, base):
    family = family_of(space)
    arch = [ResNetStage(1, 0.5), ResNetStage(2, 0.75), ResNetStage(1, 0.5)]
    child = family.inherit_weights(family.build(arch), base).eval()
    assert child(torch.randn(2, 1, 16, 16)).shape == (2, 10)
    stage = base.stages[0]
    scores = sum(conv.weight.abs().flatten(1).sum(1) for conv in
                 [stage[0].conv2.conv, stage[1].conv2.conv, stage[0].shortcut.conv])
    kept = torch.sort(torch.topk(scores, 8).indices).values
    assert torch.equal(child.stages[0][0].shortcut.conv.weight, stage[0].shortcut.conv.weight[kept])
    source = base.stages[1][0].conv1.conv.weight  # the next stage reads the same channels
    inner = torch.sort(torch.topk(source.abs().flatten(1).sum(1), 24).indices).values
    assert torch.equal(child.stages[1][0].conv1.conv.weight, source[inner][:, kept])
    assert len(child.stages[1]) == 2


def test_supernet_training_reaches_the_base_through_a_subnet(space, base):
    family = family_of(space)
    trained = family.build(family.largest_arch())
    subnet_logits(space, family.smallest_arch(), trained, torch.randn(4, 1, 16, 16)).sum().backward()
    assert trained.stages[2][0].conv2.conv.weight.grad is not None
    assert trained.stages[2][1].conv2.conv.weight.grad is None  # depth 1: the second block is not run


def test_every_candidate_op_is_in_the_space_enumeration(space):
    family = family_of(space)
    for rule in RULES:
        every = set(family.space_ops(rule))
        rng = random.Random(1)
        for _ in range(4):
            candidate = family.random_candidate(rng)
            assert set(family.candidate_ops(candidate, rule)) <= every
            candidate = suggest_candidate(space, lambda _name, choices, pick=rng.choice: pick(choices))
            assert set(family.candidate_ops(candidate, rule)) <= every


def test_channel_pruning_a_stage_makes_its_ops_narrower(space):
    family = family_of(space)
    arch = family.largest_arch()
    full = family.candidate_ops(family.uniform_candidate(arch), BitsRule())
    pruned = family.candidate_ops(family.uniform_candidate(arch, sparsity=0.5), BitsRule())
    assert [op.op for op in full] == [op.op for op in pruned]
    adds = [(a.shape, b.shape) for a, b in zip(full, pruned, strict=True) if a.op == "add"]
    assert adds and all(after[0] == before[0] // 2 for before, after in adds)


def test_candidates_are_parsed_by_their_family(space):
    family = family_of(space)
    candidate = family.random_candidate(random.Random(0))
    assert family.parse_candidate(candidate.to_json()) == candidate
    with pytest.raises(UserInputError, match="candidate JSON is malformed"):
        Candidate.from_json(candidate.to_json(), StageArch)


def test_resnet_settings_are_its_own(tmp_path):
    data = yaml.safe_load(RESNET.read_text())
    data["choices"]["block"]["kernel_size"] = [3]
    with pytest.raises(UserInputError, match=r"choices\.block\.kernel_size: unknown key \(allowed: depth, width\)"):
        parse_space(data, tmp_path / "space.yaml")


@pytest.mark.parametrize("path", [RESNET, REPO / "examples" / "byo_model" / "space.yaml"])
def test_ops_from_the_policy_equal_the_built_candidates(path):
    """``candidate_ops`` (traced sites of the architecture + the policy, nothing built) gives
    exactly the ops of the built and compressed candidate, coupled groups included."""
    space = load_space(path)
    family = family_of(space)
    rng = random.Random(2)
    candidates = [family.random_candidate(rng) for _ in range(3)]
    candidates += [suggest_candidate(space, lambda _name, choices, pick=rng.choice: pick(choices)) for _ in range(3)]
    for candidate in candidates:
        model = family.build_compressed(candidate)
        for rule in RULES:
            assert family.candidate_ops(candidate, rule) == family.model_ops(model, rule)


@pytest.mark.parametrize("seed", range(3))
def test_traced_ops_equal_the_mobilenet_hooks(default_space, seed):
    """The shared graph walker finds exactly what the MobileNet family's own hooks find."""
    family = family_of(default_space)
    model = family.build_compressed(family.random_candidate(random.Random(seed)))
    for rule in RULES:
        assert graph_ops(model, (1, 16, 16), rule, "mobilenet") == family.model_ops(model, rule)


def test_resnet_space_searched_end_to_end_with_two_workers(tmp_path):
    space = REPO / "tests" / "spaces" / "resnet_tiny.yaml"
    profile, results = tmp_path / "bitfusion.json", tmp_path / "results"
    for args in (["profile", str(space), "--runtime", "bitfusion-model", "--out", str(profile)],
                 ["search", str(space), "--profile", str(profile), "--trials", "2", "--workers", "2",
                  "--run", "rn", "--results-dir", str(results)],
                 ["report", str(results / "rn")]):
        outcome = CliRunner().invoke(app, args)
        assert outcome.exit_code == 0, outcome.output
    run = Run.open(results / "rn")
    allocated = [row for row in run.trials if row.label.startswith("sensitivity-ilp@")]  # the allocator works here too
    assert allocated and len(run.trials) == 7 + len(allocated)
    assert all(row.state is State.COMPLETE for row in run.trials)
    assert all(len(json.loads(row.candidate)["stages"]) == 2 for row in run.trials)
    assert run.files.report.is_file()
