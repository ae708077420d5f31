"""Search pieces without Ray: parameters <-> candidates, baselines, settings, fronts."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from autocompress.candidate import Candidate, LayerPolicy
from autocompress.errors import UserInputError
from autocompress.models.family import family_of
from autocompress.models.mobilenet import MobileNet
from autocompress.models.space_file import load_space
from autocompress.run.config import Constraints
from autocompress.search.params import BASELINES, baseline_params, search_params, suggest_candidate
from autocompress.search.samplers import make_sampler, sampler_named, sampler_names
from autocompress.search.settings import parse_duration

TINY = Path(__file__).parent / "spaces" / "search_tiny.yaml"


@pytest.fixture(scope="module", params=["tiny", "default"])
def space(request, default_space):
    return load_space(TINY) if request.param == "tiny" else default_space


@pytest.mark.parametrize("label", list(BASELINES))
def test_baseline_params_decode_to_the_uniform_candidate(space, label):
    params = baseline_params(space, label)
    decoded = suggest_candidate(space, lambda name, choices: params[name])
    expected = dict(family_of(space).uniform_candidate(family_of(space).largest_arch(), **BASELINES[label]).policy)
    floor = space.choices.layer.first_last_min_bits
    for end in ("stem.conv", "classifier") if floor is not None else ():  # held at the floor, unpruned, full rank
        expected[end] = LayerPolicy(weight_bits=max(expected[end].weight_bits, floor),
                                    activation_bits=max(expected[end].activation_bits, floor))
    assert decoded.hash == Candidate(decoded.stages, expected).hash


def test_first_and_last_layers_are_searched_only_above_their_floor(default_space):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(20):
        policy = suggest_candidate(default_space, study.ask().suggest_categorical).policy
        for end in ("stem.conv", "classifier"):
            assert min(policy[end].weight_bits, policy[end].activation_bits) >= 8
            assert (policy[end].sparsity, policy[end].rank_ratio) == (0.0, 1.0)
    assert {"classifier.wbits", "classifier.abits"} <= set(search_params(default_space))
    assert "classifier.rank" not in search_params(default_space)
    layer = default_space.choices.layer.model_copy(update={"first_last_min_bits": None})
    unheld = default_space.model_copy(update={"choices": default_space.choices.model_copy(update={"layer": layer})})
    assert search_params(unheld)["classifier.rank"] == [1.0, 0.75, 0.5, 0.25]
    assert 2 in search_params(unheld)["stem.wbits"]


def test_baseline_outside_the_choices_is_skipped(default_space):
    layer = default_space.choices.layer.model_copy(update={"weight_bits": [8, 32]})
    choices = default_space.choices.model_copy(update={"layer": layer})
    narrow = default_space.model_copy(update={"choices": choices})
    assert baseline_params(narrow, "uniform-4bit") is None
    assert baseline_params(narrow, "uniform-8bit") is not None


def test_sampled_candidates_build_and_share_one_static_parameter_set(space):
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=1))
    names = set(search_params(space))
    for _ in range(10):
        trial = study.ask()
        candidate = suggest_candidate(space, trial.suggest_categorical)
        assert set(trial.params) == names
        MobileNet(space, list(candidate.stages))
        study.tell(trial, [0.5, 1.0])


@pytest.mark.parametrize("name", ["nsga2", "nsga3"])
def test_genetic_samplers_breed_from_the_baselines(name):
    """Optuna leaves enqueued trials out of every generation; ours count them in the first."""
    sampler = make_sampler(name, seed=0, trials=40)
    assert sampler.finetune_gate(0) is None  # only the predictor-guided sampler gates fine-tunes
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler.optuna)
    study.enqueue_trial({"x": 10, "y": 0}, user_attrs={"kind": "baseline"})  # no other point dominates it

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        x, y = trial.suggest_int("x", 0, 10), trial.suggest_int("y", 0, 10)
        return x - y, x + y

    study.optimize(objective, n_trials=1 + 2 * 8)
    parents = study.sampler.get_parent_population(study, 1)
    assert len(parents) == 8
    assert 0 in {t.number for t in parents}


def test_samplers_are_registered_by_name_and_an_unknown_one_is_one_line():
    assert sampler_names() == ["predictor", "nsga2", "nsga3", "tpe", "random", "gp", "sensitivity"]
    assert [name for name in sampler_names() if not sampler_named(name).proposes_search_trials] == ["sensitivity"]
    assert sampler_named("predictor").learns_from_earlier_runs and not sampler_named("tpe").learns_from_earlier_runs
    with pytest.raises(UserInputError, match=r"^--sampler: unknown sampler 'genius' \(allowed: predictor, nsga2, "):
        sampler_named("genius")


@pytest.mark.parametrize(("text", "seconds"), [("8h", 28800), ("1h30m", 5400), ("90m", 5400), ("45s", 45),
                                               ("600", 600), ("0.5h", 1800)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "8x", "h"])
def test_parse_duration_rejects_nonsense(text):
    with pytest.raises(UserInputError, match="--time-budget"):
        parse_duration(text)


def test_constraint_violations_are_optuna_style():
    limits = Constraints(max_latency_ms=2.0, max_size_kb=None)
    assert limits.violations(1.5, 100.0) == {"max_latency_ms": -0.5}
    assert Constraints().violations(1.0, 1.0) == {}
