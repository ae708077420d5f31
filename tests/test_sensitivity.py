"""Sensitivity, the allocator's integer program and per-layer granularity, without Ray."""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autocompress import pipeline
from autocompress.base import train_base
from autocompress.candidate import LayerPolicy
from autocompress.cli import app
from autocompress.hw.predict import predict
from autocompress.hw.profile import load_profile
from autocompress.models.family import family_of
from autocompress.models.space_file import load_space
from autocompress.run.sensitivity import ALLOCATOR_LABEL_PREFIX, ProbeResult, SensitivityTable
from autocompress.search import unit_choices
from autocompress.search.allocator import BUDGETS, UnitPolicy, allocate, solve
from autocompress.search.params import BASELINES, baseline_params, decode, search_params, suggest_candidate, unit_knobs
from autocompress.search.sensitivity import measure
from autocompress.search.unit_choices import UnitChoices, knob_settings, uncompressed_params
from autocompress.tasks.classification import ClassificationTask
from tests.conftest import bitfusion_profile

TINY = Path(__file__).parent / "spaces" / "search_tiny.yaml"


@pytest.fixture(scope="module")
def tiny():
    return load_space(TINY)


@pytest.fixture(scope="module")
def tiny_profile(tmp_path_factory):
    return load_profile(bitfusion_profile(TINY, tmp_path_factory.mktemp("profiles")))


@pytest.fixture(scope="module")
def choices(tiny, tiny_profile):
    return UnitChoices(tiny, tiny_profile)


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    """The tiny space's one-epoch base network and its task."""
    task = ClassificationTask(tiny)
    base, _ = train_base(tiny, task, tmp_path_factory.mktemp("base") / "base.pt")
    return base, task


@pytest.fixture(scope="module")
def probed(tiny, choices, trained):
    """The tiny space's sensitivity table on its one-epoch base, and the probe function used."""
    base, task = trained
    calls: list[int] = []

    def probe(candidates):
        calls.append(len(candidates))
        return [pipeline.probe(tiny, candidate, base, task) for candidate in candidates]

    return measure(tiny, choices, probe, "digest"), probe, calls


def test_each_paying_knob_value_of_each_unit_is_probed_alone(tiny, choices, probed):
    table, _, _ = probed
    every = [s for unit, knobs in unit_knobs(tiny).items() for s in knob_settings(unit, knobs)]
    assert [p.key for p in table.probes] == [s.probe.key for s in choices.paying]
    # on this device rank 0.5 lowers no latency: it is not probed; every bit-width and the pruning are
    assert {s.probe.knob for s in every} - {p.knob for p in table.probes} == {"rank"}
    assert {p.unit for p in table.probes} == set(unit_knobs(tiny))
    assert all(math.isfinite(p.loss) and 0 <= p.accuracy <= 1 for p in table.probes)
    float_params, family = uncompressed_params(tiny), family_of(tiny)
    for setting in choices.paying:  # only the probed unit's layers are compressed, by that knob alone
        policy = decode(tiny, float_params | setting.params).policy
        changed = {name for name, layer in policy.items() if layer != LayerPolicy()}
        assert changed and changed <= {n for n in policy if family.layer_group(n) == setting.probe.unit}
    assert max(p.loss for p in table.probes) > table.float_loss  # compression costs somewhere


def test_the_probe_scores_as_the_trials_cheap_fidelity_does(tiny, choices, trained):
    base, task = trained
    for setting in choices.paying[:4]:
        candidate = decode(tiny, choices.float_params | setting.params)
        loss, score = pipeline.probe(tiny, candidate, base, task)
        model, cheap = pipeline.compress_and_calibrate(tiny, candidate, base, task)
        assert score == cheap and loss > 0


def test_an_earlier_table_on_the_same_base_is_reused_without_measuring(tiny, choices, probed):
    table, probe, calls = probed
    before = list(calls)
    again = measure(tiny, choices, probe, "digest", [table])
    assert calls[len(before):] == [0]  # asked to measure nothing
    assert again.probes == table.probes and again.reused == len(table.probes)


def test_leaving_out_the_settings_that_do_not_pay_changes_no_allocation(tiny, tiny_profile, choices, monkeypatch):
    monkeypatch.setattr(unit_choices, "LATENCY_TOLERANCE_MS", -math.inf)  # every setting "pays"
    every = UnitChoices(tiny, tiny_profile)
    assert len(every.paying) > len(choices.paying)
    rng = random.Random(0)
    for _ in range(3):  # whatever each setting costs
        fake = SensitivityTable(base_sha256="x", float_loss=1.0, float_accuracy=0.9, seconds=0.0, probes=[
            ProbeResult(unit=s.probe.unit, knob=s.probe.knob, value=s.probe.value, accuracy=0.5,
                        loss=1.0 + rng.uniform(-0.1, 1.0)) for s in every.paying])
        assert allocate(tiny, tiny_profile, choices, fake) == allocate(tiny, tiny_profile, every, fake)


def _brute_force(policies: dict[str, list[UnitPolicy]], budget: float) -> float | None:
    best = None
    for choice in itertools.product(*policies.values()):
        if sum(p.latency_delta_ms for p in choice) <= budget + 1e-12:
            cost = sum(p.cost for p in choice)
            best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("seed", range(5))
def test_the_integer_program_finds_the_brute_force_optimum(seed):
    rng = random.Random(seed)
    policies = {f"u{u}": [UnitPolicy({}, 0.0, 0.0)] + [UnitPolicy({"k": i}, rng.uniform(0, 1), -rng.uniform(0, 2))
                                                      for i in range(rng.randint(2, 5))] for u in range(5)}
    for budget in (-6.0, -3.0, -1.5, -0.5, 0.0):
        exact = _brute_force(policies, budget)
        chosen = solve(policies, budget)
        if exact is None:
            assert chosen is None
            continue
        assert set(chosen) == set(policies)
        assert sum(p.latency_delta_ms for p in chosen.values()) <= budget + 1e-9
        assert sum(p.cost for p in chosen.values()) == pytest.approx(exact, abs=1e-6)


def test_allocated_candidates_meet_their_budgets_and_spare_the_sensitive_units(tiny, tiny_profile, choices, probed):
    table, _, _ = probed
    # a made-up table: the head is very sensitive to every knob, the rest barely
    fake = SensitivityTable(base_sha256="x", float_loss=1.0, float_accuracy=0.9, seconds=0.0, probes=[
        ProbeResult(unit=p.unit, knob=p.knob, value=p.value, accuracy=0.5,
                    loss=1.0 + (5.0 if p.unit == "head" else 0.01)) for p in table.probes])
    allocations = allocate(tiny, tiny_profile, choices, fake)
    assert allocations and all(a.label.startswith(ALLOCATOR_LABEL_PREFIX) for a in allocations)
    assert {a.label for a in allocations} <= {f"{ALLOCATOR_LABEL_PREFIX}{b:g}" for b in BUDGETS}
    float_ms = predict(decode(tiny, uncompressed_params(tiny)), tiny_profile, tiny)
    for allocation in allocations:
        candidate = decode(tiny, allocation.params)
        assert predict(candidate, tiny_profile, tiny) == pytest.approx(allocation.predicted_ms)
        assert allocation.predicted_ms <= allocation.budget_ms < float_ms
    loosest = allocations[-1]
    head = decode(tiny, loosest.params).policy["head.conv"]
    assert head == LayerPolicy()  # the sensitive unit is left alone where the budget allows


def _layer_space(tmp_path: Path, source: Path = TINY) -> Path:
    data = yaml.safe_load(source.read_text())
    data["search"] = {"granularity": "layer"}
    path = tmp_path / "layer.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_layer_granularity_gives_each_layer_its_own_parameters(tiny, tmp_path):
    layered = load_space(_layer_space(tmp_path))
    family = family_of(layered)
    layers = [spec.name for spec in family.compressible_layers(family.largest_arch())]
    params = search_params(layered)
    assert all(f"{layer}.wbits" in params for layer in layers)
    assert "stages.1.wbits" in search_params(tiny) and "stages.1.wbits" not in params  # group: unchanged
    picks = baseline_params(layered, "float") | {f"{layer}.wbits": params[f"{layer}.wbits"][i % 2]
                                                 for i, layer in enumerate(layers)}
    policy = suggest_candidate(layered, lambda name, _choices: picks[name]).policy
    assert len({policy[layer].weight_bits for layer in layers}) > 1  # layers of one group differ
    for label in BASELINES:
        uniform = family.uniform_candidate(family.largest_arch(), **BASELINES[label])
        chosen = baseline_params(layered, label)
        assert suggest_candidate(layered, lambda name, _choices, fixed=chosen: fixed[name]).hash == uniform.hash


def test_the_sensitivity_sampler_without_its_baselines_is_one_line(tmp_path):
    outcome = CliRunner().invoke(app, ["search", str(TINY), "--profile", "hw_profiles/bitfusion.json",
                                       "--sampler", "sensitivity", "--no-sensitivity-baselines",
                                       "--results-dir", str(tmp_path)])
    assert outcome.exit_code == 2 and "--no-sensitivity-baselines" in outcome.output
    assert not any(tmp_path.iterdir())
